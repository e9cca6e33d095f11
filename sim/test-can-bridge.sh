#!/bin/bash
# test-can-bridge.sh - a mainboard in USB-to-CAN bridge mode
# (fixtures/boards/octopus-bridge.board) with an SB2040 behind it on can0:
# can0 is the bridge's (under its USB interface, no tty), `flashtool.py -i
# can0 -q` lists the SB2040 and the bridge's own node, the SB2040 flashes
# over CAN, and the bridge flashes with -i can0 -u ITS_UUID -f: rebooted over
# CAN, back on USB as Katapult, flashed over serial byte-exact, can0 gone
# meanwhile and back after, the SB2040 answering again. With the fake
# flashtool always, and Katapult's real one when a checkout is there.
#
# Usage: [SIMHOST=build/kflash-simhost] [KATAPULT_DIR=~/katapult] sim/test-can-bridge.sh
# Builds nothing. Exits 77 (skip) with "SKIP: reason" without umockdev.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
unset KFLASH_SIM_CONTROL
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIMHOST=${SIMHOST:-$ROOT/build/kflash-simhost}
KATAPULT_DIR=${KATAPULT_DIR:-$HOME/katapult}
PY=/usr/bin/python3
BOARDS=$ROOT/fixtures/boards

if ! command -v umockdev-wrapper >/dev/null 2>&1; then
	echo "SKIP: umockdev-wrapper not found (apt-get install umockdev)"
	exit 77
fi
if ! "$PY" -c 'import serial' 2>/dev/null; then
	echo "SKIP: $PY has no pyserial (apt-get install python3-serial)"
	exit 77
fi
if [ ! -x "$SIMHOST" ]; then
	echo "FAIL: $SIMHOST is not built (make)"
	exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-can-bridge.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export PYTHONDONTWRITEBYTECODE=1
PASS=0 FAIL=0
check() {
	local name=$1 file=$2
	shift 2
	if "$@"; then
		echo "ok - $name"
		PASS=$((PASS + 1))
	else
		echo "not ok - $name"
		FAIL=$((FAIL + 1))
		[ -f "$file" ] && sed 's/^/#   /' "$file" | tail -30
	fi
}

uuid_of() {
	PYTHONPATH=$ROOT/sim/fake/lib "$PY" -c 'import sys, simfake; print(simfake.canbus_uuid_of_serial(sys.argv[1]))' \
		"$(sed -n 's/^serial=//p' "$1")"
}
BRIDGE=$(uuid_of "$BOARDS/octopus-bridge.board")
SB=$(uuid_of "$BOARDS/sb2040-can.board")

# firmware from the fake Klipper (the data dictionary names the MCU the
# real flashtool checks against Katapult's)
K=$("$ROOT/sim/fake/mkcheckout" klipper "$WORK/klipper") || exit 1
for c in octopus-f446 sb2040; do
	if ! make -s -C "$K" KCONFIG_CONFIG="$ROOT/fixtures/configs/$c.config" OUT="$WORK/fw-$c/" \
			>"$WORK/build.out" 2>&1; then
		echo "FAIL: the fake Klipper did not build $c"
		cat "$WORK/build.out"
		exit 1
	fi
done

# what runs inside the simulated host: every step's output in $O
cat >"$WORK/inside.sh" <<'EOF'
FT=$1 O=$2 BRIDGE=$3 SB=$4 W=$5
[ -e /sys/class/net/can0 ] && echo yes >"$O/can0-before"
ls -d /sys/bus/usb/devices/*/*/net/can0 >"$O/can0-parent" 2>&1
ls /dev >"$O/dev-before"
timeout 30 /usr/bin/python3 "$FT" -i can0 -q >"$O/q1" 2>&1
timeout 60 /usr/bin/python3 "$FT" -i can0 -u "$SB" -f "$W/fw-sb2040/klipper.bin" >"$O/sb" 2>&1
echo "rc=$?" >>"$O/sb"
(while :; do [ -e /sys/class/net/can0 ] && echo up || echo gone; sleep 0.05; done) >"$O/watch" &
w=$!
timeout 60 /usr/bin/python3 "$FT" -i can0 -u "$BRIDGE" -f "$W/fw-octopus-f446/klipper.bin" >"$O/br" 2>&1
echo "rc=$?" >>"$O/br"
for _ in $(seq 150); do [ -e /sys/class/net/can0 ] && break; sleep 0.1; done
# the watcher samples every 50 ms: let it see can0 back before it stops
sleep 0.3
kill $w
[ -e /sys/class/net/can0 ] && echo yes >"$O/can0-after"
timeout 30 /usr/bin/python3 "$FT" -i can0 -q >"$O/q2" 2>&1
EOF

