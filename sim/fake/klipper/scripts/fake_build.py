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
import socket
import struct
import subprocess
import sys
import time
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

# ---------------------------------------------------------------- Kconfig
#
# What Klipper's Kconfig decides, as facts taken from its src/*/Kconfig
# (symbol names, menu order, defaults), for the families the fake builds.
# olddefconfig evaluates a config as kconfiglib does for these symbols:
#   - the architecture is the "Micro-controller Architecture" choice
#     (CONFIG_MACH_STM32=y ...); none chosen: the first, AVR
#   - the chip is the family's "Processor model" choice
#     (CONFIG_MACH_STM32F446=y ...); none chosen: the family's first
#     (stm32f103xe for STM32); a chip symbol of another family is invisible
#     and dropped
#   - CONFIG_MCU, CONFIG_BOARD_DIRECTORY, clock, flash and RAM values have
#     no prompt: they follow from the chip, whatever the file says (so
#     CONFIG_MCU alone selects nothing)
#   - the "Bootloader offset" choice (CONFIG_STM32_FLASH_START_8000=y,
#     CONFIG_RPXXXX_FLASH_START_4000=y, LPC_, SAMD_) offers per chip only
#     some offsets; none chosen (or one the chip does not offer): the first
#     it offers. CONFIG_FLASH_APPLICATION_ADDRESS follows from it.
# Every other CONFIG_ line of the user is kept as it is.

# the architecture choice in Klipper's menu order; the fake builds the
# families named here, the others (ATSAM, HC32F460, PRU, AR100, SIMU) it
# treats as not chosen
ARCHES = ["AVR", "ATSAM", "ATSAMD", "LPC176X", "STM32", "HC32F460", "RPXXXX", "PRU",
          "AR100", "LINUX", "SIMU"]
FAMILY_OF_ARCH = {"AVR": "avr", "ATSAMD": "atsamd", "LPC176X": "lpc176x", "STM32": "stm32",
                  "RPXXXX": "rp2040", "LINUX": "linux"}


class Chip:
    def __init__(self, sym, mcu, tags, clock, flash, ram, boot=None, ram_start=0x20000000,
                 selects=()):
        self.sym, self.mcu, self.tags = sym, mcu, set(tags) | {sym}
        self.clock, self.flash, self.ram = clock, flash, ram
        self.boot, self.ram_start, self.selects = boot, ram_start, list(selects)


# STM32: (model, CONFIG_MCU, series tags the offset menu tests, clock,
# flash size, RAM size); series symbols written =y are in `selects`
def _stm32(model, mcu, series, clock, flash, ram):
    return Chip("STM32" + model, mcu, series, clock, flash, ram, boot=0x8000000,
                selects=["STM32" + s for s in series if s[0] in "FGHL" and len(s) > 1])


