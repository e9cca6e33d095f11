#!/usr/bin/env python3
# flash_can.py - stand-in for the copy of CanBoot's flash tool that Klipper
# keeps in lib/canboot/ (flash_usb.py runs it when a board comes back from
# its bootloader request as Katapult/CanBoot). Same command line, messages
# ("CanBoot Connected", "Flash Success") and exit status (255 on any error)
# as that older tool; speaks Katapult's serial protocol through the
# simulator's shared code. CAN (no -d) is not supported.
import argparse
import hashlib
import logging
import os
import pathlib
import struct
import sys
import time

sys.dont_write_bytecode = True


def _lib():
    d = os.path.dirname(os.path.realpath(__file__))
    for _ in range(6):
        for c in (os.path.join(d, "lib"), d):
            if os.path.isfile(os.path.join(c, "simfake.py")):
                return c
        d = os.path.dirname(d)
    return os.path.join(os.environ.get("KFLASH_SIM_FAKES", ""), "lib")


sys.path.insert(0, _lib())
import simfake  # noqa: E402

ACTOR = "flash_can"
logging.basicConfig(level=logging.INFO)


class FlashCanError(Exception):
    pass


def out(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def say(text):
    out(text + "\n")


def cmd(link, name, payload=b""):
    try:
        return link.command(name, payload, 5, 2.0)
    except simfake.ProtocolError:
        msg = "Error sending command [%s] to Can Device" % name
    raise FlashCanError(msg)


def flash(link, fw):
    say("Attempting to connect to bootloader")
    ret = cmd(link, "CONNECT")
    ver, app, bsize = struct.unpack("<4sII", bytes(ret[:12]))
    if bsize not in (64, 128, 256, 512):
        raise FlashCanError("Invalid Block Size: %d" % bsize)
    # the old tool strips trailing NULs only: a 1.1 bootloader's software
    # version comes out glued to the MCU name
    mcu = bytes(ret[12:]).rstrip(b"\x00").decode("utf-8", "replace")
    say("CanBoot Connected\nProtocol Version: %s\nBlock Size: %d bytes\n"
        "Application Start: 0x%4X\nMCU type: %s"
        % (".".join(str(v) for v in reversed(ver[:3])), bsize, app, mcu))
    simfake.event(ACTOR, "connected", mcu.split("\0")[0], "0x%x" % app, bsize)
    say("Flashing '%s'..." % fw)
    out("\n[")
    data = fw.read_bytes()
    sha = hashlib.sha1()
    addr = app
    count = 0
    shown = 0
    for off in range(0, len(data), bsize):
        block = data[off:off + bsize].ljust(bsize, b"\xff")
        sha.update(block)
        for _ in range(3):
            resp = cmd(link, "SEND_BLOCK", struct.pack("<I", addr) + block)
            got = struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0]
            if got == addr:
                break
            time.sleep(.1)
        else:
            raise FlashCanError("Flash write failed, block address 0x%4X" % got)
        addr += bsize
        count += 1
        pct = int(count * bsize / float(len(data)) * 100 + .5)
        if pct >= shown + 2:
            shown += 2
            out("#")
    resp = cmd(link, "SEND_EOF")
    say("]\n\nWrite complete: %d pages" % struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0])
    say("Verifying (block count = %d)..." % count)
    out("\n[")
    check = hashlib.sha1()
    shown = 0
    for i in range(count):
        a = app + i * bsize
        resp = cmd(link, "REQUEST_BLOCK", struct.pack("<I", a))
        if struct.unpack("<I", bytes(resp[:4]).ljust(4, b"\0"))[0] != a:
            say("Error")
            raise FlashCanError("Block Request Error, block: %d" % i)
        check.update(bytes(resp[4:]))
        pct = int(i * bsize / float(len(data)) * 100 + .5)
        if pct >= shown + 2:
            shown += 2
            out("#")
    if check.hexdigest() != sha.hexdigest():
        raise FlashCanError("Checksum mismatch: Expected %s, Received %s"
                            % (sha.hexdigest().upper(), check.hexdigest().upper()))
    say("]\n\nVerification Complete: SHA = %s" % check.hexdigest().upper())
    simfake.event(ACTOR, "verified", check.hexdigest().upper())


def main():
    p = argparse.ArgumentParser(description="Can Bootloader Flash Utility")
    p.add_argument("-d", "--device", metavar="<serial device>", help="Serial Device")
    p.add_argument("-b", "--baud", default=250000, metavar="<baud rate>", help="Serial baud rate")
    p.add_argument("-i", "--interface", default="can0", metavar="<can interface>",
                   help="Can Interface")
    p.add_argument("-f", "--firmware", metavar="<klipper.bin>",
                   default="~/klipper/out/klipper.bin", help="Path to Klipper firmware file")
    p.add_argument("-u", "--uuid", metavar="<uuid>", default=None, help="Can device uuid")
    p.add_argument("-q", "--query", action="store_true", help="Query Bootloader Device IDs")
    p.add_argument("-v", "--verbose", action="store_true", help="Enable verbose responses")
    args = p.parse_args()
    if not args.verbose:
        logging.getLogger().setLevel(logging.ERROR)
    fw = pathlib.Path(args.firmware).expanduser().resolve()
    simfake.event(ACTOR, "start", args.device or "can", fw)
    port = None
    link = None
    try:
        if args.device is None:
            raise FlashCanError("Unable to bind socket to can0")
        if not fw.is_file():
            raise FlashCanError("Invalid firmware path '%s'" % fw)
        try:
            import serial
        except ModuleNotFoundError:
            raise FlashCanError("The pyserial python package was not found.  To install "
                                "run the following command in a terminal: \n\n"
                                "   pip3 install pyserial\n\n")
        try:
            port = serial.Serial(baudrate=int(args.baud), timeout=0, exclusive=True)
            port.port = os.path.realpath(args.device)
            port.open()
        except (OSError, IOError, ValueError, serial.SerialException) as e:
            raise FlashCanError("Unable to open serial port: %s" % (e,))
        link = simfake.KatapultLink(port, logging.info, simfake.retry_scale(), logging.exception)
        try:
            flash(link, fw)
        finally:
            cmd(link, "COMPLETE")
            simfake.event(ACTOR, "complete")
    except Exception:
        logging.exception("Flash Error")
        simfake.event(ACTOR, "exit", 255)
        sys.exit(-1)
    finally:
        if port is not None:
            port.close()
    say("Flash Success")
    simfake.event(ACTOR, "exit", 0)


if __name__ == "__main__":
    main()
