#!/usr/bin/env python3
# flashtool.py - stand-in for Katapult's scripts/flashtool.py in the kflash
# simulator. Same command line, messages, exit codes and wire protocol as the
# real tool (see shared/reference.md), written afresh: it speaks Katapult's
# serial protocol to the board emulator (or any Katapult device).
#
# Differences that matter to the simulator are listed in sim/fake/README.md
# (CAN through whatever raw CAN socket the host gives, the simulator's
# libkflash-simcan.so on a kernel without AF_CAN;
# the serial device is opened through its resolved node;
# $KFLASH_SIM_STATE/flashtool-retry-scale shrinks the retry waits).
# Faults ($KFLASH_SIM_STATE/fault/flashtool): fail, hang, slow N,
# no-complete, pyserial-missing.
import time as _time
_EXEC_NS = _time.clock_gettime_ns(_time.CLOCK_MONOTONIC)  # before imports


def _started_ns():
    """When this process started, on CLOCK_MONOTONIC: the tool's time
    includes its interpreter's start-up, which is the tool's and not the
    time kflash spends between tools. /proc/self/stat says it in clock
    ticks since boot; rounded up a tick, so the tool is never credited with
    time before it existed; the first line's time where /proc cannot say."""
    try:
        import os as _os
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        hz = _os.sysconf("SC_CLK_TCK")
        boot = _time.clock_gettime_ns(_time.CLOCK_BOOTTIME)
        mono = _time.clock_gettime_ns(_time.CLOCK_MONOTONIC)
        start = (ticks + 1) * 1000000000 // hz - (boot - mono)
        return start if 0 < start <= _EXEC_NS else _EXEC_NS
    except (OSError, ValueError, IndexError):
        return _EXEC_NS


_EXEC_NS = _started_ns()  # the tool's start
import argparse
import hashlib
import logging
import os
import pathlib
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True


def _lib():
    d = os.path.dirname(os.path.realpath(__file__))
    for _ in range(5):
        for c in (os.path.join(d, "lib"), d):
            if os.path.isfile(os.path.join(c, "simfake.py")):
                return c
        d = os.path.dirname(d)
    return os.path.join(os.environ.get("KFLASH_SIM_FAKES", ""), "lib")


sys.path.insert(0, _lib())
import simfake  # noqa: E402

try:
    from serial import Serial, SerialException
    HAS_SERIAL = True
except ModuleNotFoundError:
    HAS_SERIAL = False
    SerialException = OSError

ACTOR = "flashtool"
KATAPULT_USB_ID = "1d50:6177"
KLIPPER_USB_ID = "1d50:614e"
GS_CAN_USB_ID = "1d50:606f"  # Klipper in USB-to-CAN bridge mode

logging.basicConfig(level=logging.INFO)


class FlashError(Exception):
    pass


