#!/usr/bin/env python3
# flashtool.py - Klipper's copy of Katapult's flashtool (lib/katapult/ at
# Klipper's master; flash_usb.py runs it when a board comes back from its
# bootloader request as Katapult). In the kflash simulator it is the fake
# Katapult flashtool itself, so both behave the same: this runs the
# katapult/scripts/flashtool.py found beside the Klipper checkout (as the
# simulated home, sim/fake and mkcheckout copies lay them out), else the one
# in $KFLASH_SIM_FAKES, in this same process (exec: same pid, same signals).
import os
import sys

sys.dont_write_bytecode = True


def find():
    d = os.path.dirname(os.path.realpath(__file__))
    for _ in range(6):
        p = os.path.join(d, "katapult", "scripts", "flashtool.py")
        if os.path.isfile(p):
            return p
        d = os.path.dirname(d)
    p = os.path.join(os.environ.get("KFLASH_SIM_FAKES", ""), "katapult", "scripts",
                     "flashtool.py")
    return p if os.path.isfile(p) else None


path = find()
if path is None:
    sys.stderr.write("lib/katapult/flashtool.py (kflash simulator): no "
                     "katapult/scripts/flashtool.py beside the checkout; set "
                     "KFLASH_SIM_FAKES to sim/fake\n")
    sys.exit(2)
os.execv(sys.executable, [sys.executable, path] + sys.argv[1:])
