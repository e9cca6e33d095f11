#!/bin/bash
# test-real-flash-can.sh - Katapult's real, unmodified scripts/flashtool.py
# (and Klipper's scripts/canbus_query.py) on the simulated CAN bus: run by
# /usr/bin/python3 under libkflash-simcan.so, on a kernel without AF_CAN,
# `flashtool.py -i can0 -q` must list the unassigned emulated nodes with
# their application, and `flashtool.py -i can0 -u UUID -f klipper.bin` must
# reboot the Klipper node into Katapult and write the image byte-exact.
#
# Usage: [KATAPULT_DIR=~/katapult] [KLIPPER_DIR=~/klipper] [KFLASH_BUILD=build]
#        sim/test-real-flash-can.sh
# Exits 77 (skip) with "SKIP: reason" without a Katapult checkout or
# pyserial; the canbus_query.py check is skipped, saying so, without a
# Klipper checkout or python3-can. Builds nothing, downloads nothing.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
unset KFLASH_SIM_STATE KFLASH_SIM_CONTROL

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KFLASH_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BUS=$BUILD/kflash-simcanbus
LIB=$BUILD/libkflash-simcan.so
KATAPULT_DIR=${KATAPULT_DIR:-$HOME/katapult}
KLIPPER_DIR=${KLIPPER_DIR:-$HOME/klipper}
PY=/usr/bin/python3
BOARDS=$ROOT/fixtures/boards
FLASHTOOL=$KATAPULT_DIR/scripts/flashtool.py

if [ ! -f "$FLASHTOOL" ]; then
	echo "SKIP: no Katapult checkout with scripts/flashtool.py at $KATAPULT_DIR (set KATAPULT_DIR)"
	exit 77
fi
if ! "$PY" -c 'import serial' 2>/dev/null; then
	echo "SKIP: $PY has no pyserial (apt-get install python3-serial)"
	exit 77
