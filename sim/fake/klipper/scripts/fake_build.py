#!/usr/bin/env python3
# fake_build.py - the "compiler" and "kconfig" of the kflash simulator's fake
# Klipper. The Makefile calls it for each build step; it writes outputs that
# look like Klipper's (klipper.elf, klipper.dict, klipper.bin with the
# zlib-compressed data dictionary inside, klipper.uf2, klipper.elf.hex) and
# are a pure function of the config and the version, never builds code.
#
#   fake_build.py olddefconfig | menuconfig        (config from $KCONFIG_CONFIG)
#   fake_build.py start OUT | end TARGET...
#   fake_build.py autoconf OUT/autoconf.h
#   fake_build.py compile SRC OBJ
#   fake_build.py dict OUT/klipper.dict OUT/compile_time_request.o
#   fake_build.py link OUT/klipper.elf OBJ...
#   fake_build.py bin|hex|uf2 OUT/klipper.elf OUTPUT
#   fake_build.py flash-linux OUT/klipper.elf
#
# Faults: make-build (fail [SRC], hang, slow N), make-olddefconfig (fail,
# hang, slow N), make-menuconfig (fail, hang, slow N). See sim/fake/README.md.
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True


def _lib():
    d = os.path.dirname(os.path.realpath(__file__))
    for _ in range(5):
        for c in (os.path.join(d, "lib"), d):
            if os.path.isfile(os.path.join(c, "simfake.py")):
                return c
        d = os.path.dirname(d)
    return os.path.join(os.environ.get("KFLASH_SIM_FAKES", ""), "lib")


sys.path.insert(0, _lib())
import simfake  # noqa: E402

ACTOR = "make"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DEFAULT_VERSION = "v0.13.0-123-gabcdef01"
COMPILE_SECONDS = 0.02       # each compile step's child sleep
DEFAULT_FAIL_SRC = "src/command.c"

# ---------------------------------------------------------------- MCUs

# chip: (series symbol, clock, flash size, ram start, ram size, default
# bootloader offset)
STM32 = {
    "stm32f042x6": ("F0", 48000000, 0x8000, 0x20000000, 0x1800, 0),
    "stm32f072xb": ("F0", 48000000, 0x20000, 0x20000000, 0x4000, 0x2000),
    "stm32f103xe": ("F1", 72000000, 0x80000, 0x20000000, 0x10000, 0x2000),
    "stm32f103xb": ("F1", 72000000, 0x10000, 0x20000000, 0x5000, 0x2000),
    "stm32f401xc": ("F4", 84000000, 0x40000, 0x20000000, 0x10000, 0x8000),
    "stm32f407xx": ("F4", 168000000, 0x100000, 0x20000000, 0x20000, 0x8000),
    "stm32f429xx": ("F4", 180000000, 0x100000, 0x20000000, 0x30000, 0x8000),
    "stm32f446xx": ("F4", 180000000, 0x80000, 0x20000000, 0x20000, 0x8000),
    "stm32g0b1xx": ("G0", 64000000, 0x80000, 0x20000000, 0x24000, 0x2000),
    "stm32g431xx": ("G4", 170000000, 0x20000, 0x20000000, 0x8000, 0x2000),
    "stm32g474xx": ("G4", 170000000, 0x80000, 0x20000000, 0x20000, 0x2000),
    "stm32h723xx": ("H7", 400000000, 0x100000, 0x24000000, 0x50000, 0x20000),
    "stm32h743xx": ("H7", 400000000, 0x200000, 0x24000000, 0x80000, 0x20000),
    "stm32l412xx": ("L4", 80000000, 0x20000, 0x20000000, 0xa000, 0),
}
RP = {"rp2040": (12000000, 0x200000, 0x20000000, 0x42000),
      "rp2350": (12000000, 0x400000, 0x20000000, 0x82000)}
AVR = {"atmega2560": 16000000, "atmega1280": 16000000, "atmega644p": 16000000,
       "atmega1284p": 16000000, "atmega328p": 16000000, "at90usb1286": 16000000,
       "atmega32u4": 16000000}
LPC = {"lpc1768": 100000000, "lpc1769": 120000000}
SAMD = {"samd21g18a": (48000000, 0x40000, 0x2000), "samd21e18a": (48000000, 0x40000, 0x2000),
        "samd51j19a": (120000000, 0x80000, 0x4000), "samd51p20a": (120000000, 0x100000, 0x4000),
        "same54p20a": (120000000, 0x100000, 0x4000)}