run_with() {
	local tool=$1 ft=$2 O=$WORK/$1
	mkdir -p "$O/state" "$O/img"
	KFLASH_SIM_STATE=$O/state timeout 180 "$SIMHOST" --events "$O/events" --image-dir "$O/img" \
		--board "$BOARDS/octopus-bridge.board" --board "$BOARDS/sb2040-can.board" \
		-- bash "$WORK/inside.sh" "$ft" "$O" "$BRIDGE" "$SB" "$WORK" >"$O/simhost.out" 2>&1
	check "$tool: can0 exists, the net device of the bridge's USB interface" "$O/can0-parent" \
		eval '[ -f "$O/can0-before" ] && grep -q "/sys/bus/usb/devices/1-1.4.8/1-1.4.8:1.0/net/can0" "$O/can0-parent"'
	check "$tool: the bridge in Klipper mode has no tty" "$O/dev-before" \
		eval '! grep -q "^tty" "$O/dev-before"'
	check "$tool: -q lists the SB2040 ($SB) and the bridge's own node ($BRIDGE)" "$O/q1" \
		eval 'grep -qx "Detected UUID: $SB, Application: Klipper" "$O/q1" &&
		      grep -qx "Detected UUID: $BRIDGE, Application: Klipper" "$O/q1"'
	check "$tool: the SB2040 flashes over CAN" "$O/sb" \
		eval 'grep -qx "rc=0" "$O/sb" && grep -qx "Programming Complete" "$O/sb"'
	check "$tool: the bridge: detected, Katapult on USB, flashed over serial" "$O/br" \
		eval 'grep -qx "rc=0" "$O/br" && grep -q "^Canbus Bridge detected at .*/1-1.4.8$" "$O/br" &&
		      grep -qx "Detected new USB Device: 1d50:6177 katapult stm32f446xx" "$O/br" &&
		      grep -qx "Katapult detected at serial port /dev/ttyACM0" "$O/br" &&
		      grep -qx "Programming Complete" "$O/br"'
	for b in octopus-f446:octopus-bridge sb2040:sb2040-can; do
		"$PY" - "$WORK/fw-${b%%:*}/klipper.bin" "$O/img/${b#*:}.bin" >"$O/cmp" 2>&1 <<'PYEOF'
import sys
fw = open(sys.argv[1], "rb").read()
img = open(sys.argv[2], "rb").read()
pad = img[len(fw):]
print("firmware %d bytes, image %d" % (len(fw), len(img)))
# the rest of the last block (an rp2040's is its 4 KiB sector) is erased flash
sys.exit(0 if img[:len(fw)] == fw and len(pad) < 4096 and pad == b"\xff" * len(pad) else 1)
PYEOF
		check "$tool: ${b#*:} holds its firmware byte-exact" "$O/cmp" [ $? = 0 ]
	done
	check "$tool: can0 went away during the bridge's flash and came back" "$O/watch" \
		eval 'uniq "$O/watch" | tr "\n" " " | grep -q "^up gone up" && [ -f "$O/can0-after" ]'
	check "$tool: afterwards the SB2040 and the bridge answer the query again" "$O/q2" \
		eval 'grep -qx "Detected UUID: $SB, Application: Klipper" "$O/q2" &&
		      grep -qx "Detected UUID: $BRIDGE, Application: Klipper" "$O/q2"'
	awk '$3 == "octopus-bridge" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' "$O/events" |
		tr '\n' ',' >"$O/ev"
	check "$tool: the bridge's events: bootloader-request, USB re-enumeration, flash, back as Klipper" "$O/ev" \
		grep -q "^enumerate klipper,bootloader-request,disconnect klipper,enumerate katapult,write-start,flash-complete bytes=[0-9]*,boot-app,disconnect katapult,enumerate klipper,$" "$O/ev"
}

run_with fake "$ROOT/sim/fake/katapult/scripts/flashtool.py"
if [ -f "$KATAPULT_DIR/scripts/flashtool.py" ]; then
	run_with real "$KATAPULT_DIR/scripts/flashtool.py"
else
	echo "ok - real flashtool # SKIP no Katapult checkout at $KATAPULT_DIR (set KATAPULT_DIR)"
fi
echo "test-can-bridge: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
