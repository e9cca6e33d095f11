#!/bin/bash
# test-faults.sh - the fault registry (sim/fake/lib/faults.py) against what
# names faults: the scenarios, the board files, the sim tests, the fake tools,
# the C tables of the board emulator and the host, and sim/fake/README.md.
# Then that the check fails when any of them disagrees.
#
# Usage: sim/test-faults.sh    (needs nothing built; exits 0 when all passed)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
FAULTS=$ROOT/sim/fake/lib/faults.py
WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-faults.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PASS=0
FAIL=0
check() {
	local what=$1
	shift
	if "$@"; then
		PASS=$((PASS + 1))
		echo "ok - $what"
	else
		FAIL=$((FAIL + 1))
		echo "not ok - $what"
		[ -s "$WORK/out" ] && sed 's/^/    /' "$WORK/out"
	fi
}

# runs the check with the registry changed by the python statement $1,
# extra files after it; output in $WORK/out, status in $rc
patched() {
	local change=$1
	shift
	PYTHONPATH=$ROOT/sim/fake/lib "$PY" -c "import sys, faults
$change
sys.exit(faults.main(['--check'] + sys.argv[1:]))" "$@" >"$WORK/out" 2>&1
	rc=$?
}
fails_with() { [ "$rc" = 1 ] && grep -qF -- "$1" "$WORK/out"; }

"$PY" "$FAULTS" --check >"$WORK/out" 2>&1
rc=$?
check "the registry, the fixtures, the sim tests, the fakes and the README agree" \
	eval '[ $rc = 0 ] && grep -q "uses checked" "$WORK/out" && ! grep -q " 0 uses checked" "$WORK/out"'
[ "$rc" = 0 ] && cat "$WORK/out"

# ---- what names a fault must name a registered one ------------------------
scenario() { printf 'title: t\nboard: octopus-f446\n%s\nrun: true\n' "$2" >"$WORK/$1.scenario"; }

scenario unknown-name "fault: flashtol fail"
patched "" "$WORK/unknown-name.scenario"
check "a scenario's fault nobody reads fails the check, naming the file, line and fault" \
	fails_with "unknown-name.scenario:3: no fault named 'flashtol'"

scenario unknown-word "fault: flashtool explode once"
patched "" "$WORK/unknown-word.scenario"
check "a word the fault does not have fails the check" \
	fails_with "fault flashtool: no word 'explode'"

scenario extra-arg "fault: flashtool fail 3"
patched "" "$WORK/extra-arg.scenario"
check "arguments to a word that takes none fail the check" \
	fails_with "fault flashtool fail: takes no arguments"

scenario override "board: octopus-f446,after_complete=later"
patched "" "$WORK/override.scenario"
check "a board override with a word the registry does not have fails the check" \
	fails_with "after_complete=later: not one of klipper katapult gone"

scenario control 'when: flashtool start => echo "yank octopus-f446" > "$KFLASH_SIM_CONTROL"'
patched "" "$WORK/control.scenario"
check "a control line with an unknown command fails the check" \
	fails_with "no control command 'yank'"

printf 'mcu=stm32f446xx\nserial=1\nport=1.2\nfault=loud\n' >"$WORK/loud.board"
patched "" "$WORK/loud.board"
check "a board file with an unregistered fault word fails the check" \
	fails_with "loud.board:4: fault=loud: not one of none silent corrupt-readback no-bootloader"

# ---- every entry is implemented where it says --------------------------------
patched "faults.FAULTS.append(faults.Fault('imaginary', faults.STATE, 'sudo', ['sim/fake/bin/sudo'], [faults.Word('fail', 'x')]))"
check "a registered state fault its fake never reads fails the check" \
	fails_with "fault imaginary: sim/fake/bin/sudo never reads it"

patched "faults.lookup(faults.STATE, 'sudo').words.append(faults.Word('sulk', 'x'))"
check "a registered word the fake does not handle fails the check" \
	fails_with "fault sudo sulk: sim/fake/bin/sudo does not handle the word"

patched "faults.lookup(faults.BOARD, 'fault').words.append(faults.Word('smoke', 'x'))"
check "a registered board word missing from the emulator's C table fails the check" \
	fails_with 'board fault smoke: no { "smoke", in sim/board.c'

patched "faults.lookup(faults.CONTROL, 'mode').words.append(faults.Word('dfu', 'x'))"
check "a registered control word the host does not handle fails the check" \
	fails_with "control mode dfu: sim/host_control.c does not handle the word"

# ---- and nothing is named that is not registered --------------------------------
patched "faults.FAULTS.remove(faults.lookup(faults.STATE, 'libusb')); faults.BY_NAME.pop((faults.STATE, 'libusb'))"
check "a fault a fake reads that the registry lacks fails the check" \
	fails_with "sim/fake/klipper/lib/fake_usbtool.py reads fault/libusb, which is not registered"

patched "f = faults.lookup(faults.BOARD, 'fault'); f.words = [w for w in f.words if w.name != 'silent']"
check "a board word in the C table that the registry lacks fails the check" \
	fails_with "sim/board.c: fault=silent is not registered"

patched "f = faults.lookup(faults.CONTROL, 'plug'); faults.FAULTS.remove(f); faults.BY_NAME.pop((faults.CONTROL, 'plug'))"
check "a control command in the host's table that the registry lacks fails the check" \
	fails_with "sim/host_control.c: control command plug is not registered"

patched "faults.lookup(faults.STATE, 'make-flash').words[0].effect = 'something else'"
check "a README table that is not the registry's fails the check" \
	fails_with "sim/fake/README.md: the fault table is not the registry's"

# ---- the fakes and sim/scenario use the registry at run time -------------------
PYTHONPATH=$ROOT/sim/fake/lib "$PY" -c 'import simfake; simfake.fault("imaginary")' >"$WORK/out" 2>&1
rc=$?
check "simfake.fault() refuses a name that is not registered" \
	eval '[ $rc != 0 ] && grep -q "fault .imaginary. is not in the registry" "$WORK/out"'

mkdir -p "$WORK/state/fault"
echo "explode" >"$WORK/state/fault/sudo"
KFLASH_SIM_STATE=$WORK/state "$PY" "$ROOT/sim/fake/bin/sudo" true >"$WORK/out" 2>&1
rc=$?
check "a fault file with an unregistered word is reported by the fake (and otherwise ignored)" \
	eval '[ $rc = 0 ] && grep -q "fault/sudo: fault sudo: no word .explode." "$WORK/out"'

KFLASH_BUILD=${KFLASH_BUILD:-build} "$PY" "$ROOT/sim/scenario" "$WORK/unknown-word.scenario" >"$WORK/out" 2>&1
rc=$?
check "sim/scenario refuses a scenario with an unregistered fault word before running it" \
	eval '[ $rc != 0 ] && grep -q "^ERROR unknown-word.scenario: .*no word .explode." "$WORK/out"'

echo "test-faults: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
