#!/bin/sh
# shellcheck disable=SC2034 # rc and last are read in the checks' eval strings
# tests/test-build.sh - the build as a developer and a printer host meet it:
# `kflash --version` follows every commit, tag, checkout and edit; touching a
# header recompiles only what includes it; a missing library stops make with
# one line naming the Debian package, and only for the targets that need it;
# a printer host (pkg-config knowing only the product's libraries) builds
# and installs kflash, stripped, with its units, and uninstalls it; the
# product calls nothing Debian 11's glibc and libcurl lack; what the host's
# other programs read: the kflash-outdated units as installed (systemd-analyze
# verify; their command runs with the installed kflash and is the one the
# outdated-timer scenarios run) and scripts/system-dependencies.json in
# Moonraker's format with the README's packages; a kflash whose checkout
# moved on says so; ci/deps says in one line what it installs and keeps
# apt's output in a log.
# Works on a copy of this tree made into a scratch git repository.
set -u
cd "$(dirname "$0")/.." || exit 2
command -v git > /dev/null 2>&1 || { echo "SKIP: git is not installed"; exit 77; }
# a make started from `make check` would inherit its flags (SANITIZE=1, -j)
unset MAKEFLAGS MFLAGS MAKELEVEL SANITIZE BUILD CFLAGS

work=$(mktemp -d "${TMPDIR:-/tmp}/test-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
K=$work/kflash
mkdir "$K"
# the tree as it is now, committed or not
if git ls-files > /dev/null 2>&1; then
	git ls-files -co --exclude-standard | while IFS= read -r f; do
		[ -e "$f" ] && printf '%s\n' "$f"
	done | tar -cf - -T - | tar -xf - -C "$K"
else
	tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$K"
fi
# the scratch repository is ours: no user or system config, a fixed identity
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.com
export GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.com
git -C "$K" init -q && git -C "$K" add -A && git -C "$K" commit -qm one || exit 1

pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() {
	echo "not ok - $1"
	fail=$((fail + 1))
	sed 's/^/    | /' "$work/make.out" | tail -20
}
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# pkg-config that hides the modules named in $HIDE, as on a host without them
cat > "$work/pkg-config" << 'EOF'
#!/bin/sh
for a in "$@"; do for h in $HIDE; do [ "$a" = "$h" ] && exit 1; done; done
exec pkg-config "$@"
EOF
chmod +x "$work/pkg-config"

mk() { (cd "$K" && make -j2 CFLAGS=-O0 "$@") > "$work/make.out" 2>&1; rc=$?; }
# the objects the last make compiled, sorted, one line
compiled() { sed -n 's/.* -c -o \([^ ]*\) .*/\1/p' "$work/make.out" | sort | tr '\n' ' '; }
objs() { for f in "$@"; do printf 'build/obj/%s.o\n' "$(basename "$f" .c)"; done | sort | tr '\n' ' '; }
version_is() { [ "$("$K/build/kflash" --version)" = "kflash $1" ]; }
describe() { git -C "$K" describe --always --tags --dirty; }
lines() { [ "$(wc -l < "$work/make.out")" -eq "$1" ]; }
says() { grep -q -- "$1" "$work/make.out"; }
no_compiler_error() { ! grep -q "error:\|No such file" "$work/make.out"; }

# -- a printer host: no cmocka, no umockdev
HIDE="cmocka umockdev-1.0 gio-2.0" mk PKG_CONFIG="$work/pkg-config" all
check "make without cmocka and umockdev builds kflash" test -x "$K/build/kflash"
check "... and says in one line that the simulator's host needs libumockdev-dev" \
	eval 'says "kflash-simhost (the simulator) not built: it needs libumockdev-dev" &&
	      [ "$(grep -c libumockdev-dev "$work/make.out")" -eq 1 ] && [ ! -e "$K/build/kflash-simhost" ]'

# -- the README's packages only: a pkg-config that knows the product's
# libraries and nothing else, a fresh build dir, then make and make install
# as the README says, and make uninstall
cat > "$work/pkg-config-host" << 'EOF'
#!/bin/sh
for a in "$@"; do case $a in -*|libudev|jansson|libcurl) ;; *) exit 1 ;; esac; done
exec pkg-config "$@"
EOF
chmod +x "$work/pkg-config-host"
H=$work/host D=$work/dest
mk PKG_CONFIG="$work/pkg-config-host" BUILD="$H"
check "make with only the product's libraries known to pkg-config builds kflash" \
	eval '[ $rc -eq 0 ] && [ -x "$H/kflash" ] && says "kflash-simhost (the simulator) not built"'