STM32_CHIPS = [
    _stm32("F103", "stm32f103xe", ["F1"], 72000000, 0x10000, 0x5000),
    _stm32("F207", "stm32f207xx", ["F2"], 120000000, 0x40000, 0x20000),
    _stm32("F401", "stm32f401xc", ["F4"], 84000000, 0x40000, 0x10000),
    _stm32("F405", "stm32f405xx", ["F4", "F4x5"], 168000000, 0x80000, 0x20000),
    _stm32("F407", "stm32f407xx", ["F4", "F4x5"], 168000000, 0x80000, 0x20000),
    _stm32("F429", "stm32f429xx", ["F4", "F4x5"], 168000000, 0x80000, 0x20000),
    _stm32("F446", "stm32f446xx", ["F4"], 180000000, 0x80000, 0x20000),
    _stm32("F765", "stm32f765xx", ["F7"], 216000000, 0x200000, 0x80000),
    _stm32("F031", "stm32f031x6", ["F0"], 48000000, 0x8000, 0x1000),
    _stm32("F042", "stm32f042x6", ["F0", "F0x2"], 48000000, 0x8000, 0x1800),
    _stm32("F070", "stm32f070xb", ["F0"], 48000000, 0x20000, 0x4000),
    _stm32("F072", "stm32f072xb", ["F0", "F0x2"], 48000000, 0x20000, 0x4000),
    _stm32("G070", "stm32g070xx", ["G0", "G07x"], 64000000, 0x20000, 0x9000),
    _stm32("G071", "stm32g071xx", ["G0", "G07x"], 64000000, 0x20000, 0x9000),
    _stm32("G0B0", "stm32g0b0xx", ["G0", "G0Bx"], 64000000, 0x20000, 0x24000),
    _stm32("G0B1", "stm32g0b1xx", ["G0", "G0Bx"], 64000000, 0x20000, 0x24000),
    _stm32("G431", "stm32g431xx", ["G4"], 170000000, 0x20000, 0x8000),
    _stm32("G474", "stm32g474xx", ["G4"], 170000000, 0x40000, 0x20000),
    _stm32("H723", "stm32h723xx", ["H7"], 520000000, 0x40000, 0x20000),
    _stm32("H743", "stm32h743xx", ["H7"], 400000000, 0x200000, 0x20000),
    _stm32("H750", "stm32h750xx", ["H7"], 480000000, 0x20000, 0x20000),
    _stm32("L412", "stm32l412xx", ["L4"], 80000000, 0x10000, 0xa000),
]
# the STM32 offset menu: (offset, the series or models it is offered for;
# None: every chip), in menu order
STM32_OFFSETS = [
    (0x2000, {"F1", "STM32F070", "G0", "G4", "F0x2"}), (0x5000, {"STM32F103"}),
    (0x7000, {"F1"}), (0x8000, {"F1", "F2", "F4", "F7", "STM32H750"}),
    (0x8800, {"STM32F103"}), (0x20200, {"F4x5"}), (0x9000, {"F1"}),
    (0xC000, {"F4x5", "STM32F401"}), (0x10000, {"STM32F103", "F4"}),
    (0x800, {"STM32F103"}), (0x1000, {"F1", "F0"}),
    (0x4000, {"STM32F207", "STM32F401", "F4x5", "STM32F103", "STM32F072"}),
    (0x20000, {"STM32H743", "STM32H723", "F7", "STM32H750"}), (0x0, None)]

RP_CHIPS = [Chip("RP2040", "rp2040", [], 12000000, 0x200000, 0x42000, boot=0x10000100),
            Chip("RP2350", "rp2350", [], 150000000, 0x200000, 0x82000, boot=0x10000000)]
RP_OFFSETS = [(0x0, {"RP2350"}), (0x100, {"RP2040"}), (0x4000, None)]

AVR_CHIPS = [Chip(m, m, [], 16000000, None, None) for m in (
    "atmega2560", "atmega1280", "at90usb1286", "at90usb646", "atmega32u4", "atmega1284p",
    "atmega644p", "atmega328p", "atmega328", "atmega168", "lgt8f328p")]

LPC_CHIPS = [Chip("LPC1768", "lpc1768", [], 100000000, 0x80000, 0x7fe0, boot=0x0,
                  ram_start=0x10000000),
             Chip("LPC1769", "lpc1769", [], 120000000, 0x80000, 0x7fe0, boot=0x0,
                  ram_start=0x10000000)]
LPC_OFFSETS = [(0x4000, None), (0x0, None)]


def _samd(model, series, clock, flash, ram):
    return Chip(model, model.lower() + "a", [series], clock, flash, ram, boot=0x0,
                selects=[series])


SAMD_CHIPS = [
    _samd("SAMC21G18", "SAMC21", 48000000, 0x40000, 0x8000),
    _samd("SAMD21G18", "SAMD21", 48000000, 0x40000, 0x8000),
    _samd("SAMD21E18", "SAMD21", 48000000, 0x40000, 0x8000),
    _samd("SAMD21J18", "SAMD21", 48000000, 0x40000, 0x8000),
    _samd("SAMD21E15", "SAMD21", 48000000, 0x8000, 0x1000),
    _samd("SAMD51G19", "SAMD51", 120000000, 0x80000, 0x30000),
    _samd("SAMD51J19", "SAMD51", 120000000, 0x80000, 0x30000),
    _samd("SAMD51N19", "SAMD51", 120000000, 0x80000, 0x30000),
    _samd("SAMD51P20", "SAMD51", 120000000, 0x100000, 0x40000),
    _samd("SAME51J19", "SAME51", 120000000, 0x80000, 0x30000),
    _samd("SAME51N19", "SAME51", 120000000, 0x80000, 0x30000),
    _samd("SAME54P20", "SAME54", 120000000, 0x100000, 0x40000),
]
SAMD_OFFSETS = [(0x2000, {"SAMD21"}), (0x4000, None), (0x0, None)]


