# faults.py - the one registry of the simulator's faults: every fault a
# scenario, a board file or a fake tool names, how it is set, who reads it,
# its words and what they do.
#
#   /usr/bin/python3 sim/fake/lib/faults.py --check [FILE...]
#       every fault the scenarios, the board files, the sim tests (and the
#       extra FILEs, scenarios or boards) use is registered here with that
#       word, every entry is implemented where it says, every fault a fake
#       reads is registered, and sim/fake/README.md shows this table
#   /usr/bin/python3 sim/fake/lib/faults.py --markdown
#       the table for sim/fake/README.md
#
# A new fault is one entry here plus its code in the file the entry names;
# --check (sim/test-faults.sh, part of `make sim-tests`) fails until both
# agree and the README is regenerated. simfake.fault() refuses a name that
# is not here; sim/scenario refuses a `fault:` line or a board override
# this registry does not know.
import os
import re
import sys

# How a fault is set.
STATE = "state"      # $KFLASH_SIM_STATE/fault/NAME holds "WORD [ARGS] [once]";
                     # scenario `fault: NAME WORD [ARGS]`
BOARD = "board"      # board file `NAME=WORD`; --board FILE,NAME=WORD;
                     # scenario `board: FILE,NAME=WORD`
CONTROL = "control"  # a control FIFO line `NAME BOARD [WORD]` (simhost);
                     # scenario `when: EVENT => echo "NAME BOARD" > "$KFLASH_SIM_CONTROL"`

HOW = {
    STATE: "`fault: NAME WORD` (file `fault/NAME`)",
    BOARD: "`NAME=WORD` in the board file or after `board: FILE,`",
    CONTROL: "`echo \"NAME BOARD [WORD]\" > \"$KFLASH_SIM_CONTROL\"`",
}

# The words every state fault read through simfake.apply_common() takes.
COMMON = {
    "hang": "never finishes: sleeps in a child process, so a test sees whether "
            "the whole process group was killed",
    "slow": "waits SECONDS (default 1, also in a sleep child), then works",
}


class Word:
    def __init__(self, name, effect, args=""):
        self.name = name
        self.effect = effect
        self.args = args        # e.g. "SECONDS", "[SRC]": shown, and at most this many


class Fault:
    def __init__(self, name, how, reader, impl, words, common=True, note=""):
        self.name = name
        self.note = note
        self.how = how
        self.reader = reader    # the actor that reads it (event log name)
        self.impl = impl        # files (from the repository root) that implement it
        self.words = words
        if how == STATE and common:
            self.words = words + [Word("hang", None), Word("slow", None, "SECONDS")]

    def word(self, name):
        return next((w for w in self.words if w.name == name), None)