# the compiler's own lists of what each product object included
check "... and no product object includes a header of cmocka, umockdev or GLib" \
	eval '[ -n "$(ls "$H"/obj/*.d)" ] && ! grep -l "cmocka\|umockdev\|glib" "$H"/obj/*.d'
mk PKG_CONFIG="$work/pkg-config-host" BUILD="$H" install DESTDIR="$D"
units=$D/usr/local/lib/systemd/system
installed="$D/usr/local/bin/kflash $D/usr/local/share/man/man1/kflash.1
$D/usr/local/share/bash-completion/completions/kflash
$units/kflash-outdated@.service $units/kflash-outdated@.timer"
all_there() { for f in $installed; do [ -f "$f" ] || return 1; done; }
none_there() { for f in $installed; do [ ! -e "$f" ] || return 1; done; }
check "make install DESTDIR: kflash, its man page, completion and units; nothing compiled" \
	eval '[ $rc -eq 0 ] && all_there && [ -z "$(compiled)" ]'
# readelf is binutils', which build-essential brings
symbols() { readelf -S "$1" | grep -q '\.symtab\|\.debug_'; }
check "... the installed kflash is stripped (the built one is not), and runs" \
	eval 'symbols "$H/kflash" && ! symbols "$D/usr/local/bin/kflash" &&
	      "$D/usr/local/bin/kflash" --version | grep -q "^kflash "'
check "... its service runs PREFIX's kflash (not DESTDIR's), nothing left to fill in" \
	eval 'grep -qx "ExecStart=/usr/local/bin/kflash flash --all --outdated --yes --json" \
		"$units/kflash-outdated@.service" && ! grep -q "@[a-z]*@" "$units/kflash-outdated@.service"'
mk PKG_CONFIG="$work/pkg-config-host" BUILD="$H" uninstall DESTDIR="$D"
check "make uninstall removes every file make install put there" eval '[ $rc -eq 0 ] && none_there'

# -- systemd: the units installed into a scratch prefix, so they name a
# kflash that is there (this machine's systemd is not told to reload)
P=$work/usr
mk PKG_CONFIG="$work/pkg-config-host" BUILD="$H" PREFIX="$P" reload_systemd=: install
units=$P/lib/systemd/system
user=$(id -un)
if command -v systemd-analyze > /dev/null 2>&1; then
	# an instance for this user; Documentation=man:kflash(1) is looked up
	# with man, in the installed pages
	(cd "$work" && MANPATH=$P/share/man systemd-analyze verify \
		"$units/kflash-outdated@$user.timer" "$units/kflash-outdated@$user.service") \
		> "$work/make.out" 2>&1
	rc=$?
	check "systemd-analyze verify: the timer and its service, nothing to say" \
		eval '[ $rc -eq 0 ] && [ ! -s "$work/make.out" ]'
else
	echo "ok - # SKIP systemd-analyze is not installed: the units are not verified"
