#!/bin/sh
# sim/test-scenario-reports.sh - the scenario runner fails a scenario on any
# sanitizer report, whatever the scenario expects: each scenario here
# expects exit 1, and a deliberately broken kflash (in a build dir of its
# own, beside the real simulated host) exits 1 after an ASan, LeakSanitizer
# or UBSan report on stderr or stdout, or in a setup step's output; and a
# kflash built with -fsanitize=address that really reads freed memory. The one that only
# fails (exit 1, no report) must pass.
cd "$(dirname "$0")/.." || exit 2
SIMHOST=${SIMHOST:-build/kflash-simhost}
if [ ! -x "$SIMHOST" ] || ! command -v umockdev-wrapper >/dev/null 2>&1; then
	echo "SKIP: needs $SIMHOST and umockdev-wrapper (make all with libumockdev-dev)"
	exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kflash-test-reports.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/build"
ln -s "$(cd "$(dirname "$SIMHOST")" && pwd)/$(basename "$SIMHOST")" "$WORK/build/kflash-simhost"

# the broken kflash: what it does is chosen by the scenario's run: line
cat > "$WORK/build/kflash" <<'EOF'
#!/bin/sh
case "$1" in
asan)	echo "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010" >&2 ;;
lsan)	echo "==4242==ERROR: LeakSanitizer: detected memory leaks" >&2 ;;
ubsan)	echo "src/registry.c:12:5: runtime error: signed integer overflow: 2147483647 + 1" ;;
real)	exec "$KFLASH_UAF" ;;
esac
echo "error: it failed" >&2
exit 1
EOF
chmod +x "$WORK/build/kflash"
cat > "$WORK/uaf.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
int main(void)
{
	char *volatile p = malloc(16);
	volatile char c;

	strcpy(p, "kflash");
	free(p);
	c = p[0];
	return c == 'k';
}
EOF
real=
if ${CC:-cc} -fsanitize=address -g -o "$WORK/build/kflash-uaf" "$WORK/uaf.c" 2>/dev/null; then
	real=real
else
	echo "note: ${CC:-cc} cannot build with -fsanitize=address; the real report is not tried"
fi
for what in asan lsan ubsan step failing $real; do
	cat > "$WORK/$what.scenario" <<EOF
title: a kflash that fails ($what)
board: octopus-f446
$([ $what = step ] && echo "step: kflash asan || true")
run: kflash $what
expect-exit: 1
EOF
done
out=$(TMPDIR="$WORK" KFLASH_BUILD="$WORK/build" KFLASH_UAF="$WORK/build/kflash-uaf" \
	ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 /usr/bin/python3 sim/scenario \
	-j4 "$WORK"/*.scenario 2>&1)
echo "$out"
fail=0
for what in asan lsan ubsan step $real; do
	if ! echo "$out" | grep -q "^FAIL $what.scenario"; then
		echo "FAILED: a report ($what) in a run expecting exit 1 passed"
		fail=1
	elif ! echo "$out" | grep -A3 "^FAIL $what.scenario" | grep -q "sanitizer report in"; then
		echo "FAILED: the failure of $what.scenario does not name the sanitizer report"
		fail=1
	fi
done
if ! echo "$out" | grep -q "^ok   failing.scenario"; then
	echo "FAILED: a run that only fails, as expected, did not pass"
	fail=1
fi
[ $fail -eq 0 ] && echo "ok: every sanitizer report fails its scenario, expected exit or not"
exit $fail
