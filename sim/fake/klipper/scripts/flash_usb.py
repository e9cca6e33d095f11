#!/usr/bin/env python3
# flash_usb.py - stand-in for Klipper's scripts/flash_usb.py in the kflash
# simulator (what "make flash FLASH_DEVICE=..." runs). Same command line,
# messages and exit status (255 on failure, so make exits 2):
#
#   flash_usb.py -t MCU -d DEVICE [-s START] [--no-sudo] klipper.bin
#
# As Klipper's at its current master: it asks the board for its bootloader
# (open the tty, raise DTR, 1200 baud, drop DTR), waits up to ~4 s for the
# USB interface (the tty's sysfs "device" link) to come back and, when the
# USB device is then Katapult (1d50:6177), runs Katapult's flashtool that
# Klipper keeps in lib/katapult/flashtool.py; otherwise it runs dfu-util,
# lib/hidflash/hid-flash or lib/rp2040_flash/rp2040_flash through sudo
# (unless --no-sudo), or bossac. A tool that is missing fails as it does
# there: through sudo "sudo: X: command not found" and Klipper's help text
# (exit 255), without sudo python's FileNotFoundError traceback (exit 1).
# Fault: $KFLASH_SIM_STATE/fault/make-flash (fail, hang, slow N).
import time as _time
_EXEC_NS = _time.clock_gettime_ns(_time.CLOCK_MONOTONIC)  # the tool's start, before imports
import optparse
import os
import re
import subprocess
import sys
import time

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

ACTOR = "flash_usb"
CANBOOT_ID = "1d50:6177"
HEXID = re.compile(r"^[a-fA-F0-9]{4}:[a-fA-F0-9]{4}$")


class error(Exception):
    pass


def finish(code):
    simfake.event(ACTOR, "exit", code & 0xFF)
    sys.exit(code)


def enter_bootloader(device):
    simfake.event(ACTOR, "bootloader-request", device)
    # the message comes between the DTR raise and the baud change, so on a
    # bare pty (DTR ioctl fails) it is never printed
    import fcntl
    import struct
    import termios
    try:
        f = open(device, "rb")
        fd = f.fileno()
        fcntl.ioctl(fd, termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR))
        t = termios.tcgetattr(fd)
        t[4] = t[5] = termios.B1200
        sys.stderr.write("Entering bootloader on %s\n" % (device,))
        termios.tcsetattr(fd, termios.TCSANOW, t)
        fcntl.ioctl(fd, termios.TIOCMBIC, struct.pack("I", termios.TIOCM_DTR))
        f.close()
    except (IOError, OSError):
        pass


def translate_serial_to_tty(device):
    ttyname = os.path.realpath(device)
    if not os.path.exists("/dev/serial/by-path/"):
        raise error("Unable to find serial 'by-path' folder")
    for fname in os.listdir("/dev/serial/by-path/"):
        fname = "/dev/serial/by-path/" + fname
        if os.path.realpath(fname) == ttyname:
            return ttyname, fname
    return ttyname, ttyname


def translate_serial_to_usb_path(device):
    realdev = os.path.realpath(device)
    fname = os.path.basename(realdev)
    try:
        lname = os.readlink("/sys/class/tty/" + fname)
    except OSError:
        raise error("Unable to find tty device")
    m = re.match(r".*/usb\d+.*/(?P<path>\d+-[0-9.]+):\d+\.\d+/.*", lname)
    if m is None:
        raise error("Unable to find tty usb device")
    devpath = os.path.realpath("/sys/class/tty/%s/device" % (fname,))
    return m.group("path"), devpath


def wait_path(path, alt_path=None):
    time.sleep(.100)
    start_alt = None
    end = time.time() + 4.0
    while True:
        time.sleep(0.100)
        now = time.time()
        if os.path.exists(path):
            sys.stderr.write("Device reconnect on %s\n" % (path,))
            time.sleep(0.100)
            return path
        if alt_path is not None and os.path.exists(alt_path):
            if start_alt is None:
                start_alt = now
                continue
            if now >= start_alt + 0.300:
                sys.stderr.write("Device reconnect on alt path %s\n" % (alt_path,))
                return alt_path
        if now > end:
            return path


def detect_canboot(devpath):
    info = simfake.usb_info(os.path.dirname(devpath))
    simfake.event(ACTOR, "found", info["usb_id"] or "nothing")
    return info["usb_id"] == CANBOOT_ID


