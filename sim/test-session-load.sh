#!/bin/bash
# test-session-load.sh - checks that a recorded session loads into the simulator: `sim/printer --session DIR` builds the host from the recording (its boards in their recorded modes, its registry pointed at the simulator's fakes, its board configs) so the recorded command runs again live, `--board DIR/boards/NAME` loads one recorded board, and a bad session is refused with exit 2 naming the file. Every recording in fixtures/recordings/ reruns under --session with its recorded exit code, the faults it met inferred from its calls.
#
# Usage: [KFLASH_BUILD=build] sim/test-session-load.sh
# Uses fixtures/sessions-test/flash-two-boards (copied, never used in place):
# an stm32f446xx and an rp2040, both in Klipper mode, written to
# doc/sessions.md, and each of fixtures/recordings/ (copied too). Builds nothing. Exits 77 (skip) with "SKIP: reason" when
# umockdev cannot run here. Ends with "test-session-load: N passed, N failed".
set -u
unset KFLASH_SIM_STATE KFLASH_SIM_CONTROL KFLASH_CONFIG_DIR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KFLASH_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export KFLASH_BUILD=$BUILD
PRINTER=${PRINTER:-$ROOT/sim/printer}
PY=/usr/bin/python3

if ! command -v umockdev-wrapper >/dev/null 2>&1; then
	echo "SKIP: umockdev-wrapper not found (apt-get install umockdev)"
	exit 77
fi
for p in "$BUILD/kflash" "$BUILD/kflash-simhost"; do
	if [ ! -x "$p" ]; then
		echo "FAIL: $p is not built (make, or set KFLASH_BUILD)"
		exit 1
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-session-load.XXXXXX")
STATES=$WORK/states
: >"$STATES"
cleanup() {
	# sim/printer keeps each host's state dir; this test does not
	while read -r d; do
		case $d in /tmp/kflash-sim.*|"${TMPDIR:-/tmp}"/kflash-sim.*) rm -rf "$d" ;; esac
	done <"$STATES"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp -r "$ROOT/fixtures/sessions-test" "$WORK/sessions"
S=$WORK/sessions/flash-two-boards
PASS=0 FAIL=0

# run NAME ARGS...: sim/printer ARGS... with stdout in $WORK/NAME.out,
# stderr in $WORK/NAME.err, exit code in $RC; remembers the state dir
run() {
	local name=$1
	shift
	"$PRINTER" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null
	RC=$?
	sed -n 's/^state dir: //p' "$WORK/$name.err" >>"$STATES"
	STATE=$(sed -n 's/^state dir: //p' "$WORK/$name.err" | tail -1)
}

ok() { echo "ok: $1"; PASS=$((PASS + 1)); }
bad() {
	echo "FAIL: $1"
	shift
	for f in "$@"; do
		echo "--- $f"
		tail -30 "$f"
	done
	FAIL=$((FAIL + 1))
}

# boards_are FILE NAME=MODE...: list --json in FILE has each board NAME
# registered, connected, in MODE
boards_are() {
	"$PY" - "$@" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
got = {b["name"]: (b["connected"], b["mode"]) for b in doc["boards"]}
want = {a.split("=")[0]: (True, a.split("=")[1]) for a in sys.argv[2:]}
if got != want:
    sys.exit("boards %r, wanted %r" % (got, want))
EOF
}

# -- the recorded boards, registry and configs make the host -----------------
run list --session "$S" -- kflash list --json
if [ "$RC" -eq 0 ] && boards_are "$WORK/list.out" octopus=klipper sb2040=klipper \
	2>"$WORK/list.why"; then
	ok "--session: list --json shows both recorded boards connected, in Klipper mode"
else
	bad "--session: list --json (exit $RC)" "$WORK/list.why" "$WORK/list.out" "$WORK/list.err"
fi

run reg --session "$S" -- sh -c 'cat "$KFLASH_CONFIG_DIR/devices.json"; echo;
	cmp "$KFLASH_CONFIG_DIR/configs/octopus/.config" "$1" &&
	cmp "$KFLASH_CONFIG_DIR/configs/sb2040/.config" "$2" && echo CONFIGS-OK' sh \
	"$ROOT/fixtures/configs/octopus-f446.config" "$ROOT/fixtures/configs/sb2040.config"