fi
for f in "$BUS" "$LIB"; do
	if [ ! -e "$f" ]; then
		echo "FAIL: $f is not built (make)"
		exit 1
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-real-flash-can.XXXXXX")
BUSPID=
cleanup() {
	[ -n "$BUSPID" ] && kill "$BUSPID" 2>/dev/null && wait "$BUSPID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1
export KFLASH_SIM_CANBUS=$WORK/bus.sock KFLASH_SIM_CAN_IFACES=can0

PASS=0 FAIL=0
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

# the EBB36 running Klipper (UUID from its chip id), a second board sitting
# in Katapult, and one a running Klipper has assigned (silent to queries)
SERIAL=$(sed -n 's/^serial=//p' "$BOARDS/ebb36-can.board")
"$BUS" --events "$WORK/events" --image-dir "$WORK/img" \
	--board "$BOARDS/ebb36-can.board" \
	--board "$BOARDS/ebb36-can.board:katapult,name=spare,canbus_uuid=112233445566" \
	--board "$BOARDS/ebb36-can.board,name=busy,canbus_uuid=0a0b0c0d0e0f,assigned=1" \
	2>"$WORK/bus.err" &
BUSPID=$!
mkdir -p "$WORK/img"
for _ in $(seq 200); do
	[ -S "$KFLASH_SIM_CANBUS" ] && break
	sleep 0.01
done
if [ ! -S "$KFLASH_SIM_CANBUS" ]; then
	echo "FAIL: the bus did not start"
	cat "$WORK/bus.err"
	exit 1
fi

# the UUID the real flashtool derives from a USB serial (its bridge check)
UUID=$("$PY" -c '
import sys, io, contextlib
sys.argv = ["flashtool"]
sys.path.insert(0, "'"$KATAPULT_DIR"'/scripts")
with contextlib.redirect_stdout(io.StringIO()):
    import flashtool
    u = flashtool.convert_usbsn_to_uuid("'"$SERIAL"'")
print("%012x" % u)')
before=$(git -C "$KATAPULT_DIR" status --porcelain 2>/dev/null)

timeout 30 env LD_PRELOAD="$LIB" "$PY" "$FLASHTOOL" -i can0 -q >"$WORK/out" 2>&1
rc=$?
check "real flashtool -q: lists the Klipper node by the UUID Klipper derives from its chip id ($UUID)" \
	eval '[ $rc = 0 ] && grep -qx "Detected UUID: $UUID, Application: Klipper" "$WORK/out"'
check "real flashtool -q: lists the node in the bootloader as Application: Katapult" \
	grep -qx "Detected UUID: 112233445566, Application: Katapult" "$WORK/out"
check "real flashtool -q: the node a running Klipper assigned does not answer" \
	eval '! grep -q 0a0b0c0d0e0f "$WORK/out" && [ "$(grep -c "^Detected UUID" "$WORK/out")" = 2 ]'

# a klipper.bin for the EBB36 from the fake Klipper (with the data
# dictionary whose MCU the real flashtool checks against Katapult's)
K=$("$ROOT/sim/fake/mkcheckout" klipper "$WORK/klipper") || exit 1
if ! make -s -C "$K" KCONFIG_CONFIG="$ROOT/fixtures/configs/ebb36-g0b1.config" \
		OUT="$WORK/fw/" >"$WORK/out" 2>&1; then
	echo "FAIL: the fake Klipper did not build the firmware"
	cat "$WORK/out"
	exit 1
fi
FW=$WORK/fw/klipper.bin

timeout 60 env LD_PRELOAD="$LIB" "$PY" "$FLASHTOOL" -i can0 -u "$UUID" -f "$FW" >"$WORK/out" 2>&1
rc=$?
check "real flashtool -u UUID -f klipper.bin: jump to the bootloader, CONNECT (stm32g0b1xx, 64-byte blocks), GET_CANBUS_ID, Programming Complete" \
	eval '[ $rc = 0 ] && grep -qx "Sending bootloader jump command..." "$WORK/out" &&
	      grep -qx "MCU type: stm32g0b1xx" "$WORK/out" &&
	      grep -qx "Block Size: 64 bytes" "$WORK/out" &&
	      grep -qx "Verifying canbus connection" "$WORK/out" &&
	      grep -qx "Programming Complete" "$WORK/out"'
"$PY" - "$FW" "$WORK/img/ebb36-can.bin" >"$WORK/out" 2>&1 <<'PYEOF'
import sys
fw = open(sys.argv[1], "rb").read()
img = open(sys.argv[2], "rb").read()
pad = img[len(fw):]
print("firmware %d bytes, image %d" % (len(fw), len(img)))
# flashtool fills the last 64-byte block with 0xff, as the chip holds it
sys.exit(0 if img[:len(fw)] == fw and len(img) % 64 == 0 and
         len(pad) < 64 and pad == b"\xff" * len(pad) else 1)
PYEOF
check "the emulated node holds the firmware byte-exact (the last block padded with 0xff)" [ $? = 0 ]
sleep 0.5
awk '$3 == "ebb36-can" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' "$WORK/events" |
	tr '\n' ',' >"$WORK/out"
check "events: enumerate klipper, bootloader-request, disconnect, enumerate katapult, write-start, flash-complete, boot-app, disconnect, enumerate klipper" \
	grep -qx "enumerate klipper,bootloader-request,disconnect klipper,enumerate katapult,write-start,flash-complete bytes=$(stat -c %s "$WORK/img/ebb36-can.bin"),boot-app,disconnect katapult,enumerate klipper," "$WORK/out"
check "the other nodes were not touched" \
	eval '! grep -q " \(spare\|busy\) \(write-start\|bootloader-request\|disconnect\)" "$WORK/events"'

timeout 30 env LD_PRELOAD="$LIB" "$PY" "$FLASHTOOL" -i can0 -q >"$WORK/out" 2>&1
check "after the flash the node answers again, as Klipper" \
	grep -qx "Detected UUID: $UUID, Application: Klipper" "$WORK/out"

if [ ! -f "$KLIPPER_DIR/scripts/canbus_query.py" ]; then
	echo "ok - real canbus_query.py # SKIP no Klipper checkout at $KLIPPER_DIR (set KLIPPER_DIR)"
elif ! "$PY" -c 'import can' 2>/dev/null; then
	echo "ok - real canbus_query.py # SKIP $PY has no python-can (apt-get install python3-can)"
else
	(cd "$KLIPPER_DIR" && timeout 30 env LD_PRELOAD="$LIB" "$PY" scripts/canbus_query.py can0) \
		>"$WORK/out" 2>&1
	check "real canbus_query.py can0 (python-can's socketcan): the two unassigned nodes, Klipper and CanBoot" \
		eval 'grep -qx "Found canbus_uuid=$UUID, Application: Klipper" "$WORK/out" &&
		      grep -qx "Found canbus_uuid=112233445566, Application: CanBoot" "$WORK/out" &&
		      grep -qx "Total 2 uuids found" "$WORK/out"'
fi

after=$(git -C "$KATAPULT_DIR" status --porcelain 2>/dev/null)
check "the real Katapult checkout is unchanged" [ "$before" = "$after" ]
echo "test-real-flash-can: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
