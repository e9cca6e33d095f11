#!/bin/bash
# test-real-flash-usb.sh - Klipper's real scripts/flash_usb.py (from a real
# checkout, run by /usr/bin/python3) against a board in the simulated host:
# it must find the board's USB device through sysfs (the tty's "device"
# link, idVendor, busnum), see it come back as Katapult after its 1200-baud
# request, and have Klipper's copy of Katapult's flashtool flash it through
# the /dev/serial/by-path name; and, for a board without Katapult, fail at
# dfu-util the way kflash's classifier expects.
#
# Usage: [KLIPPER_DIR=~/klipper] [SIMHOST=build/kflash-simhost] sim/test-real-flash-usb.sh
# Exits 77 (skip) with "SKIP: reason" without a real checkout, umockdev or
# pyserial. Never downloads anything. Ends with "N passed, N failed".
set -u
unset KFLASH_SIM_STATE KFLASH_SIM_CONTROL

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIMHOST=${SIMHOST:-$ROOT/build/kflash-simhost}
KLIPPER_DIR=${KLIPPER_DIR:-$HOME/klipper}
PY=/usr/bin/python3
BOARD=$ROOT/fixtures/boards/octopus-f446.board

if [ ! -f "$KLIPPER_DIR/scripts/flash_usb.py" ] || [ ! -f "$KLIPPER_DIR/lib/katapult/flashtool.py" ]; then
	echo "SKIP: no real Klipper checkout with scripts/flash_usb.py and lib/katapult/flashtool.py at $KLIPPER_DIR (set KLIPPER_DIR)"
	exit 77
fi
if ! command -v umockdev-wrapper >/dev/null 2>&1; then
	echo "SKIP: umockdev-wrapper not found (apt-get install umockdev)"
	exit 77
fi
if ! "$PY" -c 'import serial' 2>/dev/null; then
	echo "SKIP: $PY has no pyserial (apt-get install python3-serial)"
	exit 77
fi
if [ ! -x "$SIMHOST" ]; then
	echo "FAIL: $SIMHOST is not built (make build/kflash-simhost)"
	exit 1
fi
SIMHOST=$(cd "$(dirname "$SIMHOST")" && pwd)/$(basename "$SIMHOST")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-real-flash-usb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1

PASS=0
FAIL=0
check() {
	local name=$1
	shift
	if "$@"; then
		echo "ok - $name"
		PASS=$((PASS + 1))
	else
		echo "not ok - $name"
		FAIL=$((FAIL + 1))
		sed 's/^/#   /' "$WORK/out" | tail -30
	fi
}

# a klipper.bin for the board, from the fake Klipper (it carries the data
# dictionary the real flashtool checks the MCU against)
K=$("$ROOT/sim/fake/mkcheckout" klipper "$WORK/klipper") || exit 1
cp "$ROOT/fixtures/configs/octopus-f446.config" "$WORK/octopus.config"
if ! make -s -C "$K" KCONFIG_CONFIG="$WORK/octopus.config" OUT="$WORK/fw/" >"$WORK/out" 2>&1; then
	echo "FAIL: the fake Klipper did not build the firmware"
	cat "$WORK/out"
	exit 1
fi
FW=$WORK/fw/klipper.bin
before=$(git -C "$KLIPPER_DIR" status --porcelain 2>/dev/null)

# flash_usb.py runs its tools relative to the checkout, as make flash does
cat >"$WORK/run.sh" <<SH
cd "$KLIPPER_DIR" && exec $PY scripts/flash_usb.py "\$@"
SH

timeout 60 umockdev-wrapper "$SIMHOST" --events "$WORK/events" --image-dir "$WORK/img" \
	--board "$BOARD" -- /bin/sh "$WORK/run.sh" -t stm32f446xx -d /dev/ttyACM0 -s 0x8008000 "$FW" \
	>"$WORK/out" 2>&1
rc=$?
check "real flash_usb.py: 1200-baud request, the board's USB interface back through sysfs" \
	eval '[ $rc = 0 ] && grep -q "^Entering bootloader on /dev/ttyACM0" "$WORK/out" &&
	      grep -q "^Device reconnect on /sys/devices/.*/1-1.2:1.0$" "$WORK/out"'
check "real flash_usb.py: finds Katapult and runs lib/katapult/flashtool.py on the by-path name" \
	grep -q "lib/katapult/flashtool.py -d /dev/serial/by-path/platform-.*-usb-0:1.2:1.0 -f $FW" "$WORK/out"
check "real flash_usb.py: Klipper's flashtool flashes the simulated board (Programming Complete)" \
	eval 'grep -qx "Programming Complete" "$WORK/out" &&
	      grep -q "simboard octopus-f446 flash-complete" "$WORK/events"'
"$PY" - "$FW" "$WORK/img" <<'PYEOF'
import os, sys
fw = open(sys.argv[1], 'rb').read()
imgs = [os.path.join(sys.argv[2], f) for f in os.listdir(sys.argv[2])]
sys.exit(0 if any(open(p, 'rb').read()[:len(fw)] == fw for p in imgs) else 1)
PYEOF
check "real flash_usb.py: the board holds the firmware" [ $? = 0 ]

# a board that ignores the request (no Katapult), --no-sudo (NOSUDO=1):
# flash_usb.py runs dfu-util itself; without one python's traceback names it
if command -v dfu-util >/dev/null 2>&1; then
	echo "ok - real flash_usb.py without dfu-util # SKIP dfu-util is installed here"
else
	timeout 60 umockdev-wrapper "$SIMHOST" --events "$WORK/events2" --image-dir "$WORK/img2" \
		--board "$BOARD,fault=no-bootloader" -- /bin/sh "$WORK/run.sh" -t stm32f446xx \
		-d /dev/ttyACM0 -s 0x8008000 --no-sudo "$FW" >"$WORK/out" 2>&1
	rc=$?
	check "real flash_usb.py --no-sudo, no Katapult, no dfu-util: FileNotFoundError naming dfu-util, exit 1" \
		eval '[ $rc = 1 ] && grep -q "^dfu-util -p 1-1.2 -R -a 0 -s 0x8008000:leave -D $FW" "$WORK/out" &&
		      grep -qx "FileNotFoundError: \[Errno 2\] No such file or directory: .dfu-util." "$WORK/out"'
fi

after=$(git -C "$KLIPPER_DIR" status --porcelain 2>/dev/null)
check "the real checkout is unchanged" [ "$before" = "$after" ]
echo "test-real-flash-usb: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