if [ "$RC" -eq 0 ] && grep -q CONFIGS-OK "$WORK/reg.out" &&
	sed '$d' "$WORK/reg.out" | "$PY" -c '
import json, sys
s = json.load(sys.stdin)["settings"]
assert s["klipper_dir"] == "~/klipper" and s["katapult_dir"] == "~/katapult", s
assert s["python"] == "/usr/bin/python3", s
assert s["moonraker_url"].startswith("http://127.0.0.1:"), s
assert "moonraker_api_key" not in s, s          # it was <redacted>
assert s["service"] == "klipper", s             # the recorded unit, kept
' 2>"$WORK/reg.why"; then
	ok "--session: the registry points at the simulator's fakes, the configs are the recorded ones"
else
	bad "--session: registry and configs (exit $RC)" "$WORK/reg.why" "$WORK/reg.out" "$WORK/reg.err"
fi

# -- the recorded command runs again, live --------------------------------------
run flash --session "$S" -- kflash flash --all --yes
if [ "$RC" -eq 0 ] && grep -Eq '^octopus +katapult +flashed' "$WORK/flash.out" &&
	grep -Eq '^sb2040 +katapult +flashed' "$WORK/flash.out" &&
	[ -s "$STATE/images/octopus.bin" ] && [ -s "$STATE/images/sb2040.bin" ]; then
	ok "--session -- kflash flash --all --yes flashes both boards (exit 0)"
else
	bad "--session -- kflash flash --all --yes (exit $RC)" "$WORK/flash.out" "$WORK/flash.err"
fi