W = Word
FAULTS = [
    # ---- fake tools: $KFLASH_SIM_STATE/fault/NAME --------------------------
    Fault("sudo", STATE, "sudo", ["sim/fake/bin/sudo"], [
        W("fail", '"sudo: PAM account management error: ..." exit 1'),
        W("password", "every command needs a password (except those in `sudo-nopasswd`): "
          "`sudo -n` prints exactly `sudo: a password is required` and exits 1; without "
          "`-n` and without a terminal sudo says a terminal is required, exit 1"),
    ]),
    Fault("systemctl-stop", STATE, "systemctl", ["sim/fake/bin/systemctl"], [
        W("fail", '"Job for klipper.service failed. ..." exit 1, the state stays as it was '
          "(Klipper still running); `hang` hangs in `deactivating`"),
    ]),
    Fault("systemctl-start", STATE, "systemctl", ["sim/fake/bin/systemctl"], [
        W("fail", '"Job for klipper.service failed because the control process exited with '
          'error code. ..." exit 1, state `failed`; `hang` hangs in `activating`'),
    ]),
    Fault("systemctl-is-active", STATE, "systemctl", ["sim/fake/bin/systemctl"], [
        W("fail", '`is-active` and `show`: "Failed to connect to bus: No such file or '
          'directory" exit 1'),
    ]),
    Fault("cross-compiler", STATE, "arm-none-eabi-gcc", ["sim/fake/bin/arm-none-eabi-gcc", "sim/fake/bin/avr-gcc"], [
        W("missing", "arm-none-eabi-gcc and avr-gcc say `sh: 1: NAME: not found` and exit "
          "127, as on a host without the compiler"),
    ]),
    Fault("make-build", STATE, "make", ["sim/fake/klipper/scripts/fake_build.py"], [
        W("fail", "compiling SRC (default `src/command.c`; a path or a base name) prints a gcc "
          "error and exits 1, make prints `make: *** [...] Error 1` and exits 2", "[SRC]"),
        W("hang", "every compile step hangs (in a sleep child)"),
        W("slow", "SECONDS spread over the compile steps (a `-j1` build takes SECONDS more, "
          "`-jK` about SECONDS/K)", "SECONDS"),
    ], common=False),
    Fault("make-olddefconfig", STATE, "make", ["sim/fake/klipper/scripts/fake_build.py"], [
        W("fail", "a kconfiglib error, make exits 2"),
    ]),
    Fault("make-menuconfig", STATE, "make", ["sim/fake/klipper/scripts/fake_build.py"], [
        W("fail", "menuconfig exits 1 (make exits 2) without saving"),
    ]),
    Fault("make-flash", STATE, "flash_usb", ["sim/fake/klipper/scripts/flash_usb.py"], [
        W("fail", 'flash_usb.py prints the STM32 help ("Failed to flash to ...: Error running '
          'dfu-util") and exits 255; make exits 2'),
    ]),
    Fault("libusb", STATE, "make", ["sim/fake/klipper/lib/fake_usbtool.py"], [
        W("fail", "the host has no libusb-1.0 headers: compiling `lib/rp2040_flash` fails with "
          "pkg-config's and gcc's messages (make exits 2); `lib/hidflash` is skipped with its "
          '"hid-flash requires libusb-1.0" notice and make goes on, as in Klipper'),
    ], common=False),
    Fault("flashtool", STATE, "flashtool", ["sim/fake/katapult/scripts/flashtool.py"], [
        W("fail", 'connects, then "Flash write failed, flash address 0x..." (caused by "Error '
          'sending command [SEND_BLOCK] to Device"), COMPLETE still sent, exit 1; with `-s`: '
          '"Error sending command [CONNECT] to Device"'),
        W("no-complete", "without touching the board prints the path of a board that came "
          "back from the bootloader request as something else (DFU 0483:df11): \"Device is "
          "not Katapult, exiting...\", \"Bootloader Request Complete\", exit 0"),
        W("pyserial-missing", '"The pyserial python package was not found. ..." Flash Tool '
          "Error, exit 1"),
    ]),
    Fault("moonraker", STATE, "moonraker", ["sim/fake/moonraker/handler"], [
        W("fail", "HTTP CODE (default 500) with Moonraker's error JSON", "[CODE]"),
        W("html", "200 with an nginx error page"),
        W("garbage", "200 with a body cut short (not JSON)"),
        W("huge", "200 with a 10 MB JSON body (a print_stats filename that long)"),
        W("no-print-stats", "print queries answer without `print_stats`"),
    ]),

    # ---- boards: a board file's keys ----------------------------------------
    Fault("fault", BOARD, "simboard", ["sim/board.c"], [
        W("none", "no fault (the default)"),
        W("silent", "never answers in Katapult mode"),
        W("corrupt-readback", "REQUEST_BLOCK returns wrong data: flashtool's verify fails"),
        W("no-bootloader", "ignores the bootloader request (1200 baud, the serial request "
          "block): a board without Katapult"),
    ], note="The stand-alone board takes the same words: `kflash-simboard --fault WORD`"),
    Fault("after_complete", BOARD, "simboard", ["sim/host_fixture.c"], [
        W("klipper", "the new firmware boots: disconnect, back as Klipper (the default)"),
        W("katapult", "the new firmware does not start: disconnect, back in Katapult "
          "mode (a fresh bootloader session)"),
        W("gone", "disconnects and stays away until a `plug`"),
    ]),

    # ---- the simulated host's control FIFO ---------------------------------
    Fault("unplug", CONTROL, "simboard", ["sim/host_control.c"], [
        W("", "the board leaves the bus at once, whatever it was doing: the tty hangs up, "
          "node and links go"),
    ]),
    Fault("plug", CONTROL, "simboard", ["sim/host_control.c"], [
        W("", "an unplugged board comes back in the mode of the firmware it was running; "
          "a hung board stays silent"),
    ]),
    Fault("mode", CONTROL, "simboard", ["sim/host_control.c"], [
        W("klipper", "resets into Klipper now (disconnect, back after reenumerate_ms); "
          "starts the image in flash, which may hang the board"),
        W("katapult", "resets into the bootloader now (a double-tap of reset); wakes a "
          "hung board"),
    ]),
    Fault("after", CONTROL, "simboard", ["sim/host_control.c"], [
        W("klipper", "from the next COMPLETE on, the new firmware boots (as "
          "`after_complete=klipper`)"),
        W("katapult", "from the next COMPLETE on, back in Katapult (as "
          "`after_complete=katapult`)"),
        W("gone", "from the next COMPLETE on, the board leaves and stays away until a "
          "`plug` (as `after_complete=gone`): a flash that never comes back"),
    ]),
]