def stm32_mach(mcu):
    """stm32f446xx -> STM32F446, stm32g0b1xx -> STM32G0B1."""
    return mcu[:9].upper()


def family_of(mcu):
    if mcu.startswith("stm32"):
        return "stm32"
    if mcu in RP:
        return "rp2040"
    if mcu.startswith("atmega") or mcu.startswith("at90usb"):
        return "avr"
    if mcu.startswith("lpc176"):
        return "lpc176x"
    if mcu.startswith("sam"):
        return "atsamd"
    if mcu == "linux":
        return "linux"
    return None


def mcu_from_symbols(cfg):
    """CONFIG_MCU when present; else the chip named by MACH_ symbols (as a
    real menuconfig-written config has them); else None."""
    mcu = cfg.get("CONFIG_MCU")
    if mcu and family_of(mcu):
        return mcu
    if cfg.get("CONFIG_MACH_LINUX") == "y" or cfg.get("CONFIG_BOARD_DIRECTORY") == "linux":
        return "linux"
    for chip in STM32:
        if cfg.get("CONFIG_MACH_" + stm32_mach(chip)) == "y":
            return chip
    for chip in list(RP) + list(AVR) + list(LPC) + list(SAMD):
        if cfg.get("CONFIG_MACH_" + chip) == "y" or cfg.get("CONFIG_MACH_" + chip.upper()) == "y":
            return chip
    return None


def flash_start_choice(cfg, prefix, boot):
    """An address from a bootloader-offset choice symbol
    (CONFIG_STM32_FLASH_START_8000=y -> boot + 0x8000), else None."""
    for k, v in cfg.items():
        if v == "y" and k.startswith("CONFIG_%s_FLASH_START_" % prefix):
            try:
                return boot + int(k.rsplit("_", 1)[1], 16)
            except ValueError:
                pass
    return None


