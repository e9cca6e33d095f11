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
broken=0 kills=0 new=0 i=0
while [ $i -lt 300 ]; do
	v=$((200 + i))
	"$KFLASH" settings timeout.build $v > /dev/null 2>&1 &
	pid=$!
	# spread the kill over the process's whole life (0 to ~3 ms)
	n=$((i * 53 % 9000))
	while [ $n -gt 0 ]; do n=$((n - 1)); done
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
left=$(ls "$dir" | grep -c tmp || true); ls "$dir" | grep tmp | head -3
echo "kill-save: 300 runs, $kills killed, $new saved the new value first, $broken broken registries, $left temp files left"
# the kills must land on both sides of the save for the test to mean much
[ "$broken" -eq 0 ] && [ "$new" -gt 0 ] && [ "$new" -lt 300 ]