class Family:
    def __init__(self, arch, board_dir, chips, prefix=None, offsets=None, base=0):
        self.arch, self.board_dir, self.chips = arch, board_dir, chips
        self.prefix, self.offsets, self.base = prefix, offsets, base

    def offered(self, chip):
        return [o for o, tags in self.offsets if tags is None or tags & chip.tags]

    def choice_sym(self, off):
        return "CONFIG_%s_FLASH_START_%04X" % (self.prefix, off)


FAMILIES = {
    "stm32": Family("STM32", "stm32", STM32_CHIPS, "STM32", STM32_OFFSETS, 0x8000000),
    "rp2040": Family("RPXXXX", "rp2040", RP_CHIPS, "RPXXXX", RP_OFFSETS, 0x10000000),
    "avr": Family("AVR", "avr", AVR_CHIPS),
    "lpc176x": Family("LPC176X", "lpc176x", LPC_CHIPS, "LPC", LPC_OFFSETS, 0x0),
    "atsamd": Family("ATSAMD", "atsamd", SAMD_CHIPS, "SAMD", SAMD_OFFSETS, 0x0),
    "linux": Family("LINUX", "linux", []),
}

# every symbol this model decides: a line naming one is the model's, the
# others are the user's
def _model_symbols():
    s = {"CONFIG_MACH_" + a for a in ARCHES}
    for fam in FAMILIES.values():
        for c in fam.chips:
            s.add("CONFIG_MACH_" + c.sym)
            s.update("CONFIG_MACH_" + x for x in c.selects)
        for off, _ in fam.offsets or []:
            s.add(fam.choice_sym(off))
    s.update("CONFIG_MACH_STM32" + x for x in ("F0x2", "F4x5", "G07x", "G0Bx"))
    s.update(("CONFIG_RP2040_HAVE_STAGE2", "CONFIG_RPXXXX_HAVE_BOOTLOADER"))
    return s


MODEL_SYMBOLS = _model_symbols()
DERIVED_VALUES = ("CONFIG_BOARD_DIRECTORY", "CONFIG_MCU", "CONFIG_CLOCK_FREQ",
                  "CONFIG_FLASH_SIZE", "CONFIG_FLASH_BOOT_ADDRESS", "CONFIG_RAM_START",
                  "CONFIG_RAM_SIZE", "CONFIG_STACK_SIZE", "CONFIG_FLASH_APPLICATION_ADDRESS")

# added when missing (the user's value wins): what the stand-in sources
# and the data dictionary look at
USB_DEFAULTS = [("CONFIG_USBSERIAL", "y"), ("CONFIG_USB_VENDOR_ID", "0x1d50"),
                ("CONFIG_USB_DEVICE_ID", "0x614e"), ("CONFIG_USB_SERIAL_NUMBER_CHIPID", "y")]
AVR_DEFAULTS = [("CONFIG_AVRDUDE_PROTOCOL", '"wiring"'), ("CONFIG_SERIAL", "y"),
                ("CONFIG_SERIAL_BAUD", "250000")]
COMMON = [("CONFIG_HAVE_GPIO", "y"), ("CONFIG_HAVE_GPIO_ADC", "y"),
          ("CONFIG_HAVE_GPIO_SPI", "y"), ("CONFIG_HAVE_GPIO_HARD_PWM", "y"),
          ("CONFIG_INLINE_STEPPER_HACK", "y"), ("CONFIG_HAVE_STEPPER_OPTIMIZED_BOTH_EDGE", "y")]


def chosen(cfg, syms):
    """The member of a choice the config selects: the last one set to y in
    the file (kconfiglib: a later assignment wins), else None."""
    best = None
    for i, (k, v) in enumerate(cfg):
        if v == "y" and k in syms:
            best = syms[k]
    return best