def family_defaults(mcu):
    """(ordered [(key, value)] a fresh olddefconfig writes for this MCU,
    choice prefix or None, boot address or None)."""
    q = lambda s: '"%s"' % s  # noqa: E731
    fam = family_of(mcu)
    d = [("CONFIG_LOW_LEVEL_OPTIONS", "y")]
    if fam == "stm32":
        series, clock, fsize, ram, ramsize, off = STM32.get(
            mcu, ("F4" if mcu[5:7] == "f4" else mcu[5:7].upper(), 100000000, 0x80000,
                  0x20000000, 0x20000, 0))
        d += [("CONFIG_MACH_STM32", "y"), ("CONFIG_BOARD_DIRECTORY", q("stm32")),
              ("CONFIG_MCU", q(mcu)), ("CONFIG_CLOCK_FREQ", str(clock)),
              ("CONFIG_FLASH_SIZE", hex(fsize)), ("CONFIG_FLASH_BOOT_ADDRESS", "0x8000000"),
              ("CONFIG_RAM_START", hex(ram)), ("CONFIG_RAM_SIZE", hex(ramsize)),
              ("CONFIG_STACK_SIZE", "512"),
              ("CONFIG_FLASH_APPLICATION_ADDRESS", hex(0x8000000 + off)),
              ("CONFIG_MACH_" + stm32_mach(mcu), "y"), ("CONFIG_MACH_STM32" + series, "y"),
              ("CONFIG_HAVE_STM32_USBOTG" if series in ("F4", "H7") else "CONFIG_HAVE_STM32_USBFS", "y"),
              ("CONFIG_USBSERIAL", "y"), ("CONFIG_USB_VENDOR_ID", "0x1d50"),
              ("CONFIG_USB_DEVICE_ID", "0x614e"), ("CONFIG_USB_SERIAL_NUMBER_CHIPID", "y")]
        return d, "STM32", 0x8000000
    if fam == "rp2040":
        clock, fsize, ram, ramsize = RP[mcu]
        d += [("CONFIG_MACH_RPXXXX", "y"), ("CONFIG_MACH_" + mcu.upper(), "y"),
              ("CONFIG_BOARD_DIRECTORY", q("rp2040")), ("CONFIG_MCU", q(mcu)),
              ("CONFIG_CLOCK_FREQ", str(clock)), ("CONFIG_FLASH_SIZE", hex(fsize)),
              ("CONFIG_FLASH_BOOT_ADDRESS", "0x10000000"), ("CONFIG_RAM_START", hex(ram)),
              ("CONFIG_RAM_SIZE", hex(ramsize)), ("CONFIG_STACK_SIZE", "512"),
              ("CONFIG_FLASH_APPLICATION_ADDRESS", "0x10000100"),
              ("CONFIG_USBSERIAL", "y"), ("CONFIG_USB_VENDOR_ID", "0x1d50"),
              ("CONFIG_USB_DEVICE_ID", "0x614e"), ("CONFIG_USB_SERIAL_NUMBER_CHIPID", "y")]
        return d, "RP2040", 0x10000000
    if fam == "avr":
        d += [("CONFIG_MACH_AVR", "y"), ("CONFIG_BOARD_DIRECTORY", q("avr")),
              ("CONFIG_MACH_" + mcu, "y"), ("CONFIG_MCU", q(mcu)),
              ("CONFIG_AVRDUDE_PROTOCOL", q("wiring")),
              ("CONFIG_CLOCK_FREQ", str(AVR.get(mcu, 16000000))),
              ("CONFIG_AVR_SERIAL", "y"), ("CONFIG_SERIAL", "y"),
              ("CONFIG_SERIAL_BAUD", "250000")]
        return d, None, None
    if fam == "lpc176x":
        d += [("CONFIG_MACH_LPC176X", "y"), ("CONFIG_BOARD_DIRECTORY", q("lpc176x")),
              ("CONFIG_MACH_" + mcu, "y"), ("CONFIG_MCU", q(mcu)),
              ("CONFIG_CLOCK_FREQ", str(LPC[mcu] if mcu in LPC else 100000000)),
              ("CONFIG_FLASH_SIZE", "0x80000"), ("CONFIG_FLASH_BOOT_ADDRESS", "0x0"),
              ("CONFIG_RAM_START", "0x10000000"), ("CONFIG_RAM_SIZE", "0x7fe0"),
              ("CONFIG_STACK_SIZE", "512"), ("CONFIG_FLASH_APPLICATION_ADDRESS", "0x4000"),
              ("CONFIG_USBSERIAL", "y"), ("CONFIG_USB_VENDOR_ID", "0x1d50"),
              ("CONFIG_USB_DEVICE_ID", "0x614e")]
        return d, "LPC176X", 0
    if fam == "atsamd":
        clock, fsize, off = SAMD.get(mcu, (48000000, 0x40000, 0x2000))
        d += [("CONFIG_MACH_ATSAMD", "y"), ("CONFIG_BOARD_DIRECTORY", q("atsamd")),
              ("CONFIG_MACH_" + mcu.upper()[:7], "y"), ("CONFIG_MCU", q(mcu)),
              ("CONFIG_CLOCK_FREQ", str(clock)), ("CONFIG_FLASH_SIZE", hex(fsize)),
              ("CONFIG_FLASH_BOOT_ADDRESS", "0x0"), ("CONFIG_RAM_START", "0x20000000"),
              ("CONFIG_RAM_SIZE", "0x8000"), ("CONFIG_STACK_SIZE", "512"),
              ("CONFIG_FLASH_APPLICATION_ADDRESS", hex(off)),
              ("CONFIG_USBSERIAL", "y"), ("CONFIG_USB_VENDOR_ID", "0x1d50"),
              ("CONFIG_USB_DEVICE_ID", "0x614e")]
        return d, "SAMD", 0
    # linux: the host MCU has no CONFIG_MCU line
    d += [("CONFIG_MACH_LINUX", "y"), ("CONFIG_BOARD_DIRECTORY", q("linux")),
          ("CONFIG_CLOCK_FREQ", "50000000"), ("CONFIG_LINUX_SELECT", "y")]
    return d, None, None


COMMON = [("CONFIG_HAVE_GPIO", "y"), ("CONFIG_HAVE_GPIO_ADC", "y"),
          ("CONFIG_HAVE_GPIO_SPI", "y"), ("CONFIG_HAVE_GPIO_HARD_PWM", "y"),
          ("CONFIG_INLINE_STEPPER_HACK", "y"), ("CONFIG_HAVE_STEPPER_OPTIMIZED_BOTH_EDGE", "y"),
          ("CONFIG_WANT_GPIO_BITBANGING", "y")]
DERIVED = ("CONFIG_MCU", "CONFIG_BOARD_DIRECTORY", "CONFIG_MACH_")