def call_flashcan(device, binfile):
    try:
        import serial  # noqa: F401
    except ModuleNotFoundError:
        sys.stderr.write("Python's pyserial module is required to update. Install\n"
                         "with the following command:\n"
                         "   %s -m pip install pyserial\n\n" % (sys.executable,))
        finish(-1)
    args = [sys.executable, "lib/katapult/flashtool.py", "-d", device, "-f", binfile]
    sys.stderr.write(" ".join(args) + "\n\n")
    sys.stderr.flush()
    res = subprocess.call(args)
    if res != 0:
        sys.stderr.write("Error running flashtool.py\n")
        finish(-1)


def run_tool(args, name):
    # no OSError handling, as in Klipper: a tool that is not installed is a
    # FileNotFoundError traceback (exit 1) when run without sudo
    sys.stderr.write(" ".join(args) + "\n\n")
    sys.stderr.flush()
    res = subprocess.call(args)
    if res != 0:
        raise error("Error running %s" % name)


def call_dfuutil(flags, binfile, sudo):
    args = ["dfu-util"] + flags + ["-D", binfile]
    if sudo:
        args.insert(0, "sudo")
    run_tool(args, "dfu-util")


def flash_dfuutil(device, binfile, extra_flags, sudo):
    if HEXID.match(device.strip()):
        call_dfuutil(["-d", "," + device.strip()] + extra_flags, binfile, sudo)
        return
    ttyname, serbypath = translate_serial_to_tty(device)
    buspath, devpath = translate_serial_to_usb_path(device)
    enter_bootloader(device)
    wait_path(devpath)
    if detect_canboot(devpath):
        call_flashcan(serbypath, binfile)
    else:
        call_dfuutil(["-p", buspath] + extra_flags, binfile, sudo)


def call_hidflash(binfile, sudo):
    args = ["lib/hidflash/hid-flash", binfile]
    if sudo:
        args.insert(0, "sudo")
    run_tool(args, "hid-flash")


def flash_hidflash(device, binfile, sudo):
    if HEXID.match(device.strip()):
        call_hidflash(binfile, sudo)
        return
    ttyname, serbypath = translate_serial_to_tty(device)
    buspath, devpath = translate_serial_to_usb_path(device)
    enter_bootloader(device)
    wait_path(devpath)
    if detect_canboot(devpath):
        call_flashcan(serbypath, binfile)
    else:
        call_hidflash(binfile, sudo)


def call_picoboot(bus, addr, binfile, sudo):
    args = ["lib/rp2040_flash/rp2040_flash", binfile]
    if bus is not None:
        args.extend([bus, addr])
    if sudo:
        args.insert(0, "sudo")
    run_tool(args, "rp2040_flash")


def flash_picoboot(device, binfile, sudo):
    ttyname, serbypath = translate_serial_to_tty(device)
    buspath, devpath = translate_serial_to_usb_path(device)
    # busnum/devnum sit on the USB device, one level above the interface
    usbdir = os.path.dirname(devpath)
    enter_bootloader(device)
    wait_path(usbdir + "/busnum")
    with open(usbdir + "/busnum") as f:
        bus = f.read().strip()
    with open(usbdir + "/devnum") as f:
        addr = f.read().strip()
    if detect_canboot(devpath):
        call_flashcan(serbypath, binfile)
    else:
        call_picoboot(bus, addr, binfile, sudo)


def flash_bossac(device, binfile, extra_flags):
    ttyname, pathname = translate_serial_to_tty(device)
    enter_bootloader(pathname)
    pathname = wait_path(pathname, ttyname)
    run_tool(["lib/bossac/bin/bossac", "-U", "-p", pathname] + extra_flags
             + ["-w", binfile, "-v"], "bossac")


HELP_STM32 = """
Failed to flash to %s: %s

If the device is already in bootloader mode it can be flashed with the
following command:
  make flash FLASH_DEVICE=%s
  OR
  make flash FLASH_DEVICE=1209:beba

If attempting to flash via 3.3V serial, then use:
  make serialflash FLASH_DEVICE=%s

"""
HELP_RP2040 = """
Failed to flash to %s: %s

If the device is already in bootloader mode it can be flashed with the
following command:
  make flash FLASH_DEVICE=%s

Alternatively, one can flash rp2040 boards like the Pico by manually
entering bootloader mode(hold bootsel button during powerup), mount the
device as a usb drive, and copy klipper.uf2 to the device.

"""
HELP_LPC = """
Failed to flash to %s: %s

If flashing Klipper to a Smoothieboard for the first time it may be
necessary to manually place the board into "bootloader mode" - press
and hold the "Play button" and then press and release the "Reset
button".

When a Smoothieboard is in bootloader mode it can be flashed with the
following command:
  make flash FLASH_DEVICE=1d50:6015

Alternatively, one can flash a Smoothieboard via SD card - copy the
"out/klipper.bin" file to a file named "firmware.bin" on an SD card
and then restart the Smoothieboard with that SD card.

"""