def evaluate(entries):
    """(family name, Family, Chip or None, offset or None) for a config's
    [(key, value)] entries."""
    arch = chosen(entries, {"CONFIG_MACH_" + a: a for a in ARCHES if a in FAMILY_OF_ARCH})
    name = FAMILY_OF_ARCH[arch or "AVR"]
    fam = FAMILIES[name]
    chip = None
    if fam.chips:
        chip = chosen(entries, {"CONFIG_MACH_" + c.sym: c for c in fam.chips}) or fam.chips[0]
    off = None
    if fam.offsets and chip is not None:
        offered = fam.offered(chip)
        off = chosen(entries, {fam.choice_sym(o): o for o in offered})
        if off is None:
            off = offered[0]
    return name, fam, chip, off


def model_values(name, fam, chip, off):
    """[(key, value)] the model decides for this chip, in Klipper's order."""
    q = lambda s: '"%s"' % s  # noqa: E731
    d = [("CONFIG_MACH_" + fam.arch, "y"), ("CONFIG_BOARD_DIRECTORY", q(fam.board_dir))]
    if name == "linux":
        return d + [("CONFIG_CLOCK_FREQ", "50000000")]
    d += [("CONFIG_MCU", q(chip.mcu)), ("CONFIG_CLOCK_FREQ", str(chip.clock))]
    if chip.boot is not None:
        d += [("CONFIG_FLASH_SIZE", hex(chip.flash)),
              ("CONFIG_FLASH_BOOT_ADDRESS", hex(chip.boot)),
              ("CONFIG_RAM_START", hex(chip.ram_start)), ("CONFIG_RAM_SIZE", hex(chip.ram)),
              ("CONFIG_STACK_SIZE", "512"),
              ("CONFIG_FLASH_APPLICATION_ADDRESS", hex(fam.base + off))]
    d.append(("CONFIG_MACH_" + chip.sym, "y"))
    d += [("CONFIG_MACH_" + s, "y") for s in chip.selects]
    if name == "rp2040":
        d.append(("CONFIG_RP2040_HAVE_STAGE2" if off == 0x100 else
                  "CONFIG_RPXXXX_HAVE_BOOTLOADER" if off else None, "y"))
        d = [kv for kv in d if kv[0]]
    if off is not None:
        d.append((fam.choice_sym(off), "y"))
    return d


def visible_choices(name, fam, chip):
    """The choice members a menu shows for this chip: not chosen ones are
    written as "is not set"; the others are invisible and dropped."""
    vis = {"CONFIG_MACH_" + a for a in ARCHES}
    vis.update("CONFIG_MACH_" + c.sym for c in fam.chips)
    if fam.offsets and chip is not None:
        vis.update(fam.choice_sym(o) for o in fam.offered(chip))
    return vis


def normalise(entries):
    """What olddefconfig makes of a config ([(key, value)] in file order):
    the file text. A complete config that Klipper wrote comes out as it
    went in."""
    name, fam, chip, off = evaluate(entries)
    want = dict(model_values(name, fam, chip, off))
    vis = visible_choices(name, fam, chip)
    out, seen = [], set()
    entries = list(entries)
    last = dict(kv for kv in entries if kv[0] is not None)                # a later line wins, as in Kconfig
    for k, v in entries:
        if k is None:
            out.append((None, v))       # a comment or blank line, kept
            continue
        if k in seen:
            continue
        if k in want:
            v = want[k]
        elif k in DERIVED_VALUES:
            continue                    # no such value for this chip (linux: no MCU)
        elif k in MODEL_SYMBOLS:
            if k not in vis:
                continue                # another chip's or family's symbol
            v = "n"                     # a choice member not chosen
        else:
            v = last[k]                 # the user's
        seen.add(k)
        out.append((k, v))
    extra = model_values(name, fam, chip, off)
    # a board built for CAN (CONFIG_CANBUS) talks no USB serial
    if name in ("stm32", "rp2040", "lpc176x", "atsamd") and last.get("CONFIG_CANBUS") != "y":
        extra += USB_DEFAULTS
    if name == "avr":
        extra += AVR_DEFAULTS
    if name != "linux":
        # Klipper selects the optimized stepper edge for every chip but H7
        extra += [kv for kv in COMMON if not ("H7" in chip.tags and "BOTH_EDGE" in kv[0])]
    for k, v in extra:
        if k not in seen:
            seen.add(k)
            out.append((k, v))
    return "".join(v + "\n" if k is None else "# %s is not set\n" % k if v == "n"
                   else "%s=%s\n" % (k, v) for k, v in out)