# ---------------------------------------------------------------- config


def parse_config(text):
    """[(key, value)] in file order; 'n' for '# CONFIG_X is not set'.
    Values keep their quotes."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out.append((line[2:-len(" is not set")].strip(), "n"))
    return out


def unq(v):
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def normalise(entries):
    """What olddefconfig makes of a config: the family's defaults, the
    user's values for every other symbol, a consistent bootloader-offset
    choice. Returns the file text."""
    user = {}
    for k, v in entries:
        user[k] = v                         # a later line wins
    cfg = {k: unq(v) for k, v in user.items()}
    mcu = mcu_from_symbols(cfg) or "atmega2560"
    defaults, prefix, boot = family_defaults(mcu)
    vals = dict(defaults)
    order = [k for k, _ in defaults]
    for k, v in COMMON:
        if k not in vals:
            vals[k] = v
            order.append(k)
    fam_keys = set(vals)
    for k, v in entries:
        if k in fam_keys and k.startswith(DERIVED):
            continue                        # derived from the MCU, not settable
        if k.startswith("CONFIG_MACH_") and v == "y":
            continue                        # another chip's symbol: dropped
        if k not in vals:
            order.append(k)
        vals[k] = v
    if prefix is not None:
        addr = flash_start_choice(cfg, prefix, boot)
        if addr is None:
            try:
                addr = int(unq(vals["CONFIG_FLASH_APPLICATION_ADDRESS"]), 16)
            except (KeyError, ValueError):
                addr = boot
        vals["CONFIG_FLASH_APPLICATION_ADDRESS"] = hex(addr)
        for k in list(vals):
            if k.startswith("CONFIG_%s_FLASH_START_" % prefix):
                del vals[k]
                order.remove(k)
        choice = "CONFIG_%s_FLASH_START_%04X" % (prefix, addr - boot)
        vals[choice] = "y"
        order.insert(order.index("CONFIG_FLASH_APPLICATION_ADDRESS"), choice)
        if prefix == "RP2040":
            if addr - boot == 0x100:
                vals["CONFIG_RP2040_HAVE_STAGE2"] = "y"
                if "CONFIG_RP2040_HAVE_STAGE2" not in order:
                    order.append("CONFIG_RP2040_HAVE_STAGE2")
            elif "CONFIG_RP2040_HAVE_STAGE2" in vals:
                del vals["CONFIG_RP2040_HAVE_STAGE2"]
                order.remove("CONFIG_RP2040_HAVE_STAGE2")
    lines = ["#", "# Automatically generated file; DO NOT EDIT.",
             "# Klipper Firmware Configuration", "#"]
    for k in order:
        v = vals[k]
        lines.append("# %s is not set" % k if v == "n" else "%s=%s" % (k, v))
    return "\n".join(lines) + "\n"


def config_path():
    return os.environ.get("KCONFIG_CONFIG") or os.path.join(os.getcwd(), ".config")


def read_config():
    try:
        with open(config_path()) as f:
            return f.read()
    except OSError:
        return None


def config_values():
    text = read_config() or ""
    return {k: unq(v) for k, v in parse_config(text)}


def write_config(text, path):
    """As kconfiglib: unchanged -> nothing written; else the old file kept
    as <path>.old, the new one written."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        old = None
    if old == text:
        return "No change to configuration in '%s'" % path
    if old is not None:
        with open(path + ".old", "w") as f:
            f.write(old)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)
    return "Configuration saved to '%s'" % path


def cmd_olddefconfig():
    path = config_path()
    f = simfake.apply_common(ACTOR, "make-olddefconfig")
    if f is not None and f.word == "fail":
        sys.stderr.write("%s:7: warning: malformed line\n"
                         "kconfiglib.KconfigError: src/Kconfig:12: error: couldn't parse "
                         "'source \"src/stm32/Kconfig\"'\n" % path)
        simfake.event(ACTOR, "olddefconfig", path, "failed")
        return 1
    text = read_config()
    if text is None:
        print("Using default symbol values (no '%s')" % path)
        text = ""
    else:
        print("Loaded configuration '%s'" % path)
    print(write_config(normalise(parse_config(text)), path))
    simfake.event(ACTOR, "olddefconfig", path, "mcu", mcu_of_values(config_values()))
    return 0


