#!/usr/bin/env python3
# fake_usbtool.py - the kflash simulator's stand-in for the two USB tools
# Klipper's make flash builds in its checkout before flash_usb.py runs them:
# lib/rp2040_flash/rp2040_flash (an rp2040 picoboot client) and
# lib/hidflash/hid-flash (the STM32 HID bootloader client). Both need the
# libusb-1.0 headers (libusb-1.0-0-dev) and pkg-config.
#
#   fake_usbtool.py cc SRC OBJ          "compile" (lib/*/Makefile)
#   fake_usbtool.py link OUT OBJ...     "link": OUT becomes a copy of this
#                                       script, which then acts as the tool
#   fake_usbtool.py hid-check           hid-flash's Makefile: 0 when libusb
#                                       is "installed"
#   rp2040_flash IMAGE [BUS ADDR] / hid-flash IMAGE   the tools themselves
#
# Fault $KFLASH_SIM_STATE/fault/libusb "fail": the host has no libusb
# headers. Compiling rp2040_flash then fails with pkg-config's and gcc's
# messages (make exits 2); hid-flash's Makefile skips the tool with its
# notice and make goes on, as Klipper's does. The tools find no board (the
# simulator has no BOOTSEL or HID bootloader device): rp2040_flash says
# "No rp2040 in BOOTSEL mode was found" and exits 0, as the real one does;
# hid-flash searches for 1209:BEBA and exits 1.
import os
import shutil
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

ACTOR = "make"


def libusb_missing():
    f = simfake.fault("libusb")
    if f is None or f.word != "fail":
        return False
    f.fired(ACTOR)
    return True


def cmd_cc(src, obj):
    tool = os.path.basename(os.getcwd())
    if libusb_missing():
        sys.stderr.write(
            "Package libusb-1.0 was not found in the pkg-config search path.\n"
            "Perhaps you should add the directory containing `libusb-1.0.pc'\n"
            "to the PKG_CONFIG_PATH environment variable\n"
            "Package 'libusb-1.0', required by 'virtual:world', not found\n")
        if tool == "rp2040_flash":
            sys.stderr.write(
                "In file included from %s:12:\n"
                "picoboot_connection.h:14:10: fatal error: libusb.h: No such file "
                "or directory\n"
                "   14 | #include <libusb.h>\n"
                "      |          ^~~~~~~~~~\n"
                "compilation terminated.\n" % src)
        else:
            sys.stderr.write("%s:47:10: fatal error: libusb.h: No such file or "
                             "directory\ncompilation terminated.\n" % src)
        simfake.event(ACTOR, "flash-tool", tool, "failed", "no-libusb")
        return 1
    with open(obj, "w") as f:
        f.write("fake object of %s\n" % src)
    return 0


def cmd_link(out, objs):
    shutil.copyfile(os.path.realpath(__file__), out)
    os.chmod(out, 0o755)
    simfake.event(ACTOR, "flash-tool", os.path.basename(out), "built")
    return 0


def tool_rp2040(args):
    if len(args) not in (1, 3):
        sys.stderr.write("Usage: rp2040_flash <uf2 image> [bus addr]\n")
        return 1
    try:
        size = os.path.getsize(args[0])
    except OSError:
        sys.stderr.write("Could not open image file %s\n" % args[0])
        sys.stderr.write("Could not load flash image, exiting\n")
        return 1
    simfake.event("rp2040_flash", "start", *args)
    sys.stderr.write("Loaded UF2 image with %d pages\n" % max(1, size // 512))
    # no rp2040 in BOOTSEL mode exists in the simulator; the real tool
    # exits 0 here too, having written nothing
    sys.stderr.write("No rp2040 in BOOTSEL mode was found\n")
    simfake.event("rp2040_flash", "no-device")
    return 0


def tool_hid(args):
    if not args:
        print("Usage: hid-flash <bin_firmware_file> <comport (optional)> <delay (optional)>")
        return 1
    simfake.event("hid-flash", "start", *args)
    print("> Searching for [1209:BEBA] device...")
    for _ in range(3):
        sys.stdout.write("#")
        sys.stdout.flush()
        time.sleep(0.1)
    print("\nError - [1209:BEBA] device is not found :(")
    simfake.event("hid-flash", "no-device")
    return 1


def main(argv):
    me = os.path.basename(argv[0])
    if me == "rp2040_flash":
        return tool_rp2040(argv[1:])
    if me == "hid-flash":
        return tool_hid(argv[1:])
    if len(argv) >= 4 and argv[1] == "cc":
        return cmd_cc(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "link":
        return cmd_link(argv[2], argv[3:])
    if len(argv) == 2 and argv[1] == "hid-check":
        return 1 if libusb_missing() else 0
    sys.stderr.write("usage: fake_usbtool.py cc SRC OBJ | link OUT OBJ... | hid-check\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