def out(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def say(text):
    out(text + "\n")


# ---------------------------------------------------------------- board


class Board:
    """One flash session with a Katapult bootloader."""

    def __init__(self, link, fw_path, fault):
        self.link = link
        self.fw_path = fw_path
        self.fault = fault
        self.block_size = 64
        self.app_start = 0
        self.blocks = 0
        self.file_size = 0
        self.sha = hashlib.sha1()
        self.klipper_dict = None
        self.examine_firmware()

    def examine_firmware(self):
        # only a file named klipper.bin is searched for its data dictionary
        if self.fw_path.name.lower() != "klipper.bin" or not self.fw_path.is_file():
            return
        d = simfake.find_klipper_dict(self.fw_path.read_bytes())
        if d:
            self.klipper_dict = d
            say("Detected Klipper binary version %s, MCU: %s"
                % (d.get("version", ""), d.get("config", {}).get("MCU", "")))

    def cmd(self, name, payload=b"", tries=5, timeout=2.0):
        try:
            return self.link.command(name, payload, tries, timeout)
        except simfake.ProtocolError as e:
            msg = str(e)
        # raised here, not in the except clause, so that a COMPLETE failing
        # in a finally chains onto the error that got there, as in the
        # real tool's traceback
        raise FlashError(msg)

    def connect(self):
        say("Attempting to connect to bootloader")
        info = simfake.parse_connect(self.cmd("CONNECT"))
        self.block_size = info["block_size"]
        self.app_start = info["app_start"]
        if self.block_size not in (64, 128, 256, 512):
            raise FlashError("Invalid Block Size: %d" % self.block_size)
        software = info["software"]
        if info["proto"] >= (1, 1, 0) and software is None:
            say("Katapult build not reporting software version!")
        say("Katapult Connected\n"
            "Software Version: %s\n"
            "Protocol Version: %s\n"
            "Block Size: %d bytes\n"
            "Application Start: 0x%4X\n"
            "MCU type: %s"
            % (software if software is not None else "?",
               ".".join(str(v) for v in info["proto"]), self.block_size,
               self.app_start, info["mcu"]))
        simfake.event(ACTOR, "connected", info["mcu"], "0x%x" % self.app_start, self.block_size)
        if self.klipper_dict is not None:
            bin_mcu = self.klipper_dict.get("config", {}).get("MCU", "")
            if bin_mcu and bin_mcu != info["mcu"]:
                simfake.event(ACTOR, "mcu-mismatch", info["mcu"], bin_mcu)
                raise FlashError(
                    "MCU returned by Katapult does not match MCU identified in klipper.bin.\n"
                    "Katapult MCU: %s\nKlipper Binary MCU: %s" % (info["mcu"], bin_mcu))

    def write(self):
        say("Flashing '%s'..." % self.fw_path)
        out("\n[")
        data = self.fw_path.read_bytes()
        self.file_size = len(data)
        addr = self.app_start
        shown = 0
        for off in range(0, len(data), self.block_size):
            block = data[off:off + self.block_size]
            block += b"\xff" * (self.block_size - len(block))
            self.sha.update(block)
            if self.fault is not None and self.fault.word == "fail":
                self.fault.fired(ACTOR)
                cause = FlashError("Error sending command [SEND_BLOCK] to Device")
                raise FlashError("Flash write failed, flash address 0x%4X" % addr) from cause
            for _ in range(3):
                try:
                    resp = self.cmd("SEND_BLOCK", struct.pack("<I", addr) + block, 3, 5.0)
                except FlashError as e:
                    raise FlashError("Flash write failed, flash address 0x%4X" % addr) from e
                got = struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0]
                if got == addr:
                    break
                logging.info("Block write mismatch: expected: %4X, received: %4X" % (addr, got))
                time.sleep(0.1)
            else:
                raise FlashError("Flash write failed, block address 0x%4X" % got)
            addr += self.block_size
            self.blocks += 1
            pct = int(self.blocks * self.block_size / float(self.file_size) * 100 + .5)
            if pct >= shown + 2:
                shown += 2
                out("#")
        resp = self.cmd("SEND_EOF")
        pages = struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0]
        say("]\n\nWrite complete: %d pages" % pages)
        simfake.event(ACTOR, "written", self.blocks, "blocks", pages, "pages")

    def verify(self):
        say("Verifying (block count = %d)..." % self.blocks)
        out("\n[")
        check = hashlib.sha1()
        shown = 0
        for i in range(self.blocks):
            addr = self.app_start + i * self.block_size
            for _ in range(3):
                resp = self.cmd("REQUEST_BLOCK", struct.pack("<I", addr))
                got = struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0]
                if got == addr:
                    break
                logging.info("Block read mismatch: expected: 0x%4X, received: 0x%s" % (addr, got))
                time.sleep(0.1)
            else:
                say("Error")
                raise FlashError("Block Request Error, block: %d" % i)
            check.update(bytes(resp[4:]))
            pct = int(i * self.block_size / float(self.file_size) * 100 + .5)
            if pct >= shown + 2:
                shown += 2
                out("#")
        want, got = self.sha.hexdigest().upper(), check.hexdigest().upper()
        if want != got:
            simfake.event(ACTOR, "verify-failed")
            raise FlashError("Checksum mismatch: Expected %s, Received %s" % (want, got))
        say("]\n\nVerification Complete: SHA = %s" % got)
        simfake.event(ACTOR, "verified", got)

    def session(self, flash_req, after_connect=None):
        """CONNECT (then after_connect), and for a flash the write, the
        verify and COMPLETE; returns the tool's last line."""
        try:
            if self.fault is not None and self.fault.word == "fail" and not flash_req:
                self.fault.fired(ACTOR)
                raise FlashError("Error sending command [CONNECT] to Device")
            self.connect()
            if after_connect is not None:
                after_connect()
            if not flash_req:
                return "Status Request Complete"
            self.write()
            self.verify()
        except KeyboardInterrupt:
            simfake.event(ACTOR, "signal", "INT")
            raise
        finally:
            # like the real tool: COMPLETE ends every flash attempt, even a
            # failed or interrupted one, so the board leaves the bootloader
            if flash_req:
                self.complete()
        return "Programming Complete"

    def complete(self):
        try:
            self.cmd("COMPLETE")
        except FlashError:
            simfake.event(ACTOR, "complete", "no-answer")
            raise
        simfake.event(ACTOR, "complete")


