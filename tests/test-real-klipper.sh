#!/bin/sh
# tests/test-real-klipper.sh - kflash and its simulator against a real Klipper
# checkout ($KLIPPER_DIR, else ~/klipper; never downloads one):
#   - real olddefconfig leaves every fixtures/configs/*.config unchanged
#   - for partial configs the fake Klipper's olddefconfig picks the same chip
#     and application address as the real one
#   - a board's cached config built through kflash's build pipeline, with
#     the checkout left clean
# olddefconfig needs only python3; the build needs the host compiler.
KFLASH=${KFLASH:-build/kflash}
KLIPPER_DIR=${KLIPPER_DIR:-$HOME/klipper}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$KLIPPER_DIR/Makefile" ] || [ ! -f "$KLIPPER_DIR/src/Kconfig" ] ||
   [ ! -d "$KLIPPER_DIR/klippy" ]; then
	echo "SKIP: no real Klipper checkout at $KLIPPER_DIR (set KLIPPER_DIR)"
	exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
before=$(git -C "$KLIPPER_DIR" status --porcelain 2>/dev/null)

# olddefconfig CHECKOUT FILE: Klipper's olddefconfig on FILE, OUT in $dir
olddefconfig() {
	make -s -C "$1" KCONFIG_CONFIG="$2" OUT="$dir/out-olddefconfig/" olddefconfig \
		> "$dir/olddefconfig.log" 2>&1
}

# ---- the fixtures are what Klipper itself writes
for fx in "$ROOT"/fixtures/configs/*.config; do
	cp "$fx" "$dir/fixture.config"
	if olddefconfig "$KLIPPER_DIR" "$dir/fixture.config" &&
	   cmp -s "$fx" "$dir/fixture.config"; then
		ok "real olddefconfig leaves fixtures/configs/${fx##*/} unchanged"
	else
		not_ok "real olddefconfig changes fixtures/configs/${fx##*/}:"
		diff "$fx" "$dir/fixture.config" | sed 's/^/    /' | head -20
		sed 's/^/    /' "$dir/olddefconfig.log"
	fi
done

# ---- partial configs: the fake decides as the real one does
fake=$("$ROOT/sim/fake/mkcheckout" klipper "$dir/fake-klipper")
# chip and address, as "MCU ADDRESS"
decides() {
	printf "$2" > "$dir/partial.config"
	olddefconfig "$1" "$dir/partial.config" || { echo "olddefconfig failed"; return; }
	sed -n 's/^CONFIG_MCU="\(.*\)"$/\1/p; s/^CONFIG_FLASH_APPLICATION_ADDRESS=//p' \
		"$dir/partial.config" | tr '\n' ' '
}
for partial in 'CONFIG_MACH_STM32=y\n' \
	'CONFIG_MCU="stm32f446xx"\nCONFIG_MACH_STM32=y\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n' \
	'CONFIG_MACH_STM32F446=y\n' \
	'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\n' \
	'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\nCONFIG_STM32_FLASH_START_8000=y\n' \
	'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32H723=y\nCONFIG_STM32_FLASH_START_8000=y\n' \
	'CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32G0B1=y\n' \
	'CONFIG_MACH_RPXXXX=y\n' \
	'CONFIG_MACH_RPXXXX=y\nCONFIG_RPXXXX_FLASH_START_4000=y\n' \
	'CONFIG_MACH_RPXXXX=y\nCONFIG_RP2040_FLASH_START_4000=y\n' \
	'CONFIG_MACH_LPC176X=y\n' 'CONFIG_MACH_ATSAMD=y\n' 'CONFIG_MACH_LINUX=y\n' ''; do
	real=$(decides "$KLIPPER_DIR" "$partial")
	sim=$(decides "$fake" "$partial")
	what=$(printf "$partial" | tr '\n' ' ')
	if [ "$real" = "$sim" ]; then
		ok "fake olddefconfig as real on '${what:-an empty config}': ${real:-no MCU}"
	else
		not_ok "on '${what:-an empty config}' real gives '$real', the fake '$sim'"
	fi
done

# ---- kflash's build pipeline
export KFLASH_CONFIG_DIR="$dir/cfg" XDG_CACHE_HOME="$dir/cache"
mkdir -p "$KFLASH_CONFIG_DIR/configs/host"
cat > "$KFLASH_CONFIG_DIR/devices.json" <<JSON
{"schema": 1, "settings": {"klipper_dir": "$KLIPPER_DIR"},
 "boards": [{"key": "host", "name": "host", "mcu": "linux",
             "pattern": "usb-*_linux_0-if*"}]}
JSON
# the linux target needs only the host compiler; kflash builds it (with a
# warning: it is never flashed over USB). Only the menu symbols are given:
# olddefconfig completes the config.
printf 'CONFIG_LOW_LEVEL_OPTIONS=y\nCONFIG_MACH_LINUX=y\n' > "$KFLASH_CONFIG_DIR/configs/host/.config"
if command -v gcc > /dev/null && "$KFLASH" build host > "$dir/build.log" 2>&1 &&
   [ -s "$XDG_CACHE_HOME/kflash/build/host/klipper.elf" ] &&
   grep -q '"MCU": *"linux"' "$XDG_CACHE_HOME/kflash/build/host/klipper.dict"; then
	ok "kflash build of a Linux host MCU config with the real Klipper"
elif ! command -v gcc > /dev/null; then
	echo "SKIP: no gcc for the Linux host MCU build"
else
	not_ok "kflash build host:"
	sed 's/^/    /' "$dir/build.log" | tail -20
fi
after=$(git -C "$KLIPPER_DIR" status --porcelain 2>/dev/null)
if [ "$before" = "$after" ]; then
	ok "the Klipper checkout is unchanged"
else
	not_ok "the Klipper checkout changed:"
	echo "$after"
fi
echo "real-klipper: $pass passed, $fail failed"
[ $fail = 0 ]