fi
exec_start=$(sed -n 's/^ExecStart=//p' "$units/kflash-outdated@.service")
args=${exec_start#"$P/bin/kflash "}
echo "$exec_start" > "$work/make.out"
check "the service runs the installed kflash: $args" \
	eval '[ "$args" != "$exec_start" ] && [ -x "$P/bin/kflash" ]'
for s in outdated-timer outdated-timer-while-printing; do
	grep '^run:' "$K/fixtures/scenarios/$s.scenario" > "$work/make.out"
	check "... the command scenario $s runs" \
		eval '[ "$(sed -n "s/^run: kflash //p" "$K/fixtures/scenarios/$s.scenario")" = "$args" ]'
done
# the command as the unit runs it, with --dry-run, in a scratch home with
# one board and a Klipper checkout: it parses and runs up to asking
# Moonraker for the boards' versions (nothing listens there): exit 1,
# never a usage error
U=$work/user
mkdir -p "$U/.config/kflash" "$U/klipper/src"
touch "$U/klipper/Makefile" "$U/klipper/src/Kconfig"
git -C "$U/klipper" init -q && git -C "$U/klipper" add -A && git -C "$U/klipper" commit -qm klipper
cat > "$U/.config/kflash/devices.json" << 'EOF'
{"schema": 1, "settings": {"moonraker_url": "http://127.0.0.1:9"},
 "boards": [{"key": "octopus", "name": "Octopus", "mcu": "stm32f446xx",
             "pattern": "usb-*_stm32f446xx_3A0039000851313433343333-if*"}]}
EOF
# shellcheck disable=SC2086 # the unit's arguments, split as systemd does
(cd "$work" && env -i PATH="$PATH" HOME="$U" "$P/bin/kflash" $args --dry-run) > "$work/make.out" 2>&1
rc=$?
check "... which (with --dry-run) parses and runs until Moonraker is asked" \
	eval '[ $rc -eq 1 ] && says "needs the MCU versions from Moonraker" &&
	      ! says "unknown option\|usage"'

# -- Moonraker's update manager reads system_dependencies: {"distro":
# ["pkg", "pkg; distro_version >= '12'", ...]}; "debian" serves Raspberry
# Pi OS and Debian alike
if command -v python3 > /dev/null 2>&1; then
	(cd "$K" && python3 - scripts/system-dependencies.json README.md ci/deps) \
		> "$work/make.out" 2>&1 << 'EOF'
import json, re, sys

deps_path, readme_path, ci_path = sys.argv[1:]
deps = json.load(open(deps_path))
assert isinstance(deps, dict) and deps, "not an object of distributions"
for distro, pkgs in deps.items():
    assert isinstance(pkgs, list) and pkgs, "%s: not a list of packages" % distro
    for p in pkgs:
        assert isinstance(p, str) and p.split(";")[0].strip(), "%s: %r" % (distro, p)
names = sorted(p.split(";")[0].strip() for p in deps["debian"])
readme = open(readme_path).read()
m = re.search(r"## Install on a printer host\n+```\nsudo apt-get install ([^\n]*)\n", readme)
assert m, "no apt-get line under the README's 'Install on a printer host'"
want = sorted(m.group(1).split())
assert names == want, "debian %s, the README %s" % (names, want)
ci = re.search(r'^PKGS="([^"]*)"', open(ci_path).read(), re.M).group(1).split()
missing = [p for p in names if p not in ci]
assert not missing, "ci/deps does not install %s" % missing
EOF
	rc=$?
	check "scripts/system-dependencies.json: Moonraker's format, the README's packages" \
		[ $rc -eq 0 ]
else
	echo "ok - # SKIP python3 is not installed: scripts/system-dependencies.json is not checked"
fi

# -- Debian 11: glibc 2.31 and libcurl 7.74. Every C library function the
# product's objects call is in glibc 2.31, by the oldest version this
# libc.so.6 exports it at. (stat, lstat, fstat, fstatat, mknod and mknodat
# are exported since 2.33; before, glibc's headers give them as wrappers.)
libc=$(ldd "$H/kflash" 2> /dev/null | awk '$1 == "libc.so.6" { print $3 }')
if command -v objdump > /dev/null 2>&1 && [ -f "$libc" ]; then
	objdump -T "$libc" | awk 'NF >= 3 && !/\*UND\*/ { v = $(NF - 1); gsub(/[()]/, "", v)
		if (v ~ /^GLIBC_2/) { sub(/^GLIBC_/, "", v); print $NF, v } }' |
		sort -k1,1 -k2,2V | awk '!seen[$1]++' > "$work/libc.versions"
	nm -u "$H"/obj/*.o | awk '{ print $2 }' | sed 's/@.*//' | sort -u |
		join - "$work/libc.versions" |
		grep -v '^\(stat\|lstat\|fstat\|fstatat\|mknod\|mknodat\)\(64\)\? ' |
		awk '{ split($2, v, "."); if (v[1] > 2 || (v[1] == 2 && v[2] > 31))
			print $1 " (glibc " $2 ")" }' > "$work/make.out"
	check "the product calls nothing glibc added after 2.31 (Debian 11)" \
		eval '[ -s "$work/libc.versions" ] && [ ! -s "$work/make.out" ]'
else
	echo "ok - # SKIP the glibc 2.31 check: no objdump, or no libc.so.6 found"
fi
# libcurl 7.74's API: this host's headers with 7.74's version number and
# without what 7.85 added (CURLOPT_PROTOCOLS_STR) or deprecated
# shellcheck disable=SC2046
curl_h=$(printf '#include <curl/curl.h>\n' | cc -M -x c - $(pkg-config --cflags libcurl) |
	tr ' \\' '\n\n' | grep '/curl/curl\.h$' | head -1)