# ---------------------------------------------------------------- serial


def proc_name(pid):
    if shutil.which("systemctl") is not None:
        try:
            r = subprocess.run(["systemctl", "status", str(pid)], capture_output=True, timeout=10)
            resp = r.stdout.strip().decode(errors="ignore")
        except (OSError, subprocess.SubprocessError):
            resp = ""
        if resp:
            unit = resp.split(maxsplit=2)
            if len(unit) == 3:
                return "Systemd Unit Name: %s" % unit[1]
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return "Command Line: %s" % f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        pass
    try:
        return "Executable: %s)" % os.path.realpath("/proc/%d/exe" % pid)
    except OSError:
        return "Name Unknown"


def check_device(dev):
    path = pathlib.Path(dev)
    if not path.exists():
        raise FlashError("No Serial Device found at %s" % path)
    try:
        path.stat()
    except PermissionError as e:
        raise FlashError("No permission to access device %s" % path) from e
    for pid in simfake.holders_of(dev):
        say("Serial device %s in use by another program.\nProcess ID: %d\nProcess %s"
            % (path, pid, proc_name(pid)))
        simfake.event(ACTOR, "in-use", dev, "pid", pid)
        raise FlashError("Serial device %s in use" % path)


def stable_path(dev):
    real = os.path.realpath(dev)
    d = "/dev/serial/by-path"
    try:
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.exists(p) and os.path.samefile(p, real):
                return p
    except OSError:
        pass
    return real


def usb_bootloader(dev, args):
    """Klipper over USB: 1200 baud, then wait for the board to come back."""
    say("Requesting USB bootloader for %s..." % dev)
    usbdir = simfake.usb_dir_of(dev)
    if usbdir is None:
        say("Device path %s is not a usb device" % dev)
        return dev
    path = stable_path(dev)
    first = simfake.usb_info(usbdir)["usb_id"]
    simfake.event(ACTOR, "bootloader-request", dev, first)
    simfake.request_bootloader_1200(dev)
    out("Waiting for USB Reconnect.")
    for _ in range(8):
        time.sleep(0.5)
        out(".")
        info = simfake.usb_info(usbdir)
        if info["usb_id"] and info["usb_id"] != first:
            time.sleep(0.5)
            say("done")
            say("Detected new USB Device: %s %s %s" % (info["usb_id"], info["manufacturer"], info["product"]))
            if info["manufacturer"] == "katapult" or info["usb_id"] == KATAPULT_USB_ID:
                tty = simfake.tty_of_usb(usbdir)
                if tty:
                    path = tty
                say("Katapult detected on %s" % path)
                simfake.event(ACTOR, "reconnect", path, info["usb_id"])
            else:
                args.request_bootloader = True
                say("Device is not Katapult, exiting...")
                simfake.event(ACTOR, "not-katapult", info["usb_id"])
            break
    else:
        say("timed out")
        simfake.event(ACTOR, "reconnect", "timed-out")
    return path


def open_port(dev, baud):
    # Opened through the resolved node: under umockdev the modem and custom
    # baud ioctls only reach the emulator on the node itself (reference.md);
    # on a real host both name the same tty.
    try:
        port = Serial(baudrate=int(baud), timeout=0, exclusive=True)
        port.port = os.path.realpath(dev)
        port.open()
    except (OSError, IOError, ValueError, SerialException) as e:
        raise FlashError("Unable to open serial port: %s" % (e,))
    return port


def double_buffered(product):
    return product.startswith("stm32") and product[5:7] not in ("f2", "f4", "h7")


def came_back_not_katapult(args):
    """The no-complete fault's ending, over serial and CAN alike: the
    board seems to come back from the bootloader request as a DFU device,
    so the tool stops as if only the request had been asked for."""
    out("Waiting for USB Reconnect.")
    for _ in range(2):
        time.sleep(0.5)
        out(".")
    say("done")
    say("Detected new USB Device: 0483:df11 stmicroelectronics dfu in fs mode")
    say("Device is not Katapult, exiting...")
    simfake.event(ACTOR, "not-katapult", "0483:df11")
    args.request_bootloader = True
    return "Bootloader Request Complete"


