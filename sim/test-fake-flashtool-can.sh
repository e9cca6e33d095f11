#!/bin/bash
# test-fake-flashtool-can.sh - the simulator's stand-in flashtool
# (sim/fake/katapult/scripts/flashtool.py) on CAN, inside a simulated host
# with two transport=can boards on can0 (fixtures/boards/ebb36-can.board,
# the target, and sb2040-can.board beside it): -q lists both nodes, -r
# turns the Klipper node into Katapult, -s prints its app start and MCU,
# -f writes the image byte-exact and the node comes back as Klipper; the
# other node is never touched. The same sequence with Katapult's real
# scripts/flashtool.py (when a checkout is there) must print the same
# lines. Then the fake's faults on CAN: fail, no-complete,
# pyserial-missing (and no pyserial at all, real tool too), slow, hang.
#
# Usage: [KATAPULT_DIR=~/katapult] [KFLASH_BUILD=build] sim/test-fake-flashtool-can.sh
# Exits 77 (skip) without umockdev-wrapper or a built simhost; the real
# tool's half is skipped, saying so, without a Katapult checkout.
# The checks are eval'd strings, expanded when they run:
# shellcheck disable=SC2016
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
unset KFLASH_SIM_STATE KFLASH_SIM_CONTROL KFLASH_SIM_EVENTS KFLASH_SIM_CANBUS

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KFLASH_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SIMHOST=$BUILD/kflash-simhost
KATAPULT_DIR=${KATAPULT_DIR:-$HOME/katapult}
REAL=$KATAPULT_DIR/scripts/flashtool.py
FAKE=$ROOT/sim/fake/katapult/scripts/flashtool.py
PY=/usr/bin/python3
BOARD=$ROOT/fixtures/boards/ebb36-can.board
OTHER=$ROOT/fixtures/boards/sb2040-can.board   # a second node on can0, never the target
UUID=91c5e4099ac9   # the one Klipper and Katapult derive from the board's chip id

if ! command -v umockdev-wrapper >/dev/null 2>&1 || [ ! -x "$SIMHOST" ] ||
		[ ! -e "$BUILD/libkflash-simcan.so" ]; then
	echo "SKIP: no umockdev-wrapper, $SIMHOST or $BUILD/libkflash-simcan.so (make)"
	exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-fake-flashtool-can.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1

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
		[ -n "${SHOW:-}" ] && for f in $SHOW; do
			[ -s "$f" ] && sed "s|^|#   ${f##*/}: |" "$f" | tail -15
		done
	fi
}

# a klipper.bin for the EBB36 from the fake Klipper, with the data
# dictionary whose MCU flashtool checks against Katapult's
K=$("$ROOT/sim/fake/mkcheckout" klipper "$WORK/klipper") || exit 1
if ! make -s -C "$K" KCONFIG_CONFIG="$ROOT/fixtures/configs/ebb36-g0b1.config" \
		OUT="$WORK/fw/" >"$WORK/build.out" 2>&1; then
	echo "FAIL: the fake Klipper did not build the firmware"
	cat "$WORK/build.out"
	exit 1
fi
FW=$WORK/fw/klipper.bin

# host NAME SCRIPT: run SCRIPT (bash) in a fresh simulated host with the
# two CAN boards; its state, events and images under $WORK/NAME
host() {
	local d=$WORK/$1
	mkdir -p "$d/state/fault"
	KFLASH_SIM_STATE=$d/state KFLASH_SIM_EVENTS=$d/events \
		KFLASH_SIM_LIB=$ROOT/sim/fake/lib PATH=$ROOT/sim/fake/bin:$PATH \
		timeout 120 umockdev-wrapper "$SIMHOST" \
		--events "$d/events" --image-dir "$d/img" --board "$BOARD" --board "$OTHER" \
		-- env D="$d" FW="$FW" U="$UUID" PY="$PY" bash "$2" >"$d/host.out" 2>&1
}

# the sequence, one tool: each step's stdout, stderr and status in $D/STEP.*
cat >"$WORK/sequence.sh" <<'EOF'
step() {
	local name=$1
	shift
	timeout 60 "$PY" "$TOOL" "$@" >"$D/$name.out" 2>"$D/$name.err"
	echo $? >"$D/$name.rc"
}
step q1 -i can0 -q
step r -i can0 -u "$U" -r
step q2 -i can0 -q
step s -i can0 -u "$U" -s
step f -i can0 -u "$U" -f "$FW"
cp "$D/img/ebb36-can.bin" "$D/image.bin" 2>/dev/null
sleep 0.5   # the new firmware boots (the node's reboot time)
step q3 -i can0 -q
EOF

rc_is() { [ "$(cat "$1.rc" 2>/dev/null)" = "$2" ]; }

# the lines of one step a comparison looks at: stdout without the
# progress bars' '#'s (their count follows the image size only)
lines() { sed 's/#//g' "$1.out"; }