def flash_stm32f1(options, binfile):
    try:
        if options.start == 0x8000800:
            flash_hidflash(options.device, binfile, options.sudo)
        else:
            flash_dfuutil(options.device, binfile, ["-R", "-a", "2"], options.sudo)
    except error as e:
        sys.stderr.write(HELP_STM32 % (options.device, str(e), "1eaf:0003", options.device))
        finish(-1)


def flash_stm32f4(options, binfile):
    start = "0x%x:leave" % (options.start,)
    try:
        if options.start == 0x8004000:
            flash_hidflash(options.device, binfile, options.sudo)
        else:
            flash_dfuutil(options.device, binfile, ["-R", "-a", "0", "-s", start],
                          options.sudo)
    except error as e:
        sys.stderr.write(HELP_STM32 % (options.device, str(e), "0483:df11", options.device))
        finish(-1)


def flash_rp2040(options, binfile):
    rawdev = "2e8a:000f" if options.mcutype == "rp2350" else "2e8a:0003"
    try:
        if options.device.lower() == rawdev:
            call_picoboot(None, None, binfile, options.sudo)
        else:
            flash_picoboot(options.device, binfile, options.sudo)
    except error as e:
        sys.stderr.write(HELP_RP2040 % (options.device, str(e), rawdev))
        finish(-1)


def flash_lpc176x(options, binfile):
    try:
        flash_dfuutil(options.device, binfile, [], options.sudo)
    except error as e:
        sys.stderr.write(HELP_LPC % (options.device, str(e)))
        finish(-1)


def flash_bossac_family(flags):
    def flash(options, binfile):
        extra = flags(options) if callable(flags) else flags
        try:
            flash_bossac(options.device, binfile, extra)
        except error as e:
            sys.stderr.write("Failed to flash to %s: %s\n" % (options.device, str(e)))
            finish(-1)
    return flash


flash_atsam3 = flash_bossac_family(["-e", "-b"])
flash_atsam4 = flash_bossac_family(["-e"])
flash_atsamd = flash_bossac_family(lambda o: ["--offset=0x%x" % (o.start,), "-b", "-R"])

# prefix -> flash function, in Klipper's order (first match wins)
MCUTYPES = [
    ("sam3", flash_atsam3), ("sam4", flash_atsam4), ("same70", flash_atsam4),
    ("samd", flash_atsamd), ("same5", flash_atsamd),
    ("lpc176", flash_lpc176x), ("stm32f103", flash_stm32f1),
    ("stm32f4", flash_stm32f4), ("stm32f042", flash_stm32f4),
    ("stm32f070", flash_stm32f4), ("stm32f072", flash_stm32f4),
    ("stm32g0b1", flash_stm32f4), ("stm32f7", flash_stm32f4),
    ("stm32h7", flash_stm32f4), ("stm32l4", flash_stm32f4),
    ("stm32g4", flash_stm32f4), ("rp2", flash_rp2040),
]


def main():
    opts = optparse.OptionParser("%prog [options] -t <type> -d <device> <klipper.bin>")
    opts.add_option("-t", "--type", type="string", dest="mcutype", help="micro-controller type")
    opts.add_option("-d", "--device", type="string", dest="device", help="serial port device")
    opts.add_option("-s", "--start", type="int", dest="start", help="start address in flash")
    opts.add_option("--no-sudo", action="store_false", dest="sudo", default=True,
                    help="do not run sudo")
    options, args = opts.parse_args()
    if len(args) != 1:
        opts.error("Incorrect number of arguments")
    func = None
    if options.mcutype:
        for prefix, f in MCUTYPES:
            if options.mcutype.startswith(prefix):
                func = f
                break
    if func is None:
        opts.error("USB flashing is not supported for MCU '%s'" % (options.mcutype,))
    if not options.device:
        sys.stderr.write("\nPlease specify FLASH_DEVICE\n\n")
        finish(-1)
    simfake.event_at(_EXEC_NS, ACTOR, "start", options.device, options.mcutype)
    f = simfake.apply_common(ACTOR, "make-flash")
    if f is not None and f.word == "fail":
        sys.stderr.write(HELP_STM32 % (options.device, "Error running dfu-util", "0483:df11",
                                       options.device))
        finish(-1)
    func(options, args[0])
    finish(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException:
        # python prints the traceback and exits 1, as Klipper's does
        simfake.event(ACTOR, "exit", 1)
        raise