def run_serial(args, fault):
    flash_req = not (args.request_bootloader or args.status)
    if not HAS_SERIAL or (fault is not None and fault.word == "pyserial-missing"):
        cmd = "sudo apt install python3-serial" if shutil.which("apt") else "pip3 install serial"
        raise FlashError("The pyserial python package was not found.  To install run the "
                         "following command in a terminal: \n\n   %s\n\n" % cmd)
    say("Connecting to Serial Device %s, baud %s" % (args.device, args.baud))
    fw = pathlib.Path(args.firmware).expanduser().resolve()
    if flash_req and not fw.is_file():
        raise FlashError("Invalid firmware path '%s'" % fw)
    device = args.device
    check_device(device)
    if fault is not None and fault.word == "no-complete":
        fault.fired(ACTOR)
        say("Detected USB device running Klipper")
        say("Requesting USB bootloader for %s..." % device)
        return came_back_not_katapult(args)
    usbdir = simfake.usb_dir_of(device)
    info = simfake.usb_info(usbdir)
    product = info["product"]
    if info["manufacturer"] == "klipper" or info["usb_id"] == KLIPPER_USB_ID:
        say("Detected USB device running Klipper")
        device = usb_bootloader(device, args)
        if args.request_bootloader:
            return "Bootloader Request Complete"
    elif info["manufacturer"] == "katapult" or info["usb_id"] == KATAPULT_USB_ID:
        say("Detected USB device running Katapult")
        if args.request_bootloader:
            return "Bootloader Request Complete"
    elif args.request_bootloader:
        say("Requesting serial bootloader for device %s..." % device)
        port = open_port(device, args.baud)
        port.write(simfake.SERIAL_BL_REQ)
        simfake.event(ACTOR, "bootloader-request", device, "serial")
        time.sleep(1.0)
        port.close()
        return "Bootloader Request Complete"
    else:
        product = ""
    port = open_port(device, args.baud)
    verbose_log = logging.info
    link = simfake.KatapultLink(port, verbose_log, simfake.retry_scale(), logging.exception)
    try:
        board = Board(link, fw, fault)
        if double_buffered(product):
            link.prime()
        return board.session(flash_req)
    finally:
        port.close()


# ---------------------------------------------------------------- CAN

CAN_FMT = "<IB3x8s"
CANBUS_ID_ADMIN = 0x3f0
CANBUS_ID_ADMIN_RESP = 0x3f1
KLIPPER_REBOOT_CMD = 0x02
KLIPPER_SET_NODE_CMD = 0x01
CANBUS_CMD_QUERY_UNASSIGNED = 0x00
CANBUS_CMD_SET_NODEID = 0x11
CANBUS_CMD_CLEAR_NODE_ID = 0x12
CANBUS_RESP_NEED_NODEID = 0x20
CANBUS_NODEID_OFFSET = 128


def uuid_bytes(uuid):
    return bytes((uuid >> ((5 - i) * 8)) & 0xFF for i in range(6))


class CanPort:
    """A node's byte stream on a raw CAN socket, shaped like the serial
    port KatapultLink drives: write() goes out on the node's id in frames
    of 8 bytes, read() returns what arrived on the id after it."""

    def __init__(self, sock, node_id):
        self.sock = sock
        self.tx_id = node_id * 2 + 0x100
        self.rx_id = self.tx_id + 1

    def fileno(self):
        return self.sock.fileno()

    def write(self, data):
        for i in range(0, len(data), 8):
            chunk = data[i:i + 8]
            self.sock.send(struct.pack(CAN_FMT, self.tx_id, len(chunk), chunk))

    def read(self, n):
        got = bytearray()
        while len(got) < n:
            try:
                pkt = self.sock.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not pkt:
                raise OSError("CAN socket closed")
            can_id, length, data = struct.unpack(CAN_FMT, pkt)
            if (can_id & socket.CAN_EFF_MASK) == self.rx_id:
                got += data[:length]
        return bytes(got)


def can_send(sock, can_id, payload):
    sock.send(struct.pack(CAN_FMT, can_id, len(payload), payload))


