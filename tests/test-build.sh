#!/bin/sh
# shellcheck disable=SC2034 # rc and last are read in the checks' eval strings
# tests/test-build.sh - the build as a developer and a printer host meet it:
# `kflash --version` follows every commit, tag, checkout and edit; touching a
# header recompiles only what includes it; a missing library stops make with
# one line naming the Debian package, and only for the targets that need it;
# ci/deps says in one line what it installs and keeps apt's output in a log.
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
		sh "$K/ci/deps" > "$work/make.out" 2>&1
	rc=$?
}
MISSING="" deps
check "ci/deps with nothing missing: silent" eval '[ $rc -eq 0 ] && lines 0 && [ ! -e "$work/apt.calls" ]'
MISSING="socat udev" deps
check "ci/deps: one line naming what it installs and the log" \
	eval '[ $rc -eq 0 ] && lines 1 && says "^kflash: installing 2 missing Debian packages: socat udev (log: $work/apt.log)$"'
check "... apt's output is in the log" \
	eval '[ "$(grep -c Unpacking "$work/apt.log")" -eq 600 ] && grep -q "install -y --no-install-recommends socat udev" "$work/apt.calls"'
MISSING="socat" APT_FAIL=1 deps
check "ci/deps when apt fails: exit 1 with the log's tail, the cause included" \
	eval '[ $rc -eq 1 ] && says "1 missing Debian package: socat" && says "apt-get failed (exit 100)" &&
	      says "E: Unable to locate package" && [ "$(wc -l < "$work/make.out")" -lt 30 ]'

echo "build: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