mkdir "$work/curl-7.74"
cp -r "$(dirname "$curl_h")" "$work/curl-7.74/curl"
sed -i 's/^#define LIBCURL_VERSION_NUM .*/#define LIBCURL_VERSION_NUM 0x074a00/
	s/\bCURLOPT_PROTOCOLS_STR\b/CURLOPT_PROTOCOLS_STR_SINCE_7_85/g' "$work/curl-7.74/curl"/*.h
# shellcheck disable=SC2046
(cd "$K" && cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -I"$work/curl-7.74" \
	-DCURL_DISABLE_DEPRECATION $(pkg-config --cflags libudev jansson) \
	-c -o "$work/ops_linux.o" src/ops_linux.c) > "$work/make.out" 2>&1
check "src/ops_linux.c compiles against libcurl 7.74's API (Debian 11)" [ -s "$work/ops_linux.o" ]

HIDE=cmocka mk PKG_CONFIG="$work/pkg-config" build/tests/test_cli
check "a unit test without cmocka: one line naming libcmocka-dev" \
	eval '[ $rc -ne 0 ] && lines 1 && says "needs libcmocka-dev" && says "apt-get install libcmocka-dev" && no_compiler_error'
HIDE=umockdev-1.0 mk PKG_CONFIG="$work/pkg-config" build/kflash-simhost
check "the simulator's host without umockdev: one line naming libumockdev-dev" \
	eval '[ $rc -ne 0 ] && lines 1 && says "needs libumockdev-dev" && no_compiler_error'
HIDE=jansson mk PKG_CONFIG="$work/pkg-config" BUILD="$work/fresh"
check "kflash without jansson: one line naming libjansson-dev, no compiler error" \
	eval '[ $rc -ne 0 ] && lines 1 && says "needs libjansson-dev (pkg-config finds no jansson)" && no_compiler_error'
mk PKG_CONFIG="$work/no-pkg-config" BUILD="$work/fresh"
check "no pkg-config at all: one line naming pkg-config and the libraries" \
	eval '[ $rc -ne 0 ] && lines 1 && says "apt-get install pkg-config libudev-dev libjansson-dev libcurl4-openssl-dev" && no_compiler_error'

# -- the version
check "the first build's --version is git describe" version_is "$(describe)"
mk build/kflash
check "make again: nothing recompiled" [ -z "$(compiled)" ]
git -C "$K" commit -q --allow-empty -m two
mk build/kflash
check "a commit without source changes: --version follows" version_is "$(describe)"
# shellcheck disable=SC2046
users=$(objs $(grep -l KFLASH_VERSION "$K"/src/*.c))
check "... and only what prints the version is recompiled ($users)" \
	eval '[ -n "$users" ] && [ "$(compiled)" = "$users" ]'
git -C "$K" tag v9.9.9
mk build/kflash
check "a tag: --version is the tag" version_is v9.9.9
# an update pulled but not built: the installed (here: the built) kflash
# says so, once, on stderr, with the command that installs it
git -C "$K" commit -q --allow-empty -m pulled
"$K/build/kflash" --version > "$work/make.out" 2> "$work/err"
head9=$(git -C "$K" rev-parse --short=9 HEAD)
cat "$work/err" >> "$work/make.out"
check "an update not built: kflash says so once, with the command that installs it" \
	eval '[ "$(head -1 "$work/make.out")" = "kflash v9.9.9" ] && [ "$(cat "$work/err")" = "warning: kflash v9.9.9 is not what $K holds now (commit $head9): cd $K && make && sudo make install" ]'
mk build/kflash
git -C "$K" pack-refs --all
"$K/build/kflash" --version > "$work/make.out" 2>&1
check "... built again: nothing said, also once git packed the branch's ref" \
	eval '[ ! -e "$K/.git/refs/heads/$(git -C "$K" symbolic-ref --short HEAD)" ] &&
	      [ "$(cat "$work/make.out")" = "kflash $(describe)" ]'
git -C "$K" reset -q --hard HEAD~1
mk build/kflash
echo "# edited" >> "$K/README.md"
mk build/kflash
check "an edit not committed: --version says dirty" version_is v9.9.9-dirty
git -C "$K" checkout -q -- README.md
git -C "$K" commit -q --allow-empty -m three
git -C "$K" checkout -q HEAD~1
mk build/kflash
check "a checkout that moves HEAD: --version follows" eval 'version_is v9.9.9 && [ "$(describe)" = v9.9.9 ]'
last=$(describe)
mv "$K/.git" "$work/git"
mk build/kflash
check "no git (a tarball): the last version is kept, nothing recompiled" \
	eval 'version_is "$last" && [ -z "$(compiled)" ]'
mv "$work/git" "$K/.git"

# -- header dependencies: the compiler's own answer is the oracle
cflags=$(pkg-config --cflags libudev jansson libcurl)
mkdir "$work/mm"
for c in "$K"/src/*.c; do
	# shellcheck disable=SC2086
	(cd "$K" && cc -MM -std=c11 -D_GNU_SOURCE -Iinclude $cflags "src/${c##*/}") |
		tr -d '\\\n' | tr ' ' '\n' > "$work/mm/${c##*/}"
done
# the header fewest sources include, so a rebuild of everything shows
best="" bestn=1000
for h in "$K"/include/kflash/*.h; do
	n=$(grep -lx "include/kflash/${h##*/}" "$work/mm"/* | wc -l)
	[ "$n" -gt 0 ] && [ "$n" -lt "$bestn" ] && { best=$h bestn=$n; }
