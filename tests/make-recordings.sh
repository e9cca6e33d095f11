#!/bin/sh
# tests/make-recordings.sh - `make recordings`: regenerates every session in
# fixtures/recordings/ in the simulator, from the scenario that sets up its
# situation. Run it when kflash's calls change on purpose (a replay then
# diverges in tests/test-recordings.sh), look at `git diff --stat`, commit.
#
# Each recording is its scenario with `kflash --record DIR` as the command,
# run by sim/scenario, so it is only kept when the scenario's expectations
# (exit code, messages, event order, Klipper running) still hold. Nothing in
# fixtures/recordings/ changes unless every recording was made.
#
# usage: tests/make-recordings.sh [NAME...]   (default: all of them)
cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
OUT=fixtures/recordings

# NAME  SCENARIO (in fixtures/scenarios/) whose setup and run it records
# [held]: not made unless named, while its replay diverges inside kflash
RECORDINGS='
flash-all-happy                flash-all-one-window
flash-katapult-fallback        flash-katapult-fails-make-flash-works
flash-tool-timeout             flash-tool-hangs
flash-ctrl-c-mid-flash         flash-sigint-during-flash
flash-board-never-returns      flash-board-never-returns
flash-mcu-mismatch             flash-mcu-mismatch
can-flash-all-bridge           can-flash-all-with-bridge
'

work=$(mktemp -d "${TMPDIR:-/tmp}/kflash-recordings.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

want=" $* "
printf '%s\n' "$RECORDINGS" | {
	while read -r name scen held; do
		[ -n "$name" ] || continue
		if [ "$want" = "  " ]; then
			[ -z "$held" ] || { echo "make-recordings: $name held (name it to make it)"; continue; }
		else
			case $want in *" $name "*) ;; *) continue ;; esac
		fi
		src=fixtures/scenarios/$scen.scenario
		[ -f "$src" ] || { echo "make-recordings: no scenario $src" >&2; exit 2; }
		grep -q '^run: kflash ' "$src" ||
			{ echo "make-recordings: $src does not run kflash" >&2; exit 2; }
		# the scenario's name is the recording's, so sim/scenario's lines say
		# which; timing limits are left out (a shared machine, not the point)
		sed -e "s|^run: kflash |run: kflash --record $work/rec/$name |" \
			-e '/^expect-downtime:/d' "$src" > "$work/$name.scenario"
	done
}
[ $? -eq 0 ] || exit 2
mkdir -p "$work/rec"
set -- "$work"/*.scenario
[ -e "$1" ] || { echo "make-recordings: no recording named $want" >&2; exit 2; }

# -j2: the machine may be shared
/usr/bin/python3 sim/scenario -j2 "$@" || {
	echo "make-recordings: a scenario failed; fixtures/recordings/ is unchanged" >&2
	exit 1
}

mkdir -p "$OUT"
for s in "$@"; do
	name=$(basename "$s" .scenario)
	[ -f "$work/rec/$name/session.json" ] ||
		{ echo "make-recordings: $name wrote no session" >&2; exit 1; }
done
for s in "$@"; do
	name=$(basename "$s" .scenario)
	rm -rf "${OUT:?}/$name"
	cp -R "$work/rec/$name" "$OUT/$name"
	chmod -R u+rwX,go+rX "$OUT/$name"
done
du -sk "$OUT"/* | sed 's|^|make-recordings: KiB |'
echo "make-recordings: $# recordings in $REPO/$OUT; check them with tests/test-recordings.sh"