def mcu_of_values(cfg):
    return cfg.get("CONFIG_MCU") or ("linux" if cfg.get("CONFIG_BOARD_DIRECTORY") == "linux" else "?")


def cmd_menuconfig():
    path = config_path()
    if not (os.isatty(0) and os.isatty(1)):
        simfake.event(ACTOR, "menuconfig", path, "refused", "no-tty")
        sys.stderr.write(
            "Traceback (most recent call last):\n"
            "  File \"lib/kconfiglib/menuconfig.py\", line 3278, in <module>\n"
            "    _main()\n"
            "  File \"lib/kconfiglib/menuconfig.py\", line 662, in _main\n"
            "    menuconfig(standard_kconfig(__doc__))\n"
            "_curses.error: setupterm: could not find terminal\n")
        return 1
    f = simfake.apply_common(ACTOR, "make-menuconfig")
    if f is not None and f.word == "fail":
        simfake.event(ACTOR, "menuconfig", path, "failed")
        sys.stderr.write("menuconfig: aborted\n")
        return 1
    # the "user's" edits: per board (named by the config's folder, which is
    # the board key in kflash's config dir) or for every board
    key = os.path.basename(os.path.dirname(os.path.abspath(path)))
    script = None
    for cand in (simfake.state_path("menuconfig", key + ".config"),
                 simfake.state_path("menuconfig.config")):
        if cand and os.path.isfile(cand):
            script = cand
            break
    text = read_config() or ""
    cfg = {k: unq(v) for k, v in parse_config(text)}
    if script is None:
        if not mcu_from_symbols(cfg):
            simfake.event(ACTOR, "menuconfig", path, "failed", "no-script")
            sys.stderr.write(
                "menuconfig (kflash simulator): '%s' names no MCU and neither "
                "$KFLASH_SIM_STATE/menuconfig/%s.config nor "
                "$KFLASH_SIM_STATE/menuconfig.config says what to choose\n" % (path, key))
            return 1
        print("No changes to save (for '%s')" % path)
        simfake.event(ACTOR, "menuconfig", path, "unchanged")
        return 0
    with open(script) as fh:
        edits = parse_config(fh.read())
    # menu choices replace the chip: drop the old chip's symbols
    if any(k == "CONFIG_MCU" or k.startswith("CONFIG_MACH_") for k, _ in edits):
        base = [(k, v) for k, v in parse_config(text)
                if not (k == "CONFIG_MCU" or k.startswith("CONFIG_MACH_")
                        or k == "CONFIG_BOARD_DIRECTORY" or "_FLASH_START_" in k
                        or k == "CONFIG_FLASH_APPLICATION_ADDRESS")]
    else:
        base = parse_config(text)
    msg = write_config(normalise(base + edits), path)
    print(msg)
    simfake.event(ACTOR, "menuconfig", path, "saved" if msg.startswith("Configuration saved") else "unchanged",
                  "mcu", mcu_of_values(config_values()))
    return 0


# ---------------------------------------------------------------- build