for who in fake real; do
	if [ "$who" = real ] && [ ! -f "$REAL" ]; then
		echo "ok - the real flashtool's sequence # SKIP no Katapult checkout at $KATAPULT_DIR (set KATAPULT_DIR)"
		continue
	fi
	tool=$FAKE
	[ "$who" = real ] && tool=$REAL
	d=$WORK/$who
	mkdir -p "$d"
	printf 'TOOL=%q\n' "$tool" | cat - "$WORK/sequence.sh" >"$d/seq.sh"
	host "$who" "$d/seq.sh"
	SHOW="$d/q1.out $d/q1.err $d/host.out"
	check "$who flashtool -i can0 -q: both Klipper nodes, exit 0" \
		eval 'rc_is "$d/q1" 0 && grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/q1.out" &&
		      [ "$(grep -c "^Detected UUID: [0-9a-f]\{12\}, Application: Klipper$" "$d/q1.out")" = 2 ] &&
		      [ "$(tail -1 "$d/q1.out")" = "CANBus UUID Query Complete" ]'
	SHOW="$d/r.out $d/r.err $d/q2.out"
	check "$who flashtool -u UUID -r: bootloader jump, Bootloader Request Complete; -q then says Katapult for it, Klipper for the other" \
		eval 'rc_is "$d/r" 0 && grep -qx "Sending bootloader jump command..." "$d/r.out" &&
		      [ "$(tail -1 "$d/r.out")" = "Bootloader Request Complete" ] &&
		      grep -qx "Detected UUID: $UUID, Application: Katapult" "$d/q2.out" &&
		      [ "$(grep -c "^Detected UUID: .*, Application: Klipper$" "$d/q2.out")" = 1 ]'
	SHOW="$d/s.out $d/s.err"
	check "$who flashtool -u UUID -s: Katapult Connected, Application Start: 0x8002000, MCU type: stm32g0b1xx" \
		eval 'rc_is "$d/s" 0 && grep -qx "Katapult Connected" "$d/s.out" &&
		      grep -qx "Application Start: 0x8002000" "$d/s.out" &&
		      grep -qx "MCU type: stm32g0b1xx" "$d/s.out" &&
		      [ "$(tail -1 "$d/s.out")" = "Status Request Complete" ]'
	SHOW="$d/f.out $d/f.err"
	check "$who flashtool -u UUID -f klipper.bin: Write complete, Verification Complete, Programming Complete" \
		eval 'rc_is "$d/f" 0 && grep -q "^Write complete: [0-9]* pages$" "$d/f.out" &&
		      grep -q "^Verification Complete: SHA = [0-9A-F]\{40\}$" "$d/f.out" &&
		      [ "$(tail -1 "$d/f.out")" = "Programming Complete" ]'
	"$PY" -c 'import sys
fw, img = (open(p, "rb").read() for p in sys.argv[1:])
pad = img[len(fw):]
# the last 64-byte block filled with 0xff, as the chip holds it
sys.exit(0 if img[:len(fw)] == fw and len(img) % 64 == 0 and pad == b"\xff" * len(pad) else 1)' \
		"$FW" "$d/image.bin" 2>"$d/cmp.err"
	SHOW="$d/cmp.err"
	check "$who flashtool -f: the emulated node holds the image byte-exact" [ $? = 0 ]
	SHOW="$d/q3.out $d/q3.err"
	check "$who flashtool -q after the flash: the node is back as Klipper; the other node was never touched" \
		eval 'rc_is "$d/q3" 0 && grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/q3.out" &&
		      [ "$(grep -c "^Detected UUID: .*, Application: Klipper$" "$d/q3.out")" = 2 ] &&
		      ! grep -q " sb2040-can \(bootloader-request\|write-start\|disconnect\)" "$d/events"'
done

# the fake's faults on CAN, one host: each step's fault file written just
# before it, the tool's output and the host's event log checked after
cat >"$WORK/faults.sh" <<'EOF'
step() {
	local name=$1 fault=$2
	shift 2
	if [ -n "$fault" ]; then
		# each step's words are checked where the steps name them below
		printf '%s\n' "$fault" >"$KFLASH_SIM_STATE/fault/flashtool"
	else
		rm -f "$KFLASH_SIM_STATE/fault/flashtool"
	fi
	local t0; t0=$(date +%s%N)
	timeout "${LIMIT:-60}" "$PY" "$TOOL" "$@" >"$D/$name.out" 2>"$D/$name.err"
	echo $? >"$D/$name.rc"
	echo $((($(date +%s%N) - t0) / 1000000)) >"$D/$name.ms"
	rm -f "$KFLASH_SIM_STATE/fault/flashtool"
}
# a python without pyserial: a serial package that is not there
mkdir -p "$D/noserial/serial"
echo 'raise ModuleNotFoundError("No module named serial", name="serial")' \
	>"$D/noserial/serial/__init__.py"