# the flash above ran kflash, which recorded its own session in the simulated
# host: that one reloads too, and its recorded command (run when none is
# given) ends the same way
REC=$(ls -d "$STATE"/home/.local/state/kflash/sessions/*-flash 2>/dev/null | tail -1)
if [ -z "$REC" ]; then
	echo "note: kflash recorded no session here (no recorder yet); using the hand-made one"
	REC=$S
fi
run recorded --session "$REC"
if [ "$RC" -eq 0 ] &&
	grep -q 'running the recorded command: kflash flash --all --yes' "$WORK/recorded.err" &&
	grep -qx "exit 0; the recorded run's: 0" "$WORK/recorded.err" &&
	grep -Eq '^octopus +katapult +flashed' "$WORK/recorded.out" &&
	grep -Eq '^sb2040 +katapult +flashed' "$WORK/recorded.out"; then
	ok "the session kflash recorded reloads, and its recorded command (none given) ends the same way"
else
	bad "--session on kflash's own recording, no command (exit $RC)" "$WORK/recorded.out" \
		"$WORK/recorded.err"
fi

# -- the world as recorded: Moonraker said printing, Klipper was stopped ---------
cp -r "$S" "$WORK/printing"
"$PY" - "$WORK/printing/calls.jsonl" <<'EOF'
import json, sys
body = {"result": {"status": {"print_stats": {"state": "printing", "filename": "benchy.gcode"},
                              "virtual_sdcard": {"progress": 0.42}}}}
calls = [
    {"n": 7, "op": "spawn", "args": {"argv": ["systemctl", "is-active", "klipper"], "env": None,
     "cwd": None, "in": "null", "out": "capture", "idle": False, "detach": False,
     "ready_ms": 0, "self": False}, "ret": {"r": 0, "pid": 4242}, "ms": 1},
    {"n": 8, "op": "wait", "args": {"pid": 4242, "deadline": 31000},
     "ret": {"r": 0, "exit": {"kind": "exited", "code": 3, "sig": 0, "err": 0,
             "interrupted_by": 0}, "lines": ["inactive"], "omitted": 0}, "ms": 2},
    {"n": 9, "op": "http_get", "args": {"url": "http://localhost:7125/printer/objects/query?print_stats&virtual_sdcard",
     "headers": ["X-Api-Key: <redacted>"], "timeout_ms": 5000},
     "ret": {"r": 0, "status": 200, "body": json.dumps(body)}, "ms": 3}]
with open(sys.argv[1], "a") as f:
    for c in calls:
        f.write(json.dumps(c) + "\n")
EOF
run world --session "$WORK/printing" -- sh -c 'cat "$KFLASH_SIM_STATE/service/klipper" "$KFLASH_SIM_STATE/moonraker.json"'
if [ "$RC" -eq 0 ] && grep -qx inactive "$WORK/world.out" && grep -q '"printing"' "$WORK/world.out"; then
	ok "--session: Klipper's recorded state and Moonraker's recorded print state are the host's"
else
	bad "--session: recorded Klipper and Moonraker state (exit $RC)" "$WORK/world.out" "$WORK/world.err"
fi

# -- one recorded board --------------------------------------------------------
run one --board "$S/boards/sb2040" --board "$S/boards/octopus.umockdev:katapult" \
	-- kflash list --json
if [ "$RC" -eq 0 ] && "$PY" - "$WORK/one.out" <<'EOF' 2>"$WORK/one.why"; then
import json, sys
doc = json.load(open(sys.argv[1]))
got = sorted((u["path"].rsplit("/", 1)[1], u["mode"]) for u in doc["unregistered"])
want = [("usb-Klipper_rp2040_E6626005A7651729-if00", "klipper"),
        ("usb-katapult_stm32f446xx_3A0039000851313433343333-if00", "katapult")]
assert got == want, got
EOF
	ok "--board DIR/boards/NAME (and NAME.umockdev:katapult) loads one recorded board"
else
	bad "--board DIR/boards/NAME (exit $RC)" "$WORK/one.why" "$WORK/one.out" "$WORK/one.err"
fi

# a board whose Klipper keeps its own USB serial (Klipper's default 12345)
# and one udev shows in Katapult as CanBoot: the chip id comes from the .json
mkdir -p "$WORK/odd/boards"
sed -e 's/E6626005A7651729/12345/g' -e 's/rp2040/lpc1769/g' -e 's/1\.3/1.4/g' \
	-e 's/ttyACM1/ttyACM2/g' "$S/boards/sb2040.umockdev" >"$WORK/odd/boards/lpc.umockdev"
echo '{"name": "lpc", "key": "lpc", "mcu": "lpc1769", "method": "katapult",
 "serial": "0F00E0E0A1B2C3D4E5F60718293A4B5C", "port": "1.4", "mode": "klipper",
 "app_start": "0x4000", "device": null}' >"$WORK/odd/boards/lpc.json"
sed -e 's/Klipper/CanBoot/g' -e 's/614e/6177/g' "$S/boards/octopus.umockdev" \
	>"$WORK/odd/boards/old.umockdev"
echo '{"name": "old", "key": "old", "mcu": "stm32f446xx", "method": "katapult",
 "serial": null, "port": null, "mode": "katapult", "app_start": null}' \
	>"$WORK/odd/boards/old.json"
run odd --board "$WORK/odd/boards/lpc" --board "$WORK/odd/boards/old" -- kflash list --json
if [ "$RC" -eq 0 ] && grep -q '"usb-Klipper_lpc1769_12345-if00"\|/usb-Klipper_lpc1769_12345-if00"' "$WORK/odd.out" &&
	grep -q 'usb-CanBoot_stm32f446xx_3A0039000851313433343333-if00' "$WORK/odd.out" &&
	grep -qx 'usb_serial=12345' "$STATE/boards/lpc.board" &&
	grep -qx 'serial=0F00E0E0A1B2C3D4E5F60718293A4B5C' "$STATE/boards/lpc.board" &&
	grep -qx 'bootloader_manufacturer=CanBoot' "$STATE/boards/old.board"; then
	ok "a recorded board keeps its Klipper USB serial apart from its chip id, and a CanBoot bootloader"
else
	bad "custom USB serial / CanBoot board (exit $RC)" "$WORK/odd.out" "$WORK/odd.err" \
		"$STATE/boards/lpc.board" "$STATE/boards/old.board"
fi

# a session with a third board, registered with its Klipper USB serial 12345
# and the chip id kflash learned in Katapult, found in Katapult mode, recorded with no by-path link and no
# port: it is simulated on a free port, and back in Klipper it is 12345 again
cp -r "$S" "$WORK/third"
LPC=0F00E0E0A1B2C3D4E5F60718293A4B5C
printf '%s\n' "P: /devices/platform/kflash/usb1/1-1" "E: SUBSYSTEM=usb" \
	"E: DEVTYPE=usb_device" "A: idVendor=1d50" "A: idProduct=6177" \
	"A: manufacturer=katapult" "A: product=lpc1769" "A: serial=$LPC" "" \
	"P: /devices/platform/kflash/usb1/1-1/1-1:1.0/tty/ttyACM2" "N: ttyACM2" \
	"E: SUBSYSTEM=tty" "E: DEVNAME=/dev/ttyACM2" "E: ID_VENDOR_ID=1d50" \
	"E: ID_MODEL_ID=6177" "E: ID_SERIAL_SHORT=$LPC" "E: ID_USB_DRIVER=cdc_acm" \
	"E: DEVLINKS=/dev/serial/by-id/usb-katapult_lpc1769_$LPC-if00" \
	>"$WORK/third/boards/lpc.umockdev"
echo "{\"name\": \"lpc\", \"key\": \"lpc\", \"mcu\": \"lpc1769\", \"method\": \"katapult\",
 \"serial\": \"$LPC\", \"port\": null, \"mode\": \"katapult\", \"app_start\": null,
 \"device\": \"usb-katapult_lpc1769_$LPC-if00\"}" >"$WORK/third/boards/lpc.json"
"$PY" - "$WORK/third/calls.jsonl" "$LPC" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
out = [lines[0]]
for line in lines[1:]:
    c = json.loads(line)
    if c["args"].get("path", "").endswith("/devices.json"):
        reg = json.loads(c["ret"]["data"])
        reg["boards"].append({"key": "lpc", "name": "lpc", "mcu": "lpc1769",
                              "pattern": "usb-*_lpc1769_12345-if*", "method": "default",
                              "flashable": True, "katapult_serial": sys.argv[2]})
        c["ret"]["data"] = json.dumps(reg)
    out.append(json.dumps(c))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
run third --session "$WORK/third" -- kflash list --json
if [ "$RC" -eq 0 ] && boards_are "$WORK/third.out" octopus=klipper sb2040=klipper lpc=katapult \
	2>"$WORK/third.why" && grep -qx 'usb_serial=12345' "$STATE/boards/lpc.board" &&
	grep -qx "serial=$LPC" "$STATE/boards/lpc.board" && grep -qx 'port=1.1' "$STATE/boards/lpc.board" &&
	grep -q 'lpc: recorded on port 1, simulated on 1.1' "$WORK/third.err"; then
	ok "a board found in Katapult keeps its registered Klipper serial; one with no port gets a free one"
else
	bad "Katapult-mode board with its own Klipper serial (exit $RC)" "$WORK/third.why" \
		"$WORK/third.out" "$WORK/third.err" "$STATE/boards/lpc.board"
fi

# a session without boards/ (kflash worked on none): udev's answers in
# calls.jsonl still say what was plugged in
cp -r "$S" "$WORK/udev-only"
rm -r "$WORK/udev-only/boards"
"$PY" - "$WORK/udev-only/calls.jsonl" <<'EOF'
import json, sys
BYPATH = "/dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:%s:1.0"
devs = [{"devnode": "/dev/ttyACM%d" % i,
         "by_id": "/dev/serial/by-id/usb-Klipper_%s_%s-if00" % (mcu, serial),
         "by_path": BYPATH % port, "vid": "1d50", "pid": "614e",
         "manufacturer": "Klipper", "product": mcu, "serial": serial, "driver": "cdc_acm"}
        for i, (mcu, serial, port) in enumerate((("stm32f446xx", "3A0039000851313433343333", "1.2"),
                                                  ("rp2040", "E6626005A7651729", "1.3")))]
devs.append({"devnode": "/dev/ttyACM2",
             "by_id": "/dev/serial/by-id/usb-Beacon_Beacon_RevH_5C1E6E1A5150484153202020FF0C2A3B-if00",
             "by_path": BYPATH % "1.4", "vid": "04d8", "pid": "e72b", "manufacturer": "Beacon",
             "product": "Beacon RevH", "serial": "5C1E6E1A5150484153202020FF0C2A3B",
             "driver": "cdc_acm"})
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"n": 7, "op": "enumerate", "args": {},
                        "ret": {"r": 0, "devs": devs}, "ms": 4}) + "\n")
EOF
run udev --session "$WORK/udev-only" -- kflash list --json
if [ "$RC" -eq 0 ] && boards_are "$WORK/udev.out" octopus=klipper sb2040=klipper 2>"$WORK/udev.why" &&
	grep -q 'usb-Beacon_Beacon_RevH_5C1E6E1A5150484153202020FF0C2A3B-if00' "$WORK/udev.out"; then
	ok "a session without boards/: the boards udev showed kflash, a probe too, are plugged in"
else
	bad "a session without boards/ (exit $RC)" "$WORK/udev.why" "$WORK/udev.out" "$WORK/udev.err"
fi

# a session in which kflash read no devices.json: the registry is made of
# session.json's settings and each board's .json
cp -r "$S" "$WORK/no-registry"
grep -v '/devices.json"' "$S/calls.jsonl" >"$WORK/no-registry/calls.jsonl"
run noreg --session "$WORK/no-registry" -- kflash list --json
if [ "$RC" -eq 0 ] && boards_are "$WORK/noreg.out" octopus=klipper sb2040=klipper 2>"$WORK/noreg.why"; then
	ok "a session without a devices.json read: the boards' .json and the settings make the registry"
else
	bad "a session without a devices.json read (exit $RC)" "$WORK/noreg.why" "$WORK/noreg.out" "$WORK/noreg.err"
fi

# -- every recording reruns live with its recorded outcome ----------------------
# kflash made each of fixtures/recordings/ in the simulator, some against a
# misbehaving world (a flash tool that failed or hung, a board that never
# came back, a Ctrl+C): --session infers those faults from calls.jsonl, so
# the recorded command (none given) ends with the recorded exit code. Two at
# a time: the machine may be shared.
cp -r "$ROOT/fixtures/recordings" "$WORK/recordings"
rerun() {
	local name=$1
	"$PRINTER" --session "$WORK/recordings/$name" >"$WORK/rec-$name.out" \
		2>"$WORK/rec-$name.err" </dev/null
	echo $? >"$WORK/rec-$name.rc"
}
set -- "$WORK"/recordings/*/
i=0
for d in "$@"; do
	rerun "$(basename "$d")" &
	i=$((i + 1))
	[ $((i % 2)) -eq 0 ] && wait
done
wait
for d in "$@"; do
	name=$(basename "$d")
	sed -n 's/^state dir: //p' "$WORK/rec-$name.err" >>"$STATES"
	want=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["exit"])' \
		"$d/session.json")
	got=$(cat "$WORK/rec-$name.rc")
	if [ "$got" = "$want" ] && grep -qx "exit $got; the recorded run's: $want" "$WORK/rec-$name.err"; then
		ok "recording $name reruns under --session with its recorded exit code $want"
	else
		bad "recording $name: exit $got under --session, recorded $want" "$WORK/rec-$name.err"
	fi
