#!/bin/bash
# test-fakes.sh - exercises the simulator's fake tools (sim/fake/) without
# kflash: sudo, systemctl, ip, the fake Klipper's make, the fake Katapult
# flashtool, the fake Moonraker. The parts that need a board use the
# stand-alone board emulator (build/kflash-simboard) and, for the USB flows,
# the umockdev host (build/kflash-simhost); each is skipped with a SKIP line
# when its program is not built.
#
# Usage: sim/test-fakes.sh            (from the repository root or anywhere)
#        SIMBOARD=... SIMHOST=... sim/test-fakes.sh
# Exits 0 when everything ran passed, 1 otherwise.
# Variables set here are often read only inside the eval'd checks:
# shellcheck disable=SC2034
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FAKES=$ROOT/sim/fake
SIMBOARD=${SIMBOARD:-$ROOT/build/kflash-simboard}
SIMHOST=${SIMHOST:-$ROOT/build/kflash-simhost}
PY=/usr/bin/python3
FLASHTOOL=$FAKES/katapult/scripts/flashtool.py

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-fakes.XXXXXX")
export KFLASH_SIM_STATE=$WORK/state
export KFLASH_SIM_EVENTS=$WORK/events
export PATH=$FAKES/bin:$PATH
mkdir -p "$KFLASH_SIM_STATE/service" "$KFLASH_SIM_STATE/fault"