step nc no-complete -i can0 -u "$U" -f "$FW"
step nc_q "" -i can0 -q
step fail fail -i can0 -u "$U" -f "$FW"
step fail_q "" -i can0 -q
step nopy pyserial-missing -i can0 -q
PYTHONPATH=$D/noserial step noser "" -i can0 -q
[ -n "$REALTOOL" ] && TOOL=$REALTOOL PYTHONPATH=$D/noserial step real_noser "" -i can0 -q
step slow "slow 1" -i can0 -q
LIMIT=3 step hang hang -i can0 -q
exit 0
EOF
d=$WORK/faults
mkdir -p "$d"
{
	printf 'TOOL=%q\n' "$FAKE"
	if [ -f "$REAL" ]; then printf 'REALTOOL=%q\n' "$REAL"; else echo REALTOOL=; fi
	cat "$WORK/faults.sh"
} >"$d/seq.sh"
host faults "$d/seq.sh"
SHOW="$d/nc.out $d/nc.err $d/nc_q.out $d/host.out"
check "fault no-complete on CAN: the bridge comes back not Katapult, 'Bootloader Request Complete', exit 0, the node left in Klipper" \
	eval 'rc_is "$d/nc" 0 && grep -qx "Device is not Katapult, exiting..." "$d/nc.out" &&
	      [ "$(tail -1 "$d/nc.out")" = "Bootloader Request Complete" ] &&
	      ! grep -q "Programming Complete" "$d/nc.out" &&
	      grep -q " flashtool fault flashtool no-complete$" "$d/events" &&
	      ! sed -n "/ flashtool fault flashtool no-complete$/,/ flashtool exit/p" "$d/events" |
	        grep -q " ebb36-can bootloader-request" &&
	      grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/nc_q.out"'
SHOW="$d/fail.out $d/fail.err $d/fail_q.out"
check "fault fail on CAN: 'Flash write failed, flash address 0x8002000', COMPLETE still sent, exit 1; the node back in Klipper" \
	eval 'rc_is "$d/fail" 1 && grep -q "Flash write failed, flash address 0x8002000" "$d/fail.err" &&
	      grep -q " flashtool complete$" "$d/events" &&
	      grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/fail_q.out"'
SHOW="$d/nopy.out $d/nopy.err $d/noser.err $d/real_noser.err"
check "no pyserial (the fault, or none importable): CAN -q still works, as the real tool's does" \
	eval 'rc_is "$d/nopy" 0 && grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/nopy.out" &&
	      rc_is "$d/noser" 0 && grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/noser.out" &&
	      { [ ! -f "$REAL" ] || { rc_is "$d/real_noser" 0 &&
	        grep -qx "Detected UUID: $UUID, Application: Klipper" "$d/real_noser.out"; }; }'
SHOW="$d/slow.out $d/slow.err $d/slow.ms"
check "fault slow 1 on CAN: the query a second later (over 3.5 s with its 0.5 s and 2 s waits), exit 0" \
	eval 'rc_is "$d/slow" 0 && [ "$(cat "$d/slow.ms")" -ge 3500 ] &&
	      grep -qx "CANBus UUID Query Complete" "$d/slow.out"'
SHOW="$d/hang.err"
check "fault hang on CAN: never ends (killed by timeout 3)" \
	eval 'rc_is "$d/hang" 124 && grep -q " flashtool fault flashtool hang$" "$d/events"'
SHOW="$WORK/fake/events"
check "events: flashtool start can:can0 query|request|status|FIRMWARE, bootloader-request can:UUID can0, six exits 0" \
	eval 'grep -q " flashtool start can:can0 query$" "$WORK/fake/events" &&
	      grep -q " flashtool start can:can0 request$" "$WORK/fake/events" &&
	      grep -q " flashtool start can:can0 status$" "$WORK/fake/events" &&
	      grep -q " flashtool start can:can0 $FW$" "$WORK/fake/events" &&
	      grep -q " flashtool bootloader-request can:$UUID can0$" "$WORK/fake/events" &&
	      [ "$(grep -c " flashtool exit 0$" "$WORK/fake/events")" = 6 ]'

# the fake prints what the real tool prints, step by step (the image path
# and the progress bars aside, both tools flashed the same file)
if [ -f "$REAL" ]; then
	for st in q1 r q2 s f q3; do
		SHOW="$WORK/diff.$st"
		diff <(lines "$WORK/real/$st") <(lines "$WORK/fake/$st") >"$WORK/diff.$st"
		check "fake and real flashtool print the same lines for step $st ($(head -c 60 "$WORK/real/$st.out" | head -1))" \
			eval '[ ! -s "$WORK/diff.$st" ] && [ "$(cat "$WORK/real/$st.rc")" = "$(cat "$WORK/fake/$st.rc")" ]'
	done
fi

echo "test-fake-flashtool-can: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
