#!/bin/sh
# tests/test-report.sh - kflash report bundles a session for a bug report:
# the one named, or the newest that failed; only the session's own files;
# a bundle that replays; a session kflash would refuse is refused.
cd "$(dirname "$0")/.." || exit 2
KFLASH=${KFLASH:-build/kflash}
case $KFLASH in /*) ;; *) KFLASH=$(pwd)/$KFLASH ;; esac
REC=$(pwd)/fixtures/recordings
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kflash-report.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

home=$tmp/home
sessions=$home/.local/state/kflash/sessions
mkdir -p "$sessions"
# a stray file in the session dir stays out of the bundle
cp -r "$REC/flash-all-happy" "$sessions/20261201T100000Z-flash"
cp -r "$REC/flash-tool-timeout" "$sessions/20261201T110000Z-flash"
cp -r "$REC/flash-mcu-mismatch" "$sessions/20261201T090000Z-flash"
echo junk >"$sessions/20261201T110000Z-flash/core.1234"
cp -r "$REC/flash-all-happy" "$sessions/20261201T120000Z-flash"

# without a name: the newest that failed, not the newest
out=$(env -i HOME="$home" PATH=/usr/bin:/bin "$KFLASH" report 2>"$tmp/err") ||
	no "kflash report exited $?: $(cat "$tmp/err")"
want="$home/kflash-report-20261201T110000Z-flash.tar.gz"
[ "$out" = "$want" ] || no "report printed '$out', not $want"
# as many calls as the recording holds (one a line), whatever version made it
ncalls=$(grep -c "\"op\"" "$REC/flash-tool-timeout/calls.jsonl")
grep -q "calls.jsonl ($ncalls calls)" "$tmp/err" || no "report does not say what is in it: $(cat "$tmp/err")"
grep -q 'API key is redacted' "$tmp/err" || no "report does not say what is left out"
list=$(tar -tzf "$want" | sort | tr '\n' ' ')
expect="20261201T110000Z-flash/boards/ 20261201T110000Z-flash/boards/octopus.json 20261201T110000Z-flash/boards/octopus.umockdev 20261201T110000Z-flash/calls.jsonl 20261201T110000Z-flash/session.json "
[ "$list" = "$expect" ] || no "the bundle holds: $list"

# the bundle unpacked replays as the session did
mkdir "$tmp/unpacked"
tar -xzf "$want" -C "$tmp/unpacked"
env -i HOME=/nonexistent PATH=/usr/bin:/bin "$KFLASH" replay \
	"$tmp/unpacked/20261201T110000Z-flash" >/dev/null 2>"$tmp/replay"
rc=$?
[ $rc -eq 1 ] || no "the unpacked bundle replays with exit $rc, not the recorded 1"
grep -q 'replay matched its recording' "$tmp/replay" || no "the unpacked bundle does not replay: $(tail -5 "$tmp/replay")"

# named; a directory that is no session is refused, exit 2, nothing written
env -i HOME="$home" PATH=/usr/bin:/bin "$KFLASH" report "$sessions/20261201T090000Z-flash/" \
	>/dev/null 2>"$tmp/err" || no "report of a named session failed: $(cat "$tmp/err")"
[ -f "$home/kflash-report-20261201T090000Z-flash.tar.gz" ] || no "no bundle for the named session"
mkdir "$tmp/not-a-session"
env -i HOME="$home" PATH=/usr/bin:/bin "$KFLASH" report "$tmp/not-a-session" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] || no "report of a non-session exited $rc, not 2"
grep -q 'session.json: is missing' "$tmp/err" || no "the refusal does not name the file: $(cat "$tmp/err")"
[ ! -e "$home/kflash-report-not-a-session.tar.gz" ] || no "a bundle was written for a non-session"

# nothing failed: says so and how to name one
rm -rf "$sessions/20261201T110000Z-flash" "$sessions/20261201T090000Z-flash"
env -i HOME="$home" PATH=/usr/bin:/bin "$KFLASH" report >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] || no "report with no failed session exited $rc"
grep -q 'no failed session in' "$tmp/err" || no "no 'no failed session' message: $(cat "$tmp/err")"

[ $fail -eq 0 ] && echo "test-report: the newest failed session is bundled, replays, and bad ones are refused"
exit $fail