PIDS=()
cleanup() {
	local p
	[ -f "$KFLASH_SIM_STATE/moonraker.pid" ] && "$FAKES/moonraker/stop" 2>/dev/null
	for p in "${PIDS[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	kill_tagged all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASS=0
FAIL=0
SKIP=0
LOG=

ok() {
	echo "ok - $1"
	PASS=$((PASS + 1))
}

not_ok() {
	echo "not ok - $1"
	FAIL=$((FAIL + 1))
	local f
	for f in $LOG; do
		[ -s "$f" ] || continue
		echo "    --- $f"
		cat -v "$f" | tail -25 | sed 's/^/    | /'
	done
}

skip() {
	echo "SKIP - $1"
	SKIP=$((SKIP + 1))
}

# check NAME CMD...: a CMD of the form eval '... $? ...' sees the exit
# status of the command run just before check.
status_is() { return "$1"; }
check() {
	local st=$? name=$1
	shift
	status_is "$st"
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# Events since a mark (byte offset of the event log).
mark() { stat -c %s "$KFLASH_SIM_EVENTS" 2>/dev/null || echo 0; }
events_since() { tail -c +"$(($1 + 1))" "$KFLASH_SIM_EVENTS" 2>/dev/null; }
has_event() { events_since "$1" | grep -Eq "^[0-9]+\.[0-9]{3} $2"; }

# Line numbers of two events, in order.
event_before() {
	local a b
	a=$(grep -nE "^[0-9]+\.[0-9]{3} $1" "$KFLASH_SIM_EVENTS" | tail -1 | cut -d: -f1)
	b=$(grep -nE "^[0-9]+\.[0-9]{3} $2" "$KFLASH_SIM_EVENTS" | tail -1 | cut -d: -f1)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}

# Processes carrying KFLASH_TEST_TAG=<tag> in their environment (the
# children a fake left behind).
tagged() {
	local tag=$1 e pid
	for e in /proc/[0-9]*/environ; do
		pid=${e#/proc/}
		pid=${pid%/environ}
		[ "$pid" = $$ ] && continue
		if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qx "KFLASH_TEST_TAG=$tag"; then
			# zombies hold no resources; only running ones count
			[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" = Z ] || echo "$pid"
		fi
	done
}

kill_tagged() {
	local p
	for p in $(if [ "$1" = all ]; then for t in hang-group hang-parent; do tagged "$t"; done; else tagged "$1"; fi); do
		kill -KILL "$p" 2>/dev/null
	done
}

fault() { echo "$2" >"$KFLASH_SIM_STATE/fault/$1"; }
nofault() { rm -f "$KFLASH_SIM_STATE/fault/$1"; }

# Runs a command with SIGINT at its default (a background job of a script
# starts with SIGINT ignored, which python keeps).
with_sigint() {
	exec "$PY" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

# ------------------------------------------------------------ events

test_event_format() {
	local m bad
	m=$(mark)
	echo active >"$KFLASH_SIM_STATE/service/klipper"
	systemctl is-active klipper >/dev/null
	bad=$(events_since "$m" | grep -cvE '^[0-9]+\.[0-9]{3} [a-z_]+ [^ ]')
	check "events: '<monotonic s.mmm> <actor> <words>' lines" \
		eval '[ "$bad" = 0 ] && [ "$(events_since "$m" | wc -l)" -ge 1 ]'
	# the same clock as the C emulator: CLOCK_MONOTONIC
	local t now
	t=$(events_since "$m" | tail -1 | cut -d' ' -f1)
	now=$("$PY" -c 'import time; print("%.3f" % time.clock_gettime(time.CLOCK_MONOTONIC))')
	check "events: time stamps are CLOCK_MONOTONIC" \
		"$PY" -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if 0 <= b - a < 30 else 1)' "$t" "$now"
}

# ------------------------------------------------------------ systemctl

test_systemctl() {
	local m out rc
	LOG="$WORK/sc.err"
	echo active >"$KFLASH_SIM_STATE/service/klipper"
	out=$(systemctl is-active klipper)
	rc=$?
	check "systemctl is-active: prints active, exit 0" eval '[ "$out" = active ] && [ $rc = 0 ]'
	m=$(mark)
	sudo systemctl stop klipper 2>"$WORK/sc.err"
	rc=$?
	out=$(systemctl is-active klipper)
	check "systemctl stop: exit 0, then inactive (exit 3)" \
		eval '[ $rc = 0 ] && [ "$out" = inactive ]'
	systemctl is-active --quiet klipper
	check "systemctl is-active --quiet: no output, exit 3 when inactive" \
		eval '[ $? = 3 ] && [ -z "$(systemctl is-active --quiet klipper)" ]'
	check "events: sudo, systemctl stop, service inactive in that order" \
		eval 'has_event "$m" "sudo systemctl stop klipper$" &&
		      event_before "sudo systemctl stop klipper" "systemctl stop klipper" &&
		      event_before "systemctl stop klipper" "service klipper inactive"'
	m=$(mark)
	sudo systemctl start klipper 2>"$WORK/sc.err"
	rc=$?
	check "systemctl start: exit 0, active, 'service klipper active' event" \
		eval '[ $rc = 0 ] && systemctl is-active --quiet klipper && has_event "$m" "service klipper active$"'

	out=$(systemctl is-active nosuch 2>&1)
	rc=$?
	check "systemctl is-active on a missing unit: inactive, exit 3" eval '[ "$out" = inactive ] && [ $rc = 3 ]'
	out=$(systemctl stop nosuch 2>&1)
	rc=$?
	check "systemctl stop on a missing unit: 'not loaded', exit 5" \
		eval '[ $rc = 5 ] && [ "$out" = "Failed to stop nosuch.service: Unit nosuch.service not loaded." ]'

	fault systemctl-stop fail
	systemctl stop klipper 2>"$WORK/sc.err"
	rc=$?
	check "fault systemctl-stop fail: exit 1, Klipper still active" \
		eval '[ $rc = 1 ] && grep -q "^Job for klipper.service failed" "$WORK/sc.err" && systemctl is-active -q klipper'
	fault systemctl-stop "slow 0.6"
	SECONDS=0
	local t0 t1
	t0=$(date +%s.%N)
	systemctl stop klipper
	t1=$(date +%s.%N)
	check "fault systemctl-stop slow 0.6: stops, after >= 0.6 s" \
		eval '! systemctl is-active -q klipper && "$PY" -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) >= 0.6 else 1)" $t0 $t1'
	nofault systemctl-stop
	fault systemctl-start "hang"
	KFLASH_TEST_TAG=hang-parent timeout 1 systemctl start klipper
	rc=$?
	check "fault systemctl-start hang: still running after 1 s (timeout 124), state activating" \
		eval '[ $rc = 124 ] && [ "$(systemctl is-active klipper)" = activating ]'
	kill_tagged hang-parent
	nofault systemctl-start
	fault systemctl-start "fail once"
	systemctl start klipper 2>"$WORK/sc.err"
	rc=$?
	out=$(systemctl is-active klipper)
	check "fault systemctl-start 'fail once': failed (exit 1, state failed), fault file gone" \
		eval '[ $rc = 1 ] && [ "$out" = failed ] && [ ! -e "$KFLASH_SIM_STATE/fault/systemctl-start" ]'
	systemctl start klipper
	check "after a 'once' fault the next start works" systemctl is-active -q klipper
	fault systemctl-is-active fail
	systemctl is-active klipper >/dev/null 2>"$WORK/sc.err"
	rc=$?
	check "fault systemctl-is-active fail: exit 1, 'Failed to connect to bus'" \
		eval '[ $rc = 1 ] && grep -q "Failed to connect to bus" "$WORK/sc.err"'
	nofault systemctl-is-active

	touch "$KFLASH_SIM_STATE/systemctl-require-sudo"
	systemctl stop klipper 2>"$WORK/sc.err"
	rc=$?
	check "systemctl-require-sudo: stop without sudo fails (Interactive authentication required)" \
		eval '[ $rc = 1 ] && grep -q "Interactive authentication required" "$WORK/sc.err" && systemctl is-active -q klipper'
	sudo -n systemctl stop klipper
	check "systemctl-require-sudo: sudo systemctl stop works" eval '[ $? = 0 ] && ! systemctl is-active -q klipper'
	rm -f "$KFLASH_SIM_STATE/systemctl-require-sudo"

	# a stand-in klippy that holds a file open while the unit is active
	echo "exec sleep 300" >"$KFLASH_SIM_STATE/service/klipper.exec"
	systemctl start klipper
	local pid
	pid=$(cat "$KFLASH_SIM_STATE/service/klipper.pid" 2>/dev/null)
	check "service exec: start runs it and keeps its pid" eval '[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null'
	out=$(systemctl status "$pid" | head -1)
	check "systemctl status PID names the unit" eval '[ "$(echo "$out" | cut -d" " -f2)" = klipper.service ]'
	systemctl stop klipper
	check "service exec: stop ends it" eval '! [ -e "/proc/$pid/stat" ] || [ "$(cut -d" " -f3 /proc/$pid/stat)" = Z ]'
	rm -f "$KFLASH_SIM_STATE/service/klipper.exec"
	echo active >"$KFLASH_SIM_STATE/service/klipper"
}

# ------------------------------------------------------------ sudo

test_sudo() {
	local out rc m
	LOG="$WORK/sudo.err"
	out=$(sudo -n -l systemctl stop klipper 2>"$WORK/sudo.err")
	rc=$?
	check "sudo -n -l CMD: exit 0, prints the command's full path" \
		eval '[ $rc = 0 ] && [ "$out" = "$FAKES/bin/systemctl stop klipper" ]'
	out=$(sudo -n sh -c 'echo $SUDO_UID:$SUDO_COMMAND')
	check "sudo -n CMD: runs it with SUDO_UID and SUDO_COMMAND set" eval '[ "$out" = "$(id -u):/usr/bin/sh -c echo \$SUDO_UID:\$SUDO_COMMAND" ] || [ "$out" = "$(id -u):/bin/sh -c echo \$SUDO_UID:\$SUDO_COMMAND" ]'
	sudo -n sh -c 'exit 7'
	check "sudo passes the command's exit status" eval '[ $? = 7 ]'
	sudo -n no-such-command-x 2>"$WORK/sudo.err"
	check "sudo of a missing command: 'command not found', exit 1" \
		eval '[ $? = 1 ] && grep -qx "sudo: no-such-command-x: command not found" "$WORK/sudo.err"'

	fault sudo password
	m=$(mark)
	out=$(sudo -n -l systemctl stop klipper 2>"$WORK/sudo.err")
	rc=$?
	check "fault sudo password: sudo -n -l exits 1 with 'sudo: a password is required'" \
		eval '[ $rc = 1 ] && [ -z "$out" ] && [ "$(cat "$WORK/sudo.err")" = "sudo: a password is required" ]'
	out=$(sudo -n systemctl stop klipper 2>"$WORK/sudo.err")
	rc=$?
	check "fault sudo password: sudo -n CMD refuses, does not run it" \
		eval '[ $rc = 1 ] && grep -qx "sudo: a password is required" "$WORK/sudo.err" && systemctl is-active -q klipper'
	setsid sudo systemctl stop klipper </dev/null >/dev/null 2>"$WORK/sudo.err"
	rc=$?
	check "fault sudo password: sudo without -n and without a terminal fails too" \
		eval '[ $rc = 1 ] && grep -q "a terminal is required" "$WORK/sudo.err" && systemctl is-active -q klipper'
	check "events: sudo check ... password / refused" \
		eval 'has_event "$m" "sudo check systemctl stop klipper password$" &&
		      has_event "$m" "sudo refused systemctl stop klipper password$"'
	echo "systemctl stop klipper" >"$KFLASH_SIM_STATE/sudo-nopasswd"
	sudo -n -l systemctl stop klipper >/dev/null 2>&1
	rc=$?
	sudo -n -l systemctl start klipper >/dev/null 2>&1
	local rc2=$?
	check "sudo-nopasswd: the listed command is allowed, another is not" eval '[ $rc = 0 ] && [ $rc2 = 1 ]'
	rm -f "$KFLASH_SIM_STATE/sudo-nopasswd"
	fault sudo fail
	sudo -n true 2>"$WORK/sudo.err"
	check "fault sudo fail: exit 1" eval '[ $? = 1 ] && grep -q "^sudo: " "$WORK/sudo.err"'
	nofault sudo
}

# ------------------------------------------------------------ ip

test_ip() {
	local out rc m
	LOG="$WORK/ip.err"
	mkdir -p "$KFLASH_SIM_STATE/can"
	printf 'ifindex=100\nbitrate=500000\ntxqueuelen=10\nstate=up\n' >"$KFLASH_SIM_STATE/can/can0"
	printf 'ifindex=101\nbitrate=1000000\ntxqueuelen=128\nstate=down\n' >"$KFLASH_SIM_STATE/can/can1"
	m=$(mark)
	out=$(ip -details -json link show can0 2>"$WORK/ip.err" | "$PY" -c 'import json, sys
d = json.load(sys.stdin)
assert len(d) == 1
d = d[0]
print(d["ifname"], d["ifindex"], d["operstate"], d["txqlen"], d["link_type"],
      d["linkinfo"]["info_kind"], d["linkinfo"]["info_data"]["bittiming"]["bitrate"])')
	check "ip -details -json link show can0: iproute2's JSON with txqlen and the bitrate" \
		eval '[ "$out" = "can0 100 UP 10 can can 500000" ] && has_event "$m" "ip show can0$"'
	out=$(ip -d link show dev can1 2>"$WORK/ip.err")
	check "ip -d link show dev can1 (text): state DOWN, qlen, bitrate" \
		eval 'echo "$out" | grep -q "^101: can1: <NOARP,ECHO> mtu 16 .* state DOWN .* qlen 128$" &&
		      echo "$out" | grep -q "can state STOPPED" && echo "$out" | grep -q "bitrate 1000000 "'
	out=$(ip -j link 2>"$WORK/ip.err")
	check "ip -j link: every simulated interface" \
		eval '[ "$(echo "$out" | "$PY" -c "import json, sys; print(*[d[\"ifname\"] for d in json.load(sys.stdin)])")" = "can0 can1" ]'
	ip link show can9 >/dev/null 2>"$WORK/ip.err"
	check "ip link show of an unknown interface: 'Device \"can9\" does not exist.', exit 1" \
		eval '[ $? = 1 ] && grep -qx "Device \"can9\" does not exist." "$WORK/ip.err"'
	ip link set can0 up type can bitrate 1000000 2>"$WORK/ip.err"
	check "ip link set: refused (exit 2), nothing changed" \
		eval '[ $? = 2 ] && grep -q "Operation not permitted" "$WORK/ip.err" &&
		      grep -qx "bitrate=500000" "$KFLASH_SIM_STATE/can/can0"'
	rm -rf "$KFLASH_SIM_STATE/can"
}

# ------------------------------------------------------------ make

K=
listing() { (cd "$K" && find . -path ./.git -prune -o -print0 | sort -z | xargs -0 -r ls -ld --time-style=+%s.%N | awk '{print $1, $5, $6, $7}'; find . -path ./.git -prune -o -type f -print0 | sort -z | xargs -0 -r sha1sum) ; }

kmake() { make -C "$K" "$@"; }

write_config() { mkdir -p "$(dirname "$1")"; printf "$2" >"$1"; }

test_make() {
	local rc m before after
	LOG="$WORK/make.out"
	K=$("$FAKES/mkcheckout" klipper "$WORK/klipper" --git)
	local ver
	ver=$(git -C "$K" describe --always --tags --long --dirty)
	before=$(listing)
	write_config "$WORK/cfg/octopus/.config" 'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\nCONFIG_STM32_FLASH_START_8000=y\n'
	write_config "$WORK/cfg/sb2040/.config" 'CONFIG_MACH_RPXXXX=y\nCONFIG_MACH_RP2040=y\nCONFIG_RPXXXX_FLASH_START_4000=y\n'
	write_config "$WORK/cfg/pico/.config" 'CONFIG_MACH_RPXXXX=y\n'

	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" olddefconfig >"$WORK/make.out" 2>&1
	rc=$?
	check "olddefconfig: exit 0, adds defaults (app address from the 32 KiB choice)" \
		eval '[ $rc = 0 ] && grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x8008000" "$WORK/cfg/octopus/.config" &&
		      grep -qx "CONFIG_BOARD_DIRECTORY=\"stm32\"" "$WORK/cfg/octopus/.config" &&
		      grep -qx "CONFIG_MACH_STM32F446=y" "$WORK/cfg/octopus/.config" &&
		      grep -q "^Configuration saved to " "$WORK/make.out"'
	check "olddefconfig: keeps the previous file as .config.old" \
		eval '[ "$(cat "$WORK/cfg/octopus/.config.old")" = "$(printf "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\nCONFIG_STM32_FLASH_START_8000=y")" ]'
	kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" olddefconfig >"$WORK/make.out" 2>&1
	check "olddefconfig twice: 'No change to configuration'" grep -q "^No change to configuration in " "$WORK/make.out"
	# what real Kconfig makes of partial configs (the chip and the offset
	# come from the MACH_ and _FLASH_START_ choices, CONFIG_MCU follows)
	kconf() {	# kconf NAME TEXT: olddefconfig on TEXT, prints the result
		write_config "$WORK/cfg/$1/.config" "$2"
		kmake -s KCONFIG_CONFIG="$WORK/cfg/$1/.config" OUT="$WORK/out/$1/" olddefconfig >/dev/null 2>&1
		cat "$WORK/cfg/$1/.config"
	}
	out=$(kconf p1 'CONFIG_MACH_STM32=y\n')
	check "olddefconfig: CONFIG_MACH_STM32 alone is Klipper's first model, stm32f103xe, 8 KiB offset" \
		eval 'echo "$out" | grep -qx "CONFIG_MCU=\"stm32f103xe\"" &&
		      echo "$out" | grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x8002000" &&
		      echo "$out" | grep -qx "CONFIG_STM32_FLASH_START_2000=y"'
	out=$(kconf p2 'CONFIG_MCU="stm32f446xx"\nCONFIG_MACH_STM32=y\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n')
	check "olddefconfig: CONFIG_MCU and the address are derived, not chosen (stm32f446xx named, stm32f103xe built)" \
		eval 'echo "$out" | grep -qx "CONFIG_MCU=\"stm32f103xe\"" &&
		      echo "$out" | grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x8002000"'
	out=$(kconf p3 'CONFIG_MACH_STM32F446=y\n')
	check "olddefconfig: a model without its architecture is invisible: the AVR default" \
		eval 'echo "$out" | grep -qx "CONFIG_MCU=\"atmega2560\"" && ! echo "$out" | grep -q STM32F446'
	out=$(kconf p4 'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32H723=y\nCONFIG_STM32_FLASH_START_8000=y\n')
	check "olddefconfig: an offset the model does not offer becomes its first (H723: 128 KiB)" \
		eval 'echo "$out" | grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x8020000" && ! echo "$out" | grep -q FLASH_START_8000'
	out=$(kconf p5 'CONFIG_MACH_RPXXXX=y\nCONFIG_RPXXXX_FLASH_START_4000=y\n')
	check "olddefconfig: rp2040 with RPXXXX_FLASH_START_4000: 0x10004000, no stage2" \
		eval 'echo "$out" | grep -qx "CONFIG_MCU=\"rp2040\"" && echo "$out" | grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x10004000" &&
		      ! echo "$out" | grep -q "^CONFIG_RP2040_HAVE_STAGE2=y"'
	local fx same=0 all=0
	for fx in "$ROOT"/fixtures/configs/*.config; do
		all=$((all + 1))
		mkdir -p "$WORK/cfg/fx"
		cp "$fx" "$WORK/cfg/fx/.config"
		kmake -s KCONFIG_CONFIG="$WORK/cfg/fx/.config" OUT="$WORK/out/fx/" olddefconfig >/dev/null 2>&1 &&
			cmp -s "$fx" "$WORK/cfg/fx/.config" && same=$((same + 1))
	done
	check "olddefconfig leaves every fixtures/configs/*.config unchanged ($same of $all)" \
		eval '[ $all -gt 0 ] && [ $same = $all ]'
	kmake -s KCONFIG_CONFIG="$WORK/cfg/sb2040/.config" OUT="$WORK/out/sb2040/" olddefconfig >/dev/null 2>&1
	kmake -s KCONFIG_CONFIG="$WORK/cfg/pico/.config" OUT="$WORK/out/pico/" olddefconfig >/dev/null 2>&1

	m=$(mark)
	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" -j4 >"$WORK/make.out" 2>&1
	rc=$?
	check "build stm32 -j4: exit 0, Klipper-like progress lines" \
		eval '[ $rc = 0 ] && grep -q "^  Compiling $WORK/out/octopus/src/sched.o$" "$WORK/make.out" &&
		      grep -q "^  Linking $WORK/out/octopus/klipper.elf$" "$WORK/make.out" &&
		      grep -q "^  Creating bin file $WORK/out/octopus/klipper.bin$" "$WORK/make.out" &&
		      [ "$(grep -c "^  Compiling " "$WORK/make.out")" -ge 12 ]'
	check "build stm32: klipper.elf, klipper.bin, klipper.dict in OUT" \
		eval '[ -s "$WORK/out/octopus/klipper.elf" ] && [ -s "$WORK/out/octopus/klipper.bin" ] && [ -s "$WORK/out/octopus/klipper.dict" ]'
	check "events: make build start, one compile per object, build end" \
		eval 'has_event "$m" "make build start $WORK/out/octopus/ mcu stm32f446xx$" &&
		      [ "$(events_since "$m" | grep -c " make compile ")" = "$(grep -c "^  Compiling " "$WORK/make.out")" ] &&
		      has_event "$m" "make build end $WORK/out/octopus/ klipper.elf klipper.bin$"'
	"$PY" - "$WORK/out/octopus" "$ver" <<'EOF'
import json, sys, zlib
out, ver = sys.argv[1], sys.argv[2]
data = open(out + "/klipper.bin", "rb").read()
want = json.load(open(out + "/klipper.dict"))
found = None
for i in range(len(data)):          # the way Katapult's flashtool looks
    try:
        d = json.loads(zlib.decompress(data[i:]))
    except (zlib.error, ValueError):
        continue
    if isinstance(d, dict) and d.get("app") == "Klipper":
        found = d
        break
ok = found == want and want["version"] == ver and want["config"]["MCU"] == "stm32f446xx"
sys.exit(0 if ok else 1)
EOF
	check "klipper.bin embeds a zlib stream that decompresses to klipper.dict (version = git describe)" [ $? = 0 ]

	kmake -s KCONFIG_CONFIG="$WORK/cfg/sb2040/.config" OUT="$WORK/out/sb2040/" -j2 >"$WORK/make.out" 2>&1
	rc=$?
	check "build rp2040 with the 16 KiB offset: klipper.bin, no klipper.uf2" \
		eval '[ $rc = 0 ] && [ -s "$WORK/out/sb2040/klipper.bin" ] && [ ! -e "$WORK/out/sb2040/klipper.uf2" ]'
	kmake -s KCONFIG_CONFIG="$WORK/cfg/pico/.config" OUT="$WORK/out/pico/" >"$WORK/make.out" 2>&1
	rc=$?
	check "build rp2040 without bootloader: klipper.uf2 too (UF2 magic)" \
		eval '[ $rc = 0 ] && [ "$(head -c 4 "$WORK/out/pico/klipper.uf2" | od -An -tx4 | tr -d " ")" = 0a324655 ]'
	after=$(listing)
	check "two boards built side by side: the checkout is unchanged (listing, git status)" \
		eval '[ "$before" = "$after" ] && [ -z "$(git -C "$K" status --porcelain)" ]'
	check "builds stayed in their own OUT (different firmware per config)" \
		eval '! cmp -s "$WORK/out/octopus/klipper.bin" "$WORK/out/sb2040/klipper.bin"'

	kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus2/" -j3 >/dev/null 2>&1
	check "same config and version: byte-identical klipper.bin" cmp -s "$WORK/out/octopus/klipper.bin" "$WORK/out/octopus2/klipper.bin"
	echo "v0.13.0-999-gfeedbee" >"$KFLASH_SIM_STATE/klipper-version"
	kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus3/" >/dev/null 2>&1
	check "\$KFLASH_SIM_STATE/klipper-version overrides the version (and changes the bin)" \
		eval 'grep -q "\"version\":\"v0.13.0-999-gfeedbee\"" "$WORK/out/octopus3/klipper.dict" &&
		      ! cmp -s "$WORK/out/octopus/klipper.bin" "$WORK/out/octopus3/klipper.bin"'
	rm -f "$KFLASH_SIM_STATE/klipper-version"
	git -C "$K" -c user.name=sim -c user.email=sim@localhost commit -q --allow-empty -m "klippy: a host-side fix"
	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" -j2 >"$WORK/make.out" 2>&1
	check "a Klipper commit that changes no source: make compiles nothing, the dictionary keeps the old version (as Klipper's)" \
		eval '[ $? = 0 ] && ! grep -q "Compiling" "$WORK/make.out" &&
		      grep -q "\"version\":\"$ver\"" "$WORK/out/octopus/klipper.dict" &&
		      [ "$(git -C "$K" describe --always --tags --long --dirty)" != "$ver" ]'

	mkdir -p "$WORK/cfg/missing"
	kmake -s KCONFIG_CONFIG="$WORK/cfg/missing/.config" OUT="$WORK/out/missing/" >"$WORK/make.out" 2>&1
	rc=$?
	check "KCONFIG_CONFIG naming a missing file: creates an AVR atmega2560 config and builds it" \
		eval '[ $rc = 0 ] && grep -qx "CONFIG_MCU=\"atmega2560\"" "$WORK/cfg/missing/.config" &&
		      [ -s "$WORK/out/missing/klipper.elf.hex" ] && grep -q "\"MCU\":\"atmega2560\"" "$WORK/out/missing/klipper.dict"'

	write_config "$WORK/cfg/host/.config" 'CONFIG_MACH_LINUX=y\n'
	kmake -s KCONFIG_CONFIG="$WORK/cfg/host/.config" OUT="$WORK/out/host/" olddefconfig >/dev/null 2>&1
	kmake -s KCONFIG_CONFIG="$WORK/cfg/host/.config" OUT="$WORK/out/host/" >"$WORK/make.out" 2>&1
	check "linux host MCU: no CONFIG_MCU line, klipper.elf only, dict MCU linux" \
		eval '[ $? = 0 ] && ! grep -q "^CONFIG_MCU=" "$WORK/cfg/host/.config" && [ -s "$WORK/out/host/klipper.elf" ] &&
		      [ ! -e "$WORK/out/host/klipper.bin" ] && grep -q "\"MCU\":\"linux\"" "$WORK/out/host/klipper.dict"'

	kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus2/" clean
	check "clean removes OUT" eval '[ $? = 0 ] && [ ! -e "$WORK/out/octopus2" ]'

	m=$(mark)
	fault make-build fail
	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/fail/" -j4 >"$WORK/make.out" 2>&1
	rc=$?
	check "fault make-build fail: a compiler error, make exits 2, no klipper.bin" \
		eval '[ $rc = 2 ] && grep -q "^src/command.c:141:5: error: " "$WORK/make.out" &&
		      grep -Eq "^make(\[[0-9]+\])?: \*\*\* \[Makefile:[0-9]*: $WORK/out/fail/src/command.o\] Error 1" "$WORK/make.out" &&
		      [ ! -e "$WORK/out/fail/klipper.bin" ] && has_event "$m" "make build error $WORK/out/fail/src/command.o$" &&
		      ! has_event "$m" "make build end"'
	fault make-build "fail src/sched.c"
	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/fail2/" >"$WORK/make.out" 2>&1
	check "fault make-build 'fail src/sched.c' fails that file" \
		eval '[ $? = 2 ] && grep -q "^src/sched.c:141:5: error: " "$WORK/make.out"'
	nofault make-build
	fault make-olddefconfig fail
	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" olddefconfig >"$WORK/make.out" 2>&1
	check "fault make-olddefconfig fail: make exits 2" eval '[ $? = 2 ]'
	nofault make-olddefconfig

	fault make-build "slow 1"
	local t0 t1
	t0=$(date +%s.%N)
	kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/slow/" -j1 >/dev/null 2>&1
	rc=$?
	t1=$(date +%s.%N)
	check "fault make-build slow 1: builds, taking >= 1 s with -j1" \
		eval '[ $rc = 0 ] && "$PY" -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) >= 1 else 1)" $t0 $t1'

	# hang: each compile sleeps forever in a child; killing make's whole
	# process group must leave nothing behind, killing only make must not
	fault make-build hang
	m=$(mark)
	KFLASH_TEST_TAG=hang-group setsid make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" \
		OUT="$WORK/out/hang/" -j2 >"$WORK/make.out" 2>&1 &
	local mpid=$! i
	PIDS+=("$mpid")
	for i in $(seq 100); do has_event "$m" "make compile " && break; sleep 0.05; done
	sleep 0.2
	check "fault make-build hang: make still running, compile children alive" \
		eval 'kill -0 $mpid 2>/dev/null && [ -n "$(tagged hang-group)" ]'
	kill -TERM -- "-$mpid"
	wait "$mpid" 2>/dev/null
	sleep 0.3
	check "fault make-build hang: killing the process group leaves no process behind" \
		eval '[ -z "$(tagged hang-group)" ]'
	m=$(mark)
	KFLASH_TEST_TAG=hang-parent setsid make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" \
		OUT="$WORK/out/hang2/" -j2 >"$WORK/make.out" 2>&1 &
	mpid=$!
	for i in $(seq 100); do has_event "$m" "make compile " && break; sleep 0.05; done
	sleep 0.2
	kill -TERM "$mpid"
	wait "$mpid" 2>/dev/null
	sleep 0.3
	check "fault make-build hang: killing only make leaves the compile children (what the group kill is for)" \
		eval '[ -n "$(tagged hang-parent)" ]'
	kill_tagged hang-parent
	nofault make-build

	kmake KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" menuconfig </dev/null >"$WORK/make.out" 2>&1
	check "menuconfig without a terminal: refused, make exits 2" \
		eval '[ $? = 2 ] && grep -q "could not find terminal" "$WORK/make.out"'
	if command -v script >/dev/null; then
		mkdir -p "$KFLASH_SIM_STATE/menuconfig"
		printf 'CONFIG_MCU="stm32h723xx"\nCONFIG_STM32_FLASH_START_20000=y\n' >"$KFLASH_SIM_STATE/menuconfig/octopus.config"
		script -qec "make -s -C '$K' KCONFIG_CONFIG='$WORK/cfg/octopus/.config' OUT='$WORK/out/octopus/' menuconfig" /dev/null >"$WORK/make.out" 2>&1
		check "menuconfig on a terminal applies \$KFLASH_SIM_STATE/menuconfig/<board>.config" \
			eval 'grep -qx "CONFIG_MCU=\"stm32h723xx\"" "$WORK/cfg/octopus/.config" &&
			      grep -qx "CONFIG_FLASH_APPLICATION_ADDRESS=0x8020000" "$WORK/cfg/octopus/.config" &&
			      ! grep -q "STM32F446" "$WORK/cfg/octopus/.config"'
		rm -rf "$KFLASH_SIM_STATE/menuconfig"
		script -qec "make -s -C '$K' KCONFIG_CONFIG='$WORK/cfg/octopus/.config' OUT='$WORK/out/octopus/' menuconfig" /dev/null >"$WORK/make.out" 2>&1
		check "menuconfig on a terminal with nothing to apply: 'No changes to save'" \
			grep -q "No changes to save" "$WORK/make.out"
		write_config "$WORK/cfg/octopus/.config" 'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\nCONFIG_STM32_FLASH_START_8000=y\n'
		kmake -s KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" olddefconfig >/dev/null 2>&1
	else
		skip "menuconfig on a terminal (no script(1))"
	fi
}

# ------------------------------------------------------------ moonraker

http() { curl -s -m 5 -o "$WORK/http.body" -w '%{http_code}' "$URL$1"; }

test_moonraker() {
	local code m
	LOG="$WORK/http.body $KFLASH_SIM_STATE/moonraker.log"
	cat >"$KFLASH_SIM_STATE/moonraker.json" <<'EOF'
{"klippy_state": "ready",
 "print_stats": {"state": "printing", "filename": "benchy.gcode"},
 "virtual_sdcard": {"progress": 0.42},
 "mcus": {"mcu": {"mcu_version": "v0.13.0-730-g84104bbbd", "mcu_constants": {"MCU": "stm32h723xx"}},
          "mcu ebb": {"mcu_version": "v0.12.0-100-gabc", "mcu_constants": {"MCU": "stm32g0b1xx"}}}}
EOF
	echo active >"$KFLASH_SIM_STATE/service/klipper"
	m=$(mark)
	URL=$("$FAKES/moonraker/start")
	check "moonraker start: prints the URL, keeps the pid" \
		eval '[[ "$URL" == http://127.0.0.1:* ]] && [ -s "$KFLASH_SIM_STATE/moonraker.pid" ] && has_event "$m" "moonraker start "'
	code=$(http "/printer/objects/query?print_stats&virtual_sdcard")
	check "GET print_stats&virtual_sdcard: 200, state printing, filename, progress" \
		eval '[ "$code" = 200 ] && "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))[\"result\"][\"status\"]
sys.exit(0 if s[\"print_stats\"][\"state\"]==\"printing\" and s[\"print_stats\"][\"filename\"]==\"benchy.gcode\" and s[\"virtual_sdcard\"][\"progress\"]==0.42 else 1)" "$WORK/http.body"'
	code=$(http "/printer/objects/query?mcu")
	check "GET ?mcu: mcu_version and mcu_constants.MCU" \
		eval '[ "$code" = 200 ] && "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))[\"result\"][\"status\"]
sys.exit(0 if list(s)==[\"mcu\"] and s[\"mcu\"][\"mcu_constants\"][\"MCU\"]==\"stm32h723xx\" and s[\"mcu\"][\"mcu_version\"].startswith(\"v0.13\") else 1)" "$WORK/http.body"'
	code=$(http "/printer/objects/query?mcu%20ebb")
	check "GET ?mcu%20ebb: the extra MCU" \
		eval '[ "$code" = 200 ] && "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))[\"result\"][\"status\"]
sys.exit(0 if s[\"mcu ebb\"][\"mcu_constants\"][\"MCU\"]==\"stm32g0b1xx\" else 1)" "$WORK/http.body"'
	code=$(http "/printer/objects/list")
	check "GET /printer/objects/list lists mcu and 'mcu ebb'" \
		eval '[ "$code" = 200 ] && grep -q "\"mcu ebb\"" "$WORK/http.body" && grep -q "\"print_stats\"" "$WORK/http.body"'
	code=$(http "/printer/info")
	check "GET /printer/info: state ready" eval '[ "$code" = 200 ] && grep -q "\"state\": \"ready\"" "$WORK/http.body"'
	echo inactive >"$KFLASH_SIM_STATE/service/klipper"
	code=$(http "/printer/objects/query?print_stats")
	check "Klipper stopped: printer queries answer 503 'Klippy Host not connected'" \
		eval '[ "$code" = 503 ] && grep -q "Klippy Host not connected" "$WORK/http.body"'
	code=$(http "/server/info")
	check "Klipper stopped: /server/info says klippy_connected false" \
		eval '[ "$code" = 200 ] && grep -q "\"klippy_connected\": false" "$WORK/http.body"'
	echo active >"$KFLASH_SIM_STATE/service/klipper"
	fault moonraker fail
	code=$(http "/printer/info")
	check "fault moonraker fail: 500" eval '[ "$code" = 500 ]'
	fault moonraker "slow 0.5"
	local t0 t1
	t0=$(date +%s.%N)
	code=$(http "/printer/info")
	t1=$(date +%s.%N)
	check "fault moonraker slow 0.5: answers after >= 0.5 s" \
		eval '[ "$code" = 200 ] && "$PY" -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) >= 0.5 else 1)" $t0 $t1'
	fault moonraker hang
	code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$URL/printer/info")
	check "fault moonraker hang: no answer (client time-out)" eval '[ "$code" = 000 ]'
	nofault moonraker
	code=$(http "/no/such/thing")
	check "unknown path: 404" eval '[ "$code" = 404 ]'
	check "events: one 'moonraker GET <target> <code>' line per request" \
		eval 'has_event "$m" "moonraker GET /printer/objects/query\?mcu%20ebb 200$"'
	"$FAKES/moonraker/stop"
	code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$URL/printer/info")
	check "moonraker stop: nothing listens any more" eval '[ "$code" = 000 ] && [ ! -e "$KFLASH_SIM_STATE/moonraker.pid" ]'
}

# ------------------------------------------------------------ flashtool on a pty

BDIR=
BPID=
start_board() {
	local name=$1 i
	shift
	BDIR=$WORK/board-$name
	mkdir -p "$BDIR"
	"$SIMBOARD" --serial 3A0039000851313433343333 --tty "$BDIR/tty" --image "$BDIR/image.bin" "$@" \
		2>"$BDIR/sim.log" &
	BPID=$!
	PIDS+=("$BPID")
	LOG="$BDIR/ft.out $BDIR/ft.err $BDIR/sim.log"
	for i in $(seq 100); do
		[ -c "$BDIR/tty" ] && return 0
		sleep 0.05
	done
	not_ok "board $name came up"
	return 1
}

stop_board() {
	kill -TERM "$BPID" 2>/dev/null
	wait "$BPID" 2>/dev/null
}

board_mode_count() { grep -c "^kflash-simboard: .* $1 mode (" "$BDIR/sim.log"; }

wait_mode() {
	local i
	for i in $(seq 100); do
		[ "$(board_mode_count "$1")" -gt "$2" ] && [ -c "$BDIR/tty" ] && return 0
		sleep 0.05
	done
	return 1
}

ft() { timeout 60 "$PY" "$FLASHTOOL" -d "$BDIR/tty" "$@" >"$BDIR/ft.out" 2>"$BDIR/ft.err"; }

# image.bin holds what was flashed, padded to the block size with 0xff
flashed_is() {
	"$PY" - "$1" "$BDIR/image.bin" "${2:-64}" <<'EOF'
import sys
fw = open(sys.argv[1], 'rb').read()
try:
    img = open(sys.argv[2], 'rb').read()
except OSError:
    sys.exit(1)
bs = int(sys.argv[3])
sys.exit(0 if img == fw + b'\xff' * (-len(fw) % bs) else 1)
EOF
}

test_flashtool() {
	local rc m bin=$WORK/out/octopus/klipper.bin
	if [ ! -x "$SIMBOARD" ]; then
		skip "flashtool and make flash on the board emulator ($SIMBOARD is not built: make build/kflash-simboard)"
		return
	fi
	if ! "$PY" -c 'import serial' 2>/dev/null; then
		skip "flashtool tests: $PY has no pyserial"
		return
	fi
	[ -s "$bin" ] || { not_ok "flashtool tests need the stm32 build"; return; }

	start_board flash --mcu stm32f446xx --mode katapult || return
	LOG="$BDIR/ft.out $BDIR/ft.err $BDIR/sim.log"
	m=$(mark)
	ft -f "$bin"
	rc=$?
	check "flashtool: flashes the fake klipper.bin, exit 0, 'Programming Complete'" \
		eval '[ $rc = 0 ] && [ "$(tail -1 "$BDIR/ft.out")" = "Programming Complete" ] && flashed_is "$bin"'
	check "flashtool: the real tool's lines" \
		eval 'grep -qx "Attempting to connect to bootloader" "$BDIR/ft.out" &&
		      grep -qx "Katapult Connected" "$BDIR/ft.out" && grep -qx "Protocol Version: 1.1.0" "$BDIR/ft.out" &&
		      grep -qx "Block Size: 64 bytes" "$BDIR/ft.out" && grep -qx "Application Start: 0x8008000" "$BDIR/ft.out" &&
		      grep -qx "MCU type: stm32f446xx" "$BDIR/ft.out" &&
		      grep -qx "Detected Klipper binary version .*, MCU: stm32f446xx" "$BDIR/ft.out" &&
		      grep -qx "Flashing '"'"'$bin'"'"'..." "$BDIR/ft.out" &&
		      grep -qE "^Write complete: [0-9]+ pages$" "$BDIR/ft.out" &&
		      grep -qE "^Verifying \(block count = [0-9]+\)...$" "$BDIR/ft.out" &&
		      grep -qE "^Verification Complete: SHA = [0-9A-F]{40}$" "$BDIR/ft.out"'
	check "events: flashtool start, connected, complete, exit 0" \
		eval 'has_event "$m" "flashtool start $BDIR/tty $bin$" && has_event "$m" "flashtool connected stm32f446xx 0x8008000 64$" &&
		      event_before "flashtool connected" "flashtool complete$" && has_event "$m" "flashtool exit 0$"'
	check "board re-enumerates as klipper after COMPLETE" wait_mode klipper 0
	stop_board

	start_board status --mcu stm32f446xx --mode katapult --app-start 0x8020000 || return
	ft -s
	rc=$?
	check "flashtool -s: status only, exit 0, 'Status Request Complete', app start" \
		eval '[ $rc = 0 ] && grep -qx "Status Request Complete" "$BDIR/ft.out" &&
		      grep -qx "Application Start: 0x8020000" "$BDIR/ft.out" && grep -qx "Block Size: 64 bytes" "$BDIR/ft.out" &&
		      [ ! -e "$BDIR/image.bin" ]'
	stop_board

	start_board mismatch --mcu stm32h723xx --mode katapult || return
	ft -f "$bin"
	rc=$?
	check "flashtool: klipper.bin for another MCU is refused (exit 1, 'does not match MCU'), nothing written" \
		eval '[ $rc = 1 ] && grep -q "MCU returned by Katapult does not match MCU identified in klipper.bin" "$BDIR/ft.err" &&
		      grep -q "^ERROR:root:Flash Tool Error" "$BDIR/ft.err" && [ ! -s "$BDIR/image.bin" ]'
	stop_board

	start_board inuse --mcu stm32f446xx --mode katapult || return
	"$PY" -c 'import sys, time; f = open(sys.argv[1], "rb", buffering=0); time.sleep(30)' "$BDIR/tty" &
	local holder=$!
	sleep 0.3
	ft -f "$bin"
	rc=$?
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	check "flashtool: refuses a tty another process holds ('in use by another program', Process ID, exit 1)" \
		eval '[ $rc = 1 ] && grep -qx "Serial device $BDIR/tty in use by another program." "$BDIR/ft.out" &&
		      grep -qx "Process ID: $holder" "$BDIR/ft.out"'
	stop_board

	start_board corrupt --mcu stm32f446xx --mode katapult --fault corrupt-readback || return
	ft -f "$bin"
	check "flashtool: a bad read-back fails the verify (Checksum mismatch, exit 1)" \
		eval '[ $? = 1 ] && grep -q "Checksum mismatch" "$BDIR/ft.err" && ! grep -q "Programming Complete" "$BDIR/ft.out"'
	stop_board

	start_board silent --mcu stm32f446xx --mode katapult --fault silent || return
	echo 0.02 >"$KFLASH_SIM_STATE/flashtool-retry-scale"
	local t0 t1
	t0=$(date +%s.%N)
	ft -f "$bin"
	rc=$?
	t1=$(date +%s.%N)
	check "flashtool: a silent board fails after CONNECT and COMPLETE retries (exit 1), bounded by flashtool-retry-scale" \
		eval '[ $rc = 1 ] && grep -q "Error sending command \[CONNECT\] to Device" "$BDIR/ft.err" &&
		      grep -q "Error sending command \[COMPLETE\] to Device" "$BDIR/ft.err" &&
		      "$PY" -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 8 else 1)" $t0 $t1'
	rm -f "$KFLASH_SIM_STATE/flashtool-retry-scale"
	stop_board

	start_board faults --mcu stm32f446xx --mode katapult || return
	fault flashtool no-complete
	ft -f "$bin"
	rc=$?
	check "fault flashtool no-complete: 'Device is not Katapult', 'Bootloader Request Complete', exit 0, nothing written" \
		eval '[ $rc = 0 ] && grep -qx "Device is not Katapult, exiting..." "$BDIR/ft.out" &&
		      [ "$(tail -1 "$BDIR/ft.out")" = "Bootloader Request Complete" ] && [ ! -e "$BDIR/image.bin" ]'
	fault flashtool pyserial-missing
	ft -f "$bin"
	rc=$?
	check "fault flashtool pyserial-missing: exit 1, 'The pyserial python package was not found'" \
		eval '[ $rc = 1 ] && grep -q "The pyserial python package was not found" "$BDIR/ft.err"'
	fault flashtool fail
	m=$(mark)
	ft -f "$bin"
	rc=$?
	check "fault flashtool fail: 'Flash write failed', exit 1, COMPLETE still sent" \
		eval '[ $rc = 1 ] && grep -q "Flash write failed" "$BDIR/ft.err" && has_event "$m" "flashtool complete$" &&
		      wait_mode klipper 0'
	nofault flashtool
	stop_board

	# signals, with a firmware big enough to be caught mid-write; its
	# vector table (stack pointer, reset vector) lets the board start it
	{ printf '\000\000\002\040\301\201\000\010'; head -c 599992 /dev/urandom; } >"$WORK/big.bin"
	start_board sigterm --mcu stm32f446xx --mode katapult || return
	m=$(mark)
	"$PY" "$FLASHTOOL" -d "$BDIR/tty" -f "$WORK/big.bin" >"$BDIR/ft.out" 2>"$BDIR/ft.err" &
	local fpid=$! i
	for i in $(seq 100); do has_event "$m" "flashtool connected" && break; sleep 0.02; done
	sleep 0.2
	kill -TERM "$fpid"
	wait "$fpid"
	rc=$?
	sleep 0.3
	check "SIGTERM mid-flash: dies at once (143), no COMPLETE, the board stays in Katapult" \
		eval '[ $rc = 143 ] && has_event "$m" "flashtool signal TERM$" && ! has_event "$m" "flashtool complete" &&
		      [ ! -e "$BDIR/image.bin" ] && [ "$(board_mode_count klipper)" = 0 ]'
	stop_board
	start_board sigint --mcu stm32f446xx --mode katapult || return
	# after SIGINT the COMPLETE answer is lost (see README): shorten retries
	echo 0.1 >"$KFLASH_SIM_STATE/flashtool-retry-scale"
	m=$(mark)
	with_sigint "$PY" "$FLASHTOOL" -d "$BDIR/tty" -f "$WORK/big.bin" >"$BDIR/ft.out" 2>"$BDIR/ft.err" &
	fpid=$!
	for i in $(seq 100); do has_event "$m" "flashtool connected" && break; sleep 0.02; done
	sleep 0.2
	kill -INT "$fpid"
	wait "$fpid"
	rc=$?
	check "SIGINT mid-flash: COMPLETE still reaches the board (a partial image boots), tool exits non-zero" \
		eval '[ $rc != 0 ] && has_event "$m" "flashtool signal INT$" && wait_mode klipper 0 &&
		      [ -s "$BDIR/image.bin" ] && [ "$(stat -c %s "$BDIR/image.bin")" -lt 600000 ]'
	rm -f "$KFLASH_SIM_STATE/flashtool-retry-scale"
	stop_board

	start_board request --mcu stm32f446xx --mode klipper || return
	ft -r
	rc=$?
	check "flashtool -r on a non-USB Klipper board: serial bootloader request, exit 0, board comes back as Katapult" \
		eval '[ $rc = 0 ] && grep -qx "Requesting serial bootloader for device $BDIR/tty..." "$BDIR/ft.out" &&
		      grep -qx "Bootloader Request Complete" "$BDIR/ft.out" && wait_mode katapult 0'
	stop_board

	start_board makeflash --mcu stm32f446xx --mode klipper || return
	LOG="$WORK/make.out"
	make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" flash \
		FLASH_DEVICE="$BDIR/tty" >"$WORK/make.out" 2>&1
	rc=$?
	check "make flash on a bare pty (no /dev/serial/by-path): fails like Klipper's, make exits 2" \
		eval '[ $rc = 2 ] && grep -q "Unable to find serial .by-path. folder" "$WORK/make.out" &&
		      grep -q "Error 255" "$WORK/make.out"'
	make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" flash >"$WORK/make.out" 2>&1
	check "make flash without FLASH_DEVICE: 'Please specify FLASH_DEVICE', exit 2" \
		eval '[ $? = 2 ] && grep -q "Please specify FLASH_DEVICE" "$WORK/make.out"'
	stop_board
}

# ------------------------------------------------------------ flashtool on CAN

test_flashtool_can() {
	local rc m bus=$ROOT/build/kflash-simcanbus lib=$ROOT/build/libkflash-simcan.so pid
	local bin=$WORK/out/ebb36/klipper.bin boards=$ROOT/fixtures/boards
	if [ ! -x "$bus" ] || [ ! -f "$lib" ]; then
		skip "flashtool on CAN ($bus or $lib is not built: make)"
		return
	fi
	LOG="$WORK/can.out $WORK/can.err $WORK/bus.err"
	make -s -C "$K" KCONFIG_CONFIG="$ROOT/fixtures/configs/ebb36-g0b1.config" OUT="$WORK/out/ebb36/" \
		>/dev/null 2>&1
	export KFLASH_SIM_CANBUS=$WORK/canbus.sock
	"$bus" --socket "$KFLASH_SIM_CANBUS" --events "$KFLASH_SIM_EVENTS" --image-dir "$WORK/canimg" \
		--board "$boards/ebb36-can.board" \
		--board "$boards/ebb36-can.board:katapult,name=spare,canbus_uuid=112233445566" 2>"$WORK/bus.err" &
	pid=$!
	mkdir -p "$WORK/canimg"
	for _ in $(seq 200); do [ -S "$KFLASH_SIM_CANBUS" ] && break; sleep 0.01; done

	m=$(mark)
	LD_PRELOAD=$lib timeout 30 "$PY" "$FLASHTOOL" -i can0 -q >"$WORK/can.out" 2>"$WORK/can.err"
	rc=$?
	check "flashtool -i can0 -q: both unassigned nodes with their application, exit 0" \
		eval '[ $rc = 0 ] && grep -qx "Detected UUID: 91c5e4099ac9, Application: Klipper" "$WORK/can.out" &&
		      grep -qx "Detected UUID: 112233445566, Application: Katapult" "$WORK/can.out" &&
		      [ "$(tail -1 "$WORK/can.out")" = "CANBus UUID Query Complete" ] &&
		      has_event "$m" "flashtool start can:can0 query$" &&
		      has_event "$m" "flashtool query 91c5e4099ac9 Klipper$"'
	m=$(mark)
	LD_PRELOAD=$lib timeout 60 "$PY" "$FLASHTOOL" -i can0 -u 91c5e4099ac9 -f "$bin" >"$WORK/can.out" 2>"$WORK/can.err"
	rc=$?
	check "flashtool -i can0 -u UUID -f klipper.bin: jump, node id, CONNECT, GET_CANBUS_ID, write, verify, COMPLETE" \
		eval '[ $rc = 0 ] && grep -qx "Sending bootloader jump command..." "$WORK/can.out" &&
		      grep -qx "Verifying canbus connection" "$WORK/can.out" &&
		      grep -qx "Programming Complete" "$WORK/can.out" &&
		      has_event "$m" "flashtool bootloader-request can:91c5e4099ac9 can0$" &&
		      has_event "$m" "simboard ebb36-can flash-complete bytes=" &&
		      event_before "flashtool verified" "flashtool complete$"'
	"$PY" -c 'import sys
fw, img = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(0 if img[:len(fw)] == fw and set(img[len(fw):]) <= {0xff} else 1)' "$bin" "$WORK/canimg/ebb36-can.bin"
	check "the CAN node holds the firmware" [ $? = 0 ]
	echo 0.05 >"$KFLASH_SIM_STATE/flashtool-retry-scale"
	m=$(mark)
	LD_PRELOAD=$lib timeout 60 "$PY" "$FLASHTOOL" -i can0 -u 0a0b0c0d0e0f -f "$bin" >"$WORK/can.out" 2>"$WORK/can.err"
	rc=$?
	check "flashtool -u of a UUID nobody has: CONNECT and COMPLETE go unanswered, exit 1" \
		eval '[ $rc = 1 ] && grep -q "Error sending command \[CONNECT\] to Device" "$WORK/can.err" &&
		      grep -q "Error sending command \[COMPLETE\] to Device" "$WORK/can.err" &&
		      has_event "$m" "flashtool complete no-answer$"'
	rm -f "$KFLASH_SIM_STATE/flashtool-retry-scale"
	LD_PRELOAD=$lib timeout 30 "$PY" "$FLASHTOOL" -i can7 -q >"$WORK/can.out" 2>"$WORK/can.err"
	check "flashtool -i on an interface that does not exist: 'Unable to bind socket to can7', exit 1" \
		eval '[ $? = 1 ] && grep -q "FlashError: Unable to bind socket to can7" "$WORK/can.err"'
	if "$PY" -c 'import socket; socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)' 2>/dev/null; then
		skip "flashtool -i without AF_CAN: this kernel has AF_CAN"
	else
		env -u KFLASH_SIM_CANBUS timeout 30 "$PY" "$FLASHTOOL" -i can0 -q >"$WORK/can.out" 2>"$WORK/can.err"
		check "flashtool -i without any CAN socket (no AF_CAN, no simulated bus): the OSError, exit 1" \
			eval '[ $? = 1 ] && grep -q "^OSError: \[Errno 97\]" "$WORK/can.err"'
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset KFLASH_SIM_CANBUS
}

# ------------------------------------------------------------ USB flows (umockdev)

test_simhost() {
	local rc m bin=$WORK/out/octopus/klipper.bin board=$ROOT/fixtures/boards/octopus-f446.board
	# the copied checkout's lib/katapult/flashtool.py runs the fake Katapult's
	local KFLASH_SIM_FAKES=$FAKES
	export KFLASH_SIM_FAKES
	if [ ! -x "$SIMHOST" ] || [ ! -f "$board" ]; then
		skip "USB flows under umockdev ($SIMHOST is not built: make build/kflash-simhost)"
		return
	fi
	if ! "$PY" -c 'import serial' 2>/dev/null; then
		skip "USB flows: $PY has no pyserial"
		return
	fi
	LOG="$WORK/host.out $WORK/host.err"
	m=$(mark)
	timeout 60 "$SIMHOST" --events "$KFLASH_SIM_EVENTS" --image-dir "$WORK/images" --board "$board" -- \
		"$PY" "$FLASHTOOL" -d /dev/ttyACM0 -f "$bin" >"$WORK/host.out" 2>"$WORK/host.err"
	rc=$?
	check "flashtool on a USB board running Klipper: asks for the bootloader, finds Katapult, flashes" \
		eval '[ $rc = 0 ] && grep -qx "Detected USB device running Klipper" "$WORK/host.out" &&
		      grep -q "^Detected new USB Device: 1d50:6177 katapult" "$WORK/host.out" &&
		      grep -qx "Programming Complete" "$WORK/host.out" &&
		      has_event "$m" "flashtool bootloader-request /dev/ttyACM0 1d50:614e$" &&
		      has_event "$m" "flashtool reconnect /dev/ttyACM[0-9]+ 1d50:6177$"'
	m=$(mark)
	timeout 60 "$SIMHOST" --events "$KFLASH_SIM_EVENTS" --image-dir "$WORK/images2" --board "$board" -- \
		make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" flash \
		FLASH_DEVICE=/dev/ttyACM0 >"$WORK/host.out" 2>"$WORK/host.err"
	rc=$?
	check "make flash on a USB board: 1200 baud, Katapult found, lib/katapult/flashtool.py flashes it" \
		eval '[ $rc = 0 ] && grep -q "^Entering bootloader on /dev/ttyACM0" "$WORK/host.err" &&
		      grep -q "lib/katapult/flashtool.py -d /dev/serial/by-path/" "$WORK/host.err" &&
		      grep -qx "Programming Complete" "$WORK/host.out" && has_event "$m" "flash_usb found 1d50:6177$" &&
		      has_event "$m" "flash_usb exit 0$"'
	"$PY" - "$bin" "$WORK/images2" <<'EOF'
import os, sys
fw = open(sys.argv[1], 'rb').read()
imgs = [os.path.join(sys.argv[2], f) for f in os.listdir(sys.argv[2])]
sys.exit(0 if any(open(p, 'rb').read()[:len(fw)] == fw for p in imgs) else 1)
EOF
	check "make flash on a USB board: the board holds the firmware" [ $? = 0 ]

	# a board that ignores the request (no Katapult): dfu-util, which this
	# host lacks; through sudo Klipper's help text, with NOSUDO a traceback
	m=$(mark)
	timeout 60 "$SIMHOST" --events "$KFLASH_SIM_EVENTS" --image-dir "$WORK/images3" \
		--board "$board,fault=no-bootloader" -- \
		make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" flash \
		FLASH_DEVICE=/dev/ttyACM0 >"$WORK/host.out" 2>"$WORK/host.err"
	rc=$?
	check "make flash, no Katapult, sudo: 'sudo: dfu-util: command not found', Klipper's help, make exits 2" \
		eval '[ $rc = 2 ] && grep -qx "sudo: dfu-util: command not found" "$WORK/host.err" &&
		      grep -q "^Failed to flash to /dev/ttyACM0: Error running dfu-util" "$WORK/host.err" &&
		      grep -q "Error 255$" "$WORK/host.err" && has_event "$m" "flash_usb found 1d50:614e$"'
	m=$(mark)
	timeout 60 "$SIMHOST" --events "$KFLASH_SIM_EVENTS" --image-dir "$WORK/images3" \
		--board "$board,fault=no-bootloader" -- \
		make -C "$K" KCONFIG_CONFIG="$WORK/cfg/octopus/.config" OUT="$WORK/out/octopus/" flash \
		FLASH_DEVICE=/dev/ttyACM0 NOSUDO=1 >"$WORK/host.out" 2>"$WORK/host.err"
	rc=$?
	check "make flash NOSUDO=1: dfu-util run without sudo, python's FileNotFoundError, make exits 2 (Error 1)" \
		eval '[ $rc = 2 ] && grep -qx "FileNotFoundError: \[Errno 2\] No such file or directory: .dfu-util." "$WORK/host.err" &&
		      grep -q "Error 1$" "$WORK/host.err" && ! has_event "$m" "sudo "'
}

SECONDS=0
for t in event_format systemctl sudo ip make moonraker flashtool flashtool_can simhost; do
	start=$SECONDS
	"test_$t"
	echo "# $t: $((SECONDS - start)) s"
done
echo "($SECONDS s)"
if [ "$SKIP" -gt 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]