def version():
    v = simfake.read_state("klipper-version")
    if v and v.strip():
        return v.strip()
    if os.path.exists(os.path.join(CHECKOUT, ".git")):
        try:
            r = subprocess.run(["git", "-C", CHECKOUT, "describe", "--always", "--tags",
                                "--long", "--dirty"], capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return DEFAULT_VERSION


def config_digest(cfg):
    return "\n".join("%s=%s" % kv for kv in sorted(cfg.items()) if kv[1] != "n")


def out_of(path):
    """OUT as make has it (with its trailing slash) from OUT/file."""
    return os.path.dirname(path) + "/"


def cmd_start(out):
    simfake.event(ACTOR, "build", "start", out, "mcu", mcu_of_values(config_values()))
    return 0


def cmd_end(targets):
    simfake.event(ACTOR, "build", "end", out_of(targets[0]) if targets else "?",
                  *[os.path.basename(t) for t in targets])
    return 0


def cmd_autoconf(path):
    cfg = config_values()
    lines = []
    for k, v in sorted(cfg.items()):
        if v == "n":
            continue
        if v == "y":
            v = "1"
        elif not (v.isdigit() or v.startswith("0x")):
            v = '"%s"' % v
        lines.append("#define %s %s" % (k, v))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("/* Automatically generated by the kflash simulator's fake Klipper */\n")
        f.write("\n".join(lines) + "\n")
    return 0


def cmd_compile(src, obj):
    simfake.event(ACTOR, "compile", obj)
    f = simfake.fault("make-build")
    secs = COMPILE_SECONDS
    if f is not None:
        if f.word == "fail":
            want = f.args[0] if f.args else DEFAULT_FAIL_SRC
            if src == want or src.endswith("/" + want) or os.path.basename(src) == want:
                f.fired(ACTOR)
                simfake.event(ACTOR, "build", "error", obj)
                sys.stderr.write(
                    "%s: In function 'command_encode_and_frame':\n"
                    "%s:141:5: error: 'sim_fault' undeclared (first use in this function)\n"
                    "  141 |     sim_fault = 1;\n"
                    "      |     ^~~~~~~~~\n"
                    "%s:141:5: note: each undeclared identifier is reported only once for "
                    "each function it appears in\n" % (src, src, src))
                return 1
        elif f.word == "hang":
            f.fired(ACTOR)
            simfake.hang()
        elif f.word == "slow":
            try:
                n = max(1, int(os.environ.get("KFLASH_FAKE_NOBJ", "12")))
            except ValueError:
                n = 12
            secs = f.seconds(1.0) / n
    simfake.child_sleep(secs)
    os.makedirs(os.path.dirname(obj) or ".", exist_ok=True)
    h = hashlib.sha256(("%s\n%s" % (src, config_digest(config_values()))).encode()).digest()
    with open(obj, "wb") as fh:
        fh.write(b"\x7fELF\x01\x01\x01\x00fake-object\x00" + h * 8)
    return 0


def data_dictionary(cfg, ver):
    mcu = mcu_of_values(cfg)
    consts = {"MCU": mcu, "CLOCK_FREQ": int(cfg.get("CONFIG_CLOCK_FREQ", "0") or 0),
              "STATS_SUMMARY_TYPE": "SUMMARY", "ADC_MAX": 4095,
              "PWM_MAX": 255, "STEPPER_BOTH_EDGE": 1}
    if cfg.get("CONFIG_USBSERIAL") == "y":
        consts["RESERVE_PINS_USB"] = "PA11,PA12"
    if cfg.get("CONFIG_SERIAL_BAUD"):
        consts["SERIAL_BAUD"] = int(cfg["CONFIG_SERIAL_BAUD"])
    return {
        "app": "Klipper",
        "build_versions": "gcc: (kflash-sim) 12.2.0 binutils: (kflash-sim) 2.40",
        "commands": {"identify offset=%u count=%c": 1, "get_uptime": 2, "get_clock": 3,
                     "get_config": 4, "reset": 5, "emergency_stop": 6},
        "config": consts,
        "enumerations": {"static_string_id": {"Shutdown cleared when not shutdown": 2}},
        "license": "GNU GPLv3",
        "responses": {"identify_response offset=%u data=%.*s": 0, "uptime high=%u clock=%u": 80,
                      "clock clock=%u": 81, "config is_config=%c crc=%u is_shutdown=%c "
                      "move_count=%hu": 82},
        "version": ver,
    }


def cmd_dict(dict_path, obj):
    ver = version()
    d = data_dictionary(config_values(), ver)
    text = json.dumps(d, separators=(",", ":"), sort_keys=True)
    with open(dict_path, "w") as f:
        f.write(text)
    print("Version: %s" % ver)
    with open(obj, "wb") as f:
        f.write(b"\x7fELF\x01\x01\x01\x00compile_time_request\x00" + zlib.compress(text.encode(), 9))
    return 0


def stream(seed, n):
    """n deterministic pseudo-random bytes from seed."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + struct.pack("<I", i)).digest()
        i += 1
    return bytes(out[:n])


def firmware_image(cfg, dict_text):
    """The bytes klipper.bin holds: a vector table (initial stack pointer,
    reset handler in the application area), 'code', the compressed data
    dictionary as Klipper keeps it in flash, more 'code'. Depends only on
    the config and the version (inside the dictionary)."""
    seed = hashlib.sha256((config_digest(cfg) + "\n" + dict_text).encode()).digest()
    try:
        app = int(cfg.get("CONFIG_FLASH_APPLICATION_ADDRESS", "0"), 16)
    except ValueError:
        app = 0
    try:
        sp = int(cfg.get("CONFIG_RAM_START", "0x20000000"), 16) + int(cfg.get("CONFIG_RAM_SIZE", "0x20000"), 16)
    except ValueError:
        sp = 0x20020000
    code1 = 0x2000 + seed[0] * 32
    code2 = 0x3000 + seed[1] * 32
    blob = zlib.compress(dict_text.encode(), 9)
    vec = struct.pack("<II", sp & 0xFFFFFFFF, (app + 0x1c1) | 1)
    body = vec + stream(seed + b"code", code1) + blob + stream(seed + b"tail", code2)
    return body


ELF_MAGIC = b"\x7fELF\x01\x01\x01\x00kflash-sim-fake\x00"


def cmd_link(elf, objs):
    cfg = config_values()
    out = out_of(elf)
    try:
        with open(os.path.join(out, "klipper.dict")) as f:
            dict_text = f.read()
    except OSError:
        dict_text = json.dumps(data_dictionary(cfg, version()), separators=(",", ":"), sort_keys=True)
    img = firmware_image(cfg, dict_text)
    with open(elf, "wb") as f:
        f.write(ELF_MAGIC + struct.pack("<I", len(img)) + img)
    return 0


def elf_image(elf):
    with open(elf, "rb") as f:
        data = f.read()
    if not data.startswith(ELF_MAGIC):
        raise SystemExit("%s: not an ELF made by the fake build" % elf)
    n = struct.unpack("<I", data[len(ELF_MAGIC):len(ELF_MAGIC) + 4])[0]
    return data[len(ELF_MAGIC) + 4:len(ELF_MAGIC) + 4 + n]


def cmd_bin(elf, path):
    with open(path, "wb") as f:
        f.write(elf_image(elf))
    return 0


def cmd_hex(elf, path):
    img = elf_image(elf)
    lines = []
    for off in range(0, len(img), 16):
        chunk = img[off:off + 16]
        if off and off % 0x10000 == 0:
            rec = bytes([2, 0, 0, 4]) + struct.pack(">H", off >> 16)
            lines.append(":" + rec.hex().upper() + "%02X" % (-sum(rec) & 0xFF))
        rec = bytes([len(chunk)]) + struct.pack(">H", off & 0xFFFF) + b"\x00" + chunk
        lines.append(":" + rec.hex().upper() + "%02X" % (-sum(rec) & 0xFF))
    lines.append(":00000001FF")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


def cmd_uf2(elf, path):
    img = elf_image(elf)
    cfg = config_values()
    try:
        base = int(cfg.get("CONFIG_FLASH_BOOT_ADDRESS", "0x10000000"), 16)
    except ValueError:
        base = 0x10000000
    nblocks = (len(img) + 255) // 256
    out = bytearray()
    for i in range(nblocks):
        data = img[i * 256:(i + 1) * 256].ljust(476, b"\x00")
        out += struct.pack("<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, base + i * 256,
                           256, i, nblocks, 0xE48BFF56) + data + struct.pack("<I", 0x0AB16F30)
    with open(path, "wb") as f:
        f.write(out)
    return 0


def cmd_flash_linux(elf):
    simfake.event(ACTOR, "flash", "linux", elf)
    dest = simfake.state_path("klipper_mcu")
    if dest is None:
        sys.stderr.write("flash-linux (kflash simulator): KFLASH_SIM_STATE is not set\n")
        return 1
    return subprocess.call(["sudo", "cp", elf, dest])


def main(argv):
    if not argv:
        sys.stderr.write(__doc__ if __doc__ else "usage: fake_build.py STEP ARGS\n")
        return 2
    step, args = argv[0], argv[1:]
    if step == "olddefconfig":
        return cmd_olddefconfig()
    if step == "menuconfig":
        return cmd_menuconfig()
    if step == "start":
        return cmd_start(args[0] if args else "out/")
    if step == "end":
        return cmd_end(args)
    if step == "autoconf":
        return cmd_autoconf(args[0])
    if step == "compile":
        return cmd_compile(args[0], args[1])
    if step == "dict":
        return cmd_dict(args[0], args[1])
    if step == "link":
        return cmd_link(args[0], args[1:])
    if step == "bin":
        return cmd_bin(args[0], args[1])
    if step == "hex":
        return cmd_hex(args[0], args[1])
    if step == "uf2":
        return cmd_uf2(args[0], args[1])
    if step == "flash-linux":
        return cmd_flash_linux(args[0])
    sys.stderr.write("fake_build.py: unknown step '%s'\n" % step)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