done
# what the rerun imitates is said, with the calls it comes from
if grep -q 'after_complete=gone.*call' "$WORK/rec-flash-board-never-returns.err" &&
	grep -q 'flashtool fail once.*call' "$WORK/rec-flash-katapult-fallback.err" &&
	grep -q 'flashtool hang.*call' "$WORK/rec-flash-tool-timeout.err" &&
	grep -q 'signal INT when .*call' "$WORK/rec-flash-ctrl-c-mid-flash.err" &&
	! grep -q 'inferred' "$WORK/rec-flash-all-happy.err"; then
	ok "--session says on stderr which faults it inferred and from which calls"
else
	bad "--session does not name the inferred faults" \
		"$WORK/rec-flash-board-never-returns.err" "$WORK/rec-flash-katapult-fallback.err"
fi

# the fallback's make flash edited into one that failed as flash_usb.py does
# when dfu-util fails: the rerun's make flash fails the same way
cp -r "$ROOT/fixtures/recordings/flash-katapult-fallback" "$WORK/mkflash-fails"
"$PY" - "$WORK/mkflash-fails" <<'EOF'
import json, sys
d = sys.argv[1]
lines = open(d + "/calls.jsonl").read().splitlines()
out, pid = [lines[0]], None
for line in lines[1:]:
    c = json.loads(line)
    if c["op"] == "spawn" and "FLASH_DEVICE=/dev/ttyACM0" in c["args"]["argv"]:
        pid = c["ret"]["pid"]
    elif c["op"] == "wait" and c["args"]["pid"] == pid:
        c["ret"]["exit"]["code"] = 2
        c["ret"]["lines"] = ["Failed to flash to /dev/ttyACM0: Error running dfu-util",
                             "make: *** [Makefile:90: flash] Error 255"]
    out.append(json.dumps(c))