done
touch "$best"
mk build/kflash
# shellcheck disable=SC2046
want=$(objs $(grep -lx "include/kflash/${best##*/}" "$work/mm"/*))
check "touching ${best##*/} recompiles exactly what includes it ($want)" [ "$(compiled)" = "$want" ]
check "... and relinks kflash" says " -o build/kflash "
mk build/kflash
check "make again: nothing recompiled" [ -z "$(compiled)" ]

# -- ci/deps: one line, apt's output in the log, its tail on failure
fake=$work/fakebin
mkdir "$fake"
cat > "$fake/dpkg-query" << 'EOF'
#!/bin/sh
for p; do :; done
case " $MISSING " in *" $p "*) exit 1 ;; esac
printf 'install ok installed'
EOF
cat > "$fake/apt-get" << 'EOF'
#!/bin/sh
echo "apt-get $*" >> "$APT_CALLS"
i=0; while [ $i -lt 300 ]; do echo "Unpacking thing-$i ..."; i=$((i + 1)); done
[ -z "${APT_FAIL:-}" ] || { [ "$1" = install ] && echo "E: Unable to locate package $2" && exit 100; }
exit 0
EOF
printf '#!/bin/sh\necho 0\n' > "$fake/id"
chmod +x "$fake"/*
deps() {
	PATH="$fake:$PATH" KFLASH_APT_LOG="$work/apt.log" APT_CALLS="$work/apt.calls" \
		sh "$K/ci/deps" "$@" > "$work/make.out" 2>&1
	rc=$?
}
MISSING="" deps
check "ci/deps with nothing missing: silent" eval '[ $rc -eq 0 ] && lines 0 && [ ! -e "$work/apt.calls" ]'
MISSING="socat udev" deps
check "ci/deps: one line naming what it installs and the log" \
	eval '[ $rc -eq 0 ] && lines 1 && says "^kflash: installing 2 missing Debian packages: socat udev (log: $work/apt.log)$"'
check "... apt's output is in the log" \
	eval '[ "$(grep -c Unpacking "$work/apt.log")" -eq 600 ] && grep -q "install -y --no-install-recommends socat udev" "$work/apt.calls"'
MISSING="clang libclang-rt-dev" deps
check "ci/deps: make fuzz's clang and libFuzzer are no dependency of make check" \
	eval '[ $rc -eq 0 ] && lines 0'
MISSING="clang libclang-rt-dev" deps fuzz
check "ci/deps fuzz: installs them, named in its one line" \
	eval '[ $rc -eq 0 ] && says "^kflash: installing 2 missing Debian packages: clang libclang-rt-dev"'
MISSING="socat" APT_FAIL=1 deps
check "ci/deps when apt fails: exit 1 with the log's tail, the cause included" \
	eval '[ $rc -eq 1 ] && says "1 missing Debian package: socat" && says "apt-get failed (exit 100)" &&
	      says "E: Unable to locate package" && [ "$(wc -l < "$work/make.out")" -lt 30 ]'

echo "build: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