def can_query(sock):
    """The unassigned nodes' answers for 2 s: [(uuid, app name)]."""
    say("Checking for Katapult nodes...")
    can_send(sock, CANBUS_ID_ADMIN, bytes([CANBUS_CMD_QUERY_UNASSIGNED]))
    names = {KLIPPER_SET_NODE_CMD: "Klipper", CANBUS_CMD_SET_NODEID: "Katapult"}
    found = []
    end = time.monotonic() + 2.0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        if not select.select([sock], [], [], left)[0]:
            continue
        can_id, length, data = struct.unpack(CAN_FMT, sock.recv(16))
        data = data[:length]
        if (can_id & socket.CAN_EFF_MASK) != CANBUS_ID_ADMIN_RESP:
            continue
        if len(data) < 7 or data[0] != CANBUS_RESP_NEED_NODEID:
            continue
        app = names.get(data[7], "Unknown") if len(data) > 7 else "Unknown"
        say("Detected UUID: %s, Application: %s" % (data[1:7].hex(), app))
        simfake.event(ACTOR, "query", data[1:7].hex(), app)
        found.append((data[1:7].hex(), app))
    return found


def find_can_bridge(iface, uuid):
    """The sysfs dir of the Klipper USB-to-CAN bridge that holds IFACE and
    whose serial (its chip id) maps to UUID, or None."""
    root = "/sys/bus/usb/devices"
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    for name in names:
        usbdir = os.path.join(root, name)
        if not os.path.isfile(os.path.join(usbdir, "bDeviceClass")):
            continue
        info = simfake.usb_info(usbdir)
        if info["usb_id"] != GS_CAN_USB_ID or info["manufacturer"] != "klipper":
            continue
        try:
            ents = os.listdir(usbdir)
        except OSError:
            continue
        if not any(os.path.exists(os.path.join(usbdir, e, "net", iface.lower()))
                   for e in ents if e.startswith(name + ":")):
            continue
        logging.info("Found Klipper USB-CAN bridge on %s, serial %s", iface, info["serial"])
        try:
            got = int(simfake.canbus_uuid_of_serial(info["serial"]), 16)
        except ValueError:
            say("Failed to convert can bridge serial number %s to a uuid for device %s"
                % (info["serial"], name))
            continue
        if got == uuid:
            say("Canbus Bridge detected at %s" % usbdir)
            return usbdir
    return None


def wait_can_bridge(usbdir, args):
    """After the reboot request: the bridge's USB device back as Katapult;
    its tty, or None (not Katapult, or it never came)."""
    out("Waiting for USB Reconnect.")
    for _ in range(8):
        time.sleep(0.5)
        out(".")
        info = simfake.usb_info(usbdir)
        if info["usb_id"] and info["usb_id"] != GS_CAN_USB_ID:
            time.sleep(0.5)
            say("done")
            say("Detected new USB Device: %s %s %s" % (info["usb_id"], info["manufacturer"],
                                                       info["product"]))
            if info["manufacturer"] == "katapult" or info["usb_id"] == KATAPULT_USB_ID:
                tty = simfake.tty_of_usb(usbdir)
                if not tty:
                    raise FlashError("Failed to locate serial tty path")
                say("Katapult detected at serial port %s" % tty)
                simfake.event(ACTOR, "reconnect", tty, info["usb_id"])
                return tty
            args.request_bootloader = True
            say("Device is not Katapult, exiting...")
            simfake.event(ACTOR, "not-katapult", info["usb_id"])
            return None
    say("timed out")
    simfake.event(ACTOR, "reconnect", "timed-out")
    # the real tool then looks for the tty under the device that is not there
    raise FlashError("Failed to locate serial tty path")


