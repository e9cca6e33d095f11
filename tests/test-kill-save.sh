#!/bin/sh
# tests/test-kill-save.sh - kill kflash with SIGKILL at many moments while it
# saves the registry: afterwards the file is always the old or the new one,
# never a broken one.
KFLASH=${KFLASH:-build/kflash}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export KFLASH_CONFIG_DIR="$dir"
"$KFLASH" settings timeout.build 100 > /dev/null || exit 1
old=100

# how long one save takes here (a sanitizer build is much slower)
t0=$(date +%s%N)
for v in 101 102 103 104 105; do "$KFLASH" settings timeout.build $v > /dev/null; done
t1=$(date +%s%N)
old=105
dur_us=$(( (t1 - t0) / 5000 ))
# kill delays spread over 0 .. 1.2 x that time, in 60 steps
delays=$(awk -v d="$dur_us" 'BEGIN { for (i = 0; i < 60; i++) printf "%.6f ", i * d * 1.2 / 60 / 1e6 }')

runs=300 broken=0 kills=0 new=0 i=0
set -- $delays
while [ $i -lt $runs ]; do
	v=$((200 + i))
	[ $# -eq 0 ] && set -- $delays
	delay=$1
	shift
	"$KFLASH" settings timeout.build $v > /dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 $pid 2>/dev/null && kills=$((kills + 1))
	wait $pid 2>/dev/null
	got=$("$KFLASH" settings timeout.build 2>/dev/null)
	case "$got" in
	$v) new=$((new + 1)); old=$v ;;
	$old) ;;
	*) broken=$((broken + 1)); echo "broken registry after kill $i:"; cat "$dir/devices.json" ;;
	esac
	i=$((i + 1))
done
left=$(ls "$dir" | grep -c tmp || true)
echo "kill-save: $runs runs (a save takes ~${dur_us} us here), $kills killed," \
     "$new saved the new value first, $broken broken registries, $left temp files left"
# the kills must land on both sides of the save for the test to mean much
[ "$broken" -eq 0 ] && [ "$new" -gt 0 ] && [ "$kills" -gt 0 ]