open(d + "/calls.jsonl", "w").write("\n".join(out) + "\n")
meta = json.load(open(d + "/session.json"))
meta["exit"] = 1
json.dump(meta, open(d + "/session.json", "w"))
EOF
run mkflash --session "$WORK/mkflash-fails"
if [ "$RC" -eq 1 ] &&
	grep -q 'inferred from calls.jsonl: fault make-flash fail (calls [0-9]*, [0-9]*: make exited 2' "$WORK/mkflash.err" &&
	grep -q ' flash_usb fault make-flash fail' "$STATE/events.log"; then
	ok "a make flash that failed in the recording fails in the rerun (fault make-flash fail)"
else
	bad "a recorded make flash failure under --session (exit $RC)" "$WORK/mkflash.err"
fi

# a flash tool that failed in a way no fault of the simulator imitates: said
cp -r "$ROOT/fixtures/recordings/flash-katapult-fallback" "$WORK/odd-failure"
sed -i 's/Error sending command \[CONNECT\] to Device/the moon is in the wrong phase/g' \
	"$WORK/odd-failure/calls.jsonl"
run oddfail --session "$WORK/odd-failure" -- true
if [ "$RC" -eq 0 ] && grep -Eq 'not imitated: calls [0-9]+, [0-9]+: flashtool.py exited 1 printing "FlashError: the moon is in the wrong phase": no fault' "$WORK/oddfail.err" &&
	! grep -q 'inferred from' "$WORK/oddfail.err" && [ -z "$(ls "$STATE/state/fault")" ]; then
	ok "a recorded failure no fault imitates is named on stderr with its calls, nothing injected"