BY_NAME = {(f.how, f.name): f for f in FAULTS}


def lookup(how, name):
    return BY_NAME.get((how, name))


def names(how):
    return [f.name for f in FAULTS if f.how == how]


def problem_state(name, words):
    """None when `fault/NAME` holding WORDS is one this registry knows, else
    why not. No words means `fail`, as sim/scenario writes it."""
    f = lookup(STATE, name)
    if f is None:
        return "no fault named '%s' (known: %s)" % (name, " ".join(names(STATE)))
    words = list(words) or ["fail"]
    if words[-1] == "once":
        words = words[:-1]
    if not words:
        return "fault %s: 'once' needs a word before it" % name
    w = f.word(words[0])
    if w is None:
        return "fault %s: no word '%s' (known: %s)" % (
            name, words[0], " ".join(x.name for x in f.words))
    if len(words) - 1 > len(w.args.split()):
        return "fault %s %s: takes %s" % (name, w.name, w.args or "no arguments")
    return None


def problem_board(key, value):
    """None when a board key KEY=VALUE is fine as far as faults go (keys that
    are no fault are not this registry's business), else why not."""
    f = lookup(BOARD, key)
    if f is None or f.word(value) is not None:
        return None
    return "%s=%s: not one of %s" % (key, value, " ".join(w.name for w in f.words))


def problem_control(words):
    """None when a control FIFO line (its words) names a registered command."""
    if not words:
        return None
    f = lookup(CONTROL, words[0])
    if f is None:
        return "no control command '%s' (known: %s)" % (words[0], " ".join(names(CONTROL)))
    takes = [w.name for w in f.words if w.name]
    if len(words) != (3 if takes else 2) or (takes and words[2] not in takes):
        return "control %s: %s BOARD%s" % (words[0], words[0],
                                           " " + "|".join(takes) if takes else "")
    return None


# ---------------------------------------------------------------- the table

def markdown():
    rows = ["| fault | set by | read by | words: what they do |", "|---|---|---|---|"]
    for f in FAULTS:
        parts, common = [], []
        for w in f.words:
            label = ("`%s %s`" % (w.name, w.args) if w.args else "`%s`" % w.name) \
                if w.name else "(no word)"
            if w.effect is None:
                common.append(label)
            else:
                parts.append("%s: %s" % (label, w.effect))
        text = ". ".join(parts)
        if common:
            text += ". Also %s" % ", ".join(common)
        if f.note:
            text += ". %s" % f.note
        rows.append("| `%s` | %s | `%s`: %s | %s |" % (
            f.name, f.how, f.reader, ", ".join("`%s`" % i for i in f.impl), text))
    return "\n".join(rows) + "\n"


BEGIN = "<!-- generated by sim/fake/lib/faults.py --markdown: edit the registry, not this table -->\n"
END = "<!-- end of the generated table -->\n"


# ---------------------------------------------------------------- --check

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".."))


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _files(sub, pattern):
    d = os.path.join(ROOT, sub)
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d) if re.match(pattern, n))
    except OSError:
        return []