def run_can(args, fault):
    # pyserial is not needed here: the real tool imports it guarded and
    # only its serial path (and the USB-CAN bridge's) refuses without it,
    # so HAS_SERIAL and the pyserial-missing fault change nothing on CAN
    flash_req = not (args.request_bootloader or args.status or args.query)
    uuid = bridge = None
    if not args.query:
        if args.uuid is None:
            raise FlashError("The 'uuid' option must be specified to flash a CAN device")
        uuid = int(args.uuid, 16)
        bridge = find_can_bridge(args.interface, uuid)
        say("Connecting to CAN UUID %s on interface %s" % (args.uuid, args.interface))
    # no AF_CAN (and no simulated bus): the real tool's OSError, a traceback
    sock = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    try:
        fw = pathlib.Path(args.firmware).expanduser().resolve()
        if flash_req and not fw.is_file():
            raise FlashError("Invalid firmware path '%s'" % fw)
        try:
            sock.bind((args.interface,))
        except Exception:
            raise FlashError("Unable to bind socket to %s" % args.interface)
        if flash_req or args.request_bootloader:
            say("Sending bootloader jump command...")
            if fault is not None and fault.word == "no-complete":
                # the real tool's USB-CAN bridge path, the bridge back from
                # the jump as something else; the jump is not sent, the
                # node is left as it was (as over serial)
                fault.fired(ACTOR)
                return came_back_not_katapult(args)
            can_send(sock, CANBUS_ID_ADMIN, bytes([KLIPPER_REBOOT_CMD]) + uuid_bytes(uuid))
            simfake.event(ACTOR, "bootloader-request", "can:%012x" % uuid, args.interface)
            if bridge is not None:
                # the bridge itself: it comes back on USB, flashed over serial
                tty = wait_can_bridge(bridge, args)
                if args.request_bootloader or tty is None:
                    return "Bootloader Request Complete"
                sock.close()
                args.device = tty
                return run_serial(args, fault)
            time.sleep(1.0)
            if args.request_bootloader:
                return "Bootloader Request Complete"
        say("Resetting all bootloader node IDs...")
        can_send(sock, CANBUS_ID_ADMIN, bytes([CANBUS_CMD_CLEAR_NODE_ID]))
        time.sleep(0.5)
        if args.query:
            can_query(sock)
            return "CANBus UUID Query Complete"
        node_id = 1 + CANBUS_NODEID_OFFSET
        can_send(sock, CANBUS_ID_ADMIN, bytes([CANBUS_CMD_SET_NODEID]) + uuid_bytes(uuid)
                 + bytes([node_id]))
        time.sleep(0.5)
        link = simfake.KatapultLink(CanPort(sock, node_id), logging.info,
                                    simfake.retry_scale(), logging.exception)
        board = Board(link, fw, fault)

        def verify_uuid():
            say("Verifying canbus connection")
            ret = board.cmd("GET_CANBUS_ID")
            got = sum(v << ((5 - i) * 8) for i, v in enumerate(bytes(ret[:6])))
            if got != uuid:
                raise FlashError("UUID mismatch (%s vs %s)" % (uuid, got))
        return board.session(flash_req, verify_uuid)
    finally:
        sock.close()


def run(args):
    fault = simfake.fault("flashtool")
    if fault is not None and fault.word in ("hang", "slow"):
        simfake.apply_common(ACTOR, "flashtool")
    if args.device is None:
        return run_can(args, fault)
    return run_serial(args, fault)


def on_sigterm(signum, frame):
    # no clean-up, no COMPLETE: the board stays in Katapult
    simfake.event(ACTOR, "signal", "TERM")
    simfake.event(ACTOR, "exit", 128 + signum)
    simfake.die_by_signal(signum)


def main():
    parser = argparse.ArgumentParser(description="Katapult Flash Tool")
    parser.add_argument("-d", "--device", metavar="<serial device>", help="Serial Device")
    parser.add_argument("-b", "--baud", default=250000, metavar="<baud rate>",
                        help="Serial baud rate")
    parser.add_argument("-i", "--interface", default="can0", metavar="<can interface>",
                        help="Can Interface")
    parser.add_argument("-f", "--firmware", metavar="<klipper.bin>",
                        default="~/klipper/out/klipper.bin", help="Path to Klipper firmware file")
    parser.add_argument("-u", "--uuid", metavar="<uuid>", default=None, help="Can device uuid")
    parser.add_argument("-q", "--query", action="store_true",
                        help="Query available CAN UUIDs (CANBus Ony)")
    parser.add_argument("-v", "--verbose", action="store_true", help="Enable verbose responses")
    parser.add_argument("-r", "--request-bootloader", action="store_true",
                        help="Requests the bootloader and exits")
    parser.add_argument("-s", "--status", action="store_true",
                        help="Connect to bootloader and print status")
    args = parser.parse_args()
    if not args.verbose:
        logging.getLogger().setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, on_sigterm)
    simfake.event_at(_EXEC_NS, ACTOR, "start", args.device if args.device else "can:" + args.interface,
                  "status" if args.status else "request" if args.request_bootloader else
                  "query" if args.query and args.device is None else
                  os.path.realpath(os.path.expanduser(args.firmware)))
    try:
        done = run(args)
    except KeyboardInterrupt:
        simfake.event(ACTOR, "exit", 130)
        traceback.print_exc()
        sys.stderr.flush()
        simfake.die_by_signal(signal.SIGINT)
    except Exception:
        logging.exception("Flash Tool Error")
        simfake.event(ACTOR, "exit", 1)
        return 1
    say(done)
    simfake.event(ACTOR, "exit", 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