else
	bad "a failure no fault imitates (exit $RC)" "$WORK/oddfail.err"
fi

# -- bad sessions: exit 2, the file named, nothing left behind -----------------
# refused CASE FILE-IN-MESSAGE: the session at $WORK/CASE is refused
refused() {
	local left
	# a TMPDIR of its own: other simulated hosts may come and go in /tmp
	mkdir -p "$WORK/tmp-$1"
	TMPDIR=$WORK/tmp-$1 run "bad-$1" --session "$WORK/$1" -- kflash list --json
	left=$(ls "$WORK/tmp-$1" | wc -l)
	if [ "$RC" -eq 2 ] && grep -qF "$2" "$WORK/bad-$1.err" &&
		! grep -q Traceback "$WORK/bad-$1.err" && [ "$left" -eq 0 ]; then
		ok "$3: exit 2, names $2"
	else
		bad "$3 (exit $RC, $left state dirs left)" "$WORK/bad-$1.err"
	fi
}

cp -r "$S" "$WORK/broken-json"
printf '{"format": 1, "command": ["flash",\n' >"$WORK/broken-json/session.json"
refused broken-json "$WORK/broken-json/session.json:2" "a session.json that is not JSON"

cp -r "$S" "$WORK/no-session"
rm "$WORK/no-session/session.json"
refused no-session "$WORK/no-session/session.json: missing" "a session without session.json"

cp -r "$S" "$WORK/no-boards"
rm -r "$WORK/no-boards/boards"
refused no-boards "$WORK/no-boards/boards: missing" "a session without boards/ or udev's answers"

cp -r "$S" "$WORK/bad-calls"
sed -i '3s/.*/{"n": 2, "op": "getenv", "args": /' "$WORK/bad-calls/calls.jsonl"
refused bad-calls "$WORK/bad-calls/calls.jsonl:3" "a calls.jsonl line that is not JSON"

cp -r "$S" "$WORK/future"
sed -i 's/"format": 1/"format": 2/' "$WORK/future/session.json"
refused future "$WORK/future/session.json: format 2" "a session of another format"

echo "test-session-load: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