# a control line written to the FIFO: echo "unplug NAME" > "$KFLASH_SIM_CONTROL"
CONTROL_RE = re.compile(r"""echo\s+["']?([^"'>]*?)["']?\s*>\s*"?\\?\$(?:\{?KFLASH_SIM_CONTROL\}?|S/simhost\.ctl)""")
# a fault file written directly: .../fault/NAME
FILE_RE = re.compile(r"""(?:echo\s+["']?([^"'>]*?)["']?\s*>\s*)?"?\$[{]?(?:KFLASH_SIM_STATE|S)[}]?/fault/([a-z][-a-z]*)""")
# sim/test-fakes.sh's helper: fault NAME "WORDS"
HELPER_RE = re.compile(r"""^\s*fault\s+([a-z][-a-z]*)\s+("[^"]*"|\S+)""", re.M)
# the fakes reading a fault
READ_RE = re.compile(r"""(?:simfake\.fault|(?<![\w.])fault|apply_common)\((?:ACTOR,\s*)?"([^"]+)"\)""")


def check_scenario(path, errs):
    for n, line in enumerate(_read(path).splitlines(), 1):
        where = "%s:%d" % (os.path.relpath(path, ROOT), n)
        s = line.strip()
        m = re.match(r"^fault:\s*(\S+)\s*(.*)$", s)
        if m:
            USES[STATE] += 1
            p = problem_state(m.group(1), m.group(2).split())
            if p:
                errs.append("%s: %s" % (where, p))
        m = re.match(r"^board:\s*(\S+)$", s)
        if m:
            for piece in m.group(1).split(",")[1:]:
                key, eq, val = piece.partition("=")
                if eq and lookup(BOARD, key.strip()):
                    USES[BOARD] += 1
                p = problem_board(key.strip(), val.strip()) if eq else None
                if p:
                    errs.append("%s: %s" % (where, p))
        check_shell_line(s, where, errs)


def check_shell_line(s, where, errs):
    for m in CONTROL_RE.finditer(s):
        USES[CONTROL] += 1
        p = problem_control(m.group(1).split())
        if p:
            errs.append("%s: %s" % (where, p))
    for m in FILE_RE.finditer(s):
        USES[STATE] += 1
        p = problem_state(m.group(2), (m.group(1) or "fail").split()) if m.group(1) is not None \
            else (None if lookup(STATE, m.group(2)) else "no fault named '%s'" % m.group(2))
        if p:
            errs.append("%s: %s" % (where, p))


def check_board_file(path, errs):
    for n, line in enumerate(_read(path).splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        key, _, val = s.partition("=")
        if lookup(BOARD, key.strip()):
            USES[BOARD] += 1
        p = problem_board(key.strip(), val.strip())
        if p:
            errs.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, p))


def check_test_script(path, errs):
    text = _read(path)
    for n, line in enumerate(text.splitlines(), 1):
        check_shell_line(line, "%s:%d" % (os.path.relpath(path, ROOT), n), errs)
    for m in HELPER_RE.finditer(text):
        n = text.count("\n", 0, m.start()) + 1
        USES[STATE] += 1
        p = problem_state(m.group(1), m.group(2).strip('"').split())
        if p:
            errs.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, p))


def check_implemented(errs):
    for f in FAULTS:
        for rel in f.impl:
            path = os.path.join(ROOT, rel)
            if not os.path.isfile(path):
                errs.append("%s %s: its file %s does not exist" % (f.how, f.name, rel))
                continue
            text = _read(path)
            if f.how == STATE:
                read = re.search(r"""(?:fault|apply_common)\((?:ACTOR,\s*)?"%s"\)""" % re.escape(f.name), text)
                common = re.search(r"""apply_common\(ACTOR,\s*"%s"\)""" % re.escape(f.name), text)
                if not read:
                    errs.append("fault %s: %s never reads it" % (f.name, rel))
                for w in f.words:
                    if w.name in COMMON and common:
                        continue    # simfake.apply_common() does it
                    if '"%s"' % w.name not in text:
                        errs.append("fault %s %s: %s does not handle the word" % (f.name, w.name, rel))
            else:
                # C tables: { "word", ... }
                for w in f.words:
                    lit = '{ "%s",' % (w.name if f.how == BOARD else f.name)
                    if lit not in text:
                        errs.append("%s %s%s: no %s in %s" % (f.how, f.name, " " + w.name if w.name else "",
                                                               lit, rel))
                    elif f.how == CONTROL and w.name and '"%s"' % w.name not in text:
                        errs.append("control %s %s: %s does not handle the word" % (f.name, w.name, rel))