def mcu_from_symbols(cfg):
    """The chip a config selects through its MACH symbols ("linux" for the
    host MCU), or None when it selects none (Klipper would use AVR)."""
    entries = list(cfg.items())
    if chosen(entries, {"CONFIG_MACH_" + a: a for a in FAMILY_OF_ARCH}) is None:
        return None
    name, _, chip, _ = evaluate(entries)
    return "linux" if name == "linux" else chip.mcu


def chip_symbols(mcu):
    """The menu choices that select chip mcu: [(key, "y")], or None."""
    for fam in FAMILIES.values():
        for c in fam.chips:
            if c.mcu == mcu:
                return [("CONFIG_MACH_" + fam.arch, "y"), ("CONFIG_MACH_" + c.sym, "y")]
    if mcu == "linux":
        return [("CONFIG_MACH_LINUX", "y")]
    return None


# ---------------------------------------------------------------- config


def parse_config(text, comments=False):
    """[(key, value)] in file order; 'n' for '# CONFIG_X is not set'.
    Values keep their quotes. With comments, other lines come as (None,
    line)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out.append((line[2:-len(" is not set")].strip(), "n"))
        elif comments:
            out.append((None, raw))
    return out


def unq(v):
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


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
    print(write_config(normalise(parse_config(text, comments=True)), path))
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
        full = normalise(parse_config(text, comments=True))
        if full == text:
            print("No changes to save (for '%s')" % path)
            simfake.event(ACTOR, "menuconfig", path, "unchanged")
            return 0
        # menuconfig shows a partial config completed, and the user saves
        # what it shows (kconfiglib asks to save a config it had to change)
        print(write_config(full, path))
        simfake.event(ACTOR, "menuconfig", path, "saved", "mcu", mcu_of_values(config_values()))
        return 0
    with open(script) as fh:
        edits = parse_config(fh.read())
    # the scripted user may name the chip by CONFIG_MCU: that is choosing
    # the chip in the menu (olddefconfig itself ignores CONFIG_MCU)
    mcu = next((unq(v) for k, v in reversed(edits) if k == "CONFIG_MCU"), None)
    if mcu and chip_symbols(mcu):
        edits = [kv for kv in edits if kv[0] != "CONFIG_MCU"] + chip_symbols(mcu)
    # menu choices replace the chip: drop the old chip's symbols
    if any(k.startswith("CONFIG_MACH_") for k, _ in edits):
        base = [(k, v) for k, v in parse_config(text, comments=True)
                if k is None or not (k.startswith("CONFIG_MACH_") or k in DERIVED_VALUES
                                     or k in MODEL_SYMBOLS)]
    else:
        base = parse_config(text, comments=True)
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
                ver = r.stdout.strip()
                # as Klipper's buildcommands.py: a dirty tree's build says
                # when and where it was made
                if "dirty" in ver:
                    ver += "-%s-%s" % (time.strftime("%Y%m%d_%H%M%S"), socket.gethostname())
                return ver
        except (OSError, subprocess.SubprocessError):
            pass
    return DEFAULT_VERSION


def config_digest(cfg):
    return "\n".join("%s=%s" % kv for kv in sorted(cfg.items()) if kv[1] != "n")


def out_of(path):
    """OUT as make has it (with its trailing slash) from OUT/file."""
    return os.path.dirname(path) + "/"


def priority():
    """["nice", N, "sched", POLICY, "io", CLASS]: what the build runs at (a
    build during a print should run at nice 19, SCHED_IDLE, I/O idle)."""
    pol = os.sched_getscheduler(0)
    names = {os.SCHED_OTHER: "other", os.SCHED_BATCH: "batch", os.SCHED_IDLE: "idle"}
    io = "?"
    try:
        r = subprocess.run(["ionice", "-p", str(os.getpid())], capture_output=True,
                           text=True, timeout=5)
        io = r.stdout.split(":")[0].strip() or "?"
    except (OSError, subprocess.SubprocessError):
        pass
    return ["nice", str(os.getpriority(os.PRIO_PROCESS, 0)), "sched",
            names.get(pol, str(pol)), "io", io]


def cmd_start(out):
    simfake.event(ACTOR, "build", "start", out, "mcu", mcu_of_values(config_values()))
    simfake.event(ACTOR, "build", "priority", *priority())
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