def check_c_tables(errs):
    """The other way round: what the C tables name is registered."""
    tables = [("sim/board.c", r'\{ "([^"]+)", SIM_FAULT_', BOARD, "fault"),
              ("sim/host_fixture.c", r'\{ "([^"]+)", SIM_AFTER_', BOARD, "after_complete"),
              ("sim/host_control.c", r'\{ "([^"]+)", \d+, sim_run_', CONTROL, None)]
    for rel, pat, how, key in tables:
        try:
            text = _read(os.path.join(ROOT, rel))
        except OSError:
            continue
        for word in re.findall(pat, text):
            if key is None and lookup(how, word) is None:
                errs.append("%s: control command %s is not registered" % (rel, word))
            elif key is not None and lookup(how, key).word(word) is None:
                errs.append("%s: %s=%s is not registered" % (rel, key, word))


def check_fakes_read_registered(errs):
    fake = os.path.join(ROOT, "sim", "fake")
    for d, _, files in os.walk(fake):
        for n in files:
            path = os.path.join(d, n)
            rel = os.path.relpath(path, ROOT)
            if rel.startswith("sim/fake/lib/") or n.endswith((".md", ".json", ".config")):
                continue
            try:
                text = _read(path)
            except (OSError, UnicodeError):
                continue
            for name in set(READ_RE.findall(text)):
                f = lookup(STATE, name)
                if f is None:
                    errs.append("%s reads fault/%s, which is not registered" % (rel, name))
                elif rel not in f.impl:
                    errs.append("%s reads fault/%s, but the registry names %s" % (
                        rel, name, " ".join(f.impl)))


def check_readme(errs):
    path = os.path.join(ROOT, "sim", "fake", "README.md")
    text = _read(path)
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        errs.append("sim/fake/README.md: no generated fault table (markers missing)")
    elif text[i + len(BEGIN):j] != markdown():
        errs.append("sim/fake/README.md: the fault table is not the registry's; "
                    "regenerate it: sim/fake/lib/faults.py --write-readme")


USES = {STATE: 0, BOARD: 0, CONTROL: 0}


def check(extra=()):
    errs = []
    for k in USES:
        USES[k] = 0
    for p in _files("fixtures/scenarios", r".*\.scenario$"):
        check_scenario(p, errs)
    for p in _files("fixtures/boards", r".*\.board$"):
        check_board_file(p, errs)
    # test-faults.sh writes bad faults on purpose, to see this check fail
    for p in _files("sim", r"^(test-(?!faults\.sh$).*\.sh|.*\.py)$") + \
            _files("tests", r"^test-.*\.sh$"):
        check_test_script(p, errs)
    for p in extra:
        (check_board_file if p.endswith(".board") else check_scenario)(os.path.abspath(p), errs)
    check_implemented(errs)
    check_c_tables(errs)
    check_fakes_read_registered(errs)
    check_readme(errs)
    return errs


def write_readme():
    path = os.path.join(ROOT, "sim", "fake", "README.md")
    text = _read(path)
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        sys.stderr.write("faults.py: %s has no markers\n" % path)
        return 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:i + len(BEGIN)] + markdown() + text[j:])
    return 0


def main(argv):
    if argv[:1] == ["--markdown"]:
        sys.stdout.write(markdown())
        return 0
    if argv[:1] == ["--write-readme"]:
        return write_readme()
    if argv[:1] == ["--check"]:
        errs = check(argv[1:])
        for e in errs:
            sys.stderr.write("faults: %s\n" % e)
        n = sum(len(f.words) for f in FAULTS)
        print("faults: %d faults, %d words registered; %d uses checked (%d state, %d board, "
              "%d control); %s" % (
                  len(FAULTS), n, sum(USES.values()), USES[STATE], USES[BOARD], USES[CONTROL],
                  "problems: %d" % len(errs) if errs else
                  "the scenarios, board files, sim tests, fakes and README agree"))
        return 1 if errs else 0
    sys.stderr.write("usage: faults.py --check [SCENARIO|BOARD...] | --markdown | --write-readme\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
