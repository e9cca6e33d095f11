"""scenario - declarative simulator scenarios (fixtures/scenarios/*.scenario).

A scenario is one readable file of `key: value` lines:

  title: flash one board end to end
  board: octopus-f446                    boards in the simulated host
  register: octopus octopus-f446         registry entry KEY from a board fixture
  config: octopus = octopus-f446         fixtures/configs/X.config as KEY's config
  home-config: klipper/.config = X       fixtures/configs/X.config at that path
                                         under the simulated home (KIAUH's
                                         klipper-kconfigs/NAME.config ...)
  setting: fallback false                a registry setting
  fault: flashtool fail                  state/fault/NAME (registered in
                                         sim/fake/lib/faults.py, see
                                         sim/fake/README.md)
  moonraker: {"print_state": "printing"} fake Moonraker state (JSON, merged)
  moonraker-instance: printer_2 {...}    one more printer on the host (KIAUH):
                                         its own fake Moonraker (JSON as above),
                                         found through ~/printer_2_data/config/
                                         moonraker.conf
  service: klipper inactive              the unit's state before the run
  step: kflash add ...                   shell commands before the run
  run: kflash flash octopus -s           the command under test
  signal: INT when flashtool start       send a signal once an event appears
  when: make build start => CMD          run a shell command once an event appears
  expect-exit: 0
  expect-stdout: TEXT                    stdout has TEXT (expect-no-stdout); line
                                         breaks and runs of spaces count as one space
  expect-stderr: TEXT                    stderr has TEXT (expect-no-stderr)
  expect-stdout-line: TEXT               one line of stdout holds TEXT whole: a
  expect-stderr-line: TEXT               command or path that must not be broken
  expect-stdout-width: 80                every line of stdout is at most 80 columns,
  expect-stderr-width: 80                but for a single word (a path, an id: never
                                         broken) and a line that starts, after its
                                         indent and a step's number ("2. "), with
                                         an expect-*-line TEXT of the same stream
                                         (a command shown whole)
  expect-event: TEXT                     an event line has TEXT (expect-no-event)
  expect-order: A < B < C                first A before first B after it ...
  expect-within: 2.0 A -> B              B follows A within 2.0 s
  expect-image: BOARD = KEY              the board's flashed image equals the
                                         firmware kflash built for KEY
  expect-image: BOARD = last-good KEY    ... equals the firmware kflash keeps
                                         for KEY's rollback (its kept.json's)
  expect-service: klipper active
  expect-no-leftovers                    no process kflash started survives
  expect-checkout-clean                  git status of the fake Klipper is empty
  expect-fixes-run                       every `fix:` line printed (kflash doctor)
                                         is a shell command that parses and whose
                                         programs the host has; each one that
                                         needs no sudo is then run there, in
                                         order, and must succeed, and in a rerun
                                         of `run:` every check it was printed
                                         for passes
  expect-downtime: 1.0                   Klipper is stopped once, the flash tools
                                         run inside that window, and it is started
                                         again; under `make bench` (timing=True)
                                         the window is also at most the tools'
                                         time plus 1.0 s. A timed bound is a
                                         benchmark, never a pass/fail of make check.
  (HOSTVERSION in a line stands for the fake Klipper's git describe, HOSTUSER
  for the login name of the user running the host: what a sudoers line names)
  xfail: why                             expected to fail (never deleted)
"""
import glob
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys

import simlib

sys.path.insert(0, os.path.join(simlib.FAKE, "lib"))
import faults  # noqa: E402  the registry of every fault a scenario can name

SIGNALS = {"INT": 2, "TERM": 15, "HUP": 1, "QUIT": 3, "KILL": 9}
KNOWN = {"title", "board", "register", "config", "setting", "fault", "moonraker",
         "moonraker-instance",
         "mcu-version", "service", "step", "run", "signal", "when", "expect-exit",
         "expect-stdout", "expect-no-stdout", "expect-stderr", "expect-no-stderr",
         "expect-stdout-line", "expect-stderr-line", "expect-stdout-width",
         "expect-stderr-width",
         "expect-event", "expect-no-event", "expect-order", "expect-within",
         "expect-image", "expect-service", "expect-no-leftovers",
         "expect-checkout-clean", "expect-downtime", "xfail", "timeout", "home-config",
         "expect-fixes-run"}
BARE = {"expect-no-leftovers", "expect-checkout-clean", "expect-fixes-run"}


def parse(path):
    items = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s in BARE:
                items.append((n, s, ""))
                continue
            m = re.match(r"^([a-z-]+):\s*(.*)$", s)
            if not m or m.group(1) not in KNOWN:
                raise simlib.SimError("%s:%d: cannot read '%s' (known keys: %s)"
                                      % (path, n, s, " ".join(sorted(KNOWN))))
            items.append((n, m.group(1), m.group(2)))
    if not any(k == "run" for _, k, _ in items):
        raise simlib.SimError("%s: no 'run:' line" % path)
    # a fault, board override or control command the registry does not
    # know would do nothing at all: say so instead of running
    errs = []
    faults.check_scenario(path, errs)
    if errs:
        raise simlib.SimError("; ".join(errs) + " (see sim/fake/lib/faults.py)")
    return items


DRIVER = r"""
set -u
# has_event PATTERN: an event line whose "actor words" start with PATTERN
has_event() { awk -v p="$1" 'index(substr($0, index($0, " ") + 1), p) == 1 { f = 1 } END { exit !f }' "$KFLASH_SIM_EVENTS"; }
S="$KFLASH_SIM_STATE"
now() { "%(simhost)s" --now; }
ev() { echo "$(now) scenario $*" >> "$KFLASH_SIM_EVENTS"; }
%(steps)s
ev run start
KFLASH_SIM_TAG=%(tag)s %(run)s > "$S/run.out" 2> "$S/run.err" < /dev/null &
pid=$!
%(trigger)s
wait $pid 2>/dev/null
rc=$?
echo $rc > "$S/run.rc"
ev run end rc=$rc
# give a guardian or a dying child its moment, then list what is left
i=0
while [ $i -lt 60 ]; do
	left=$(grep -l "KFLASH_SIM_TAG=%(tag)s" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3)
	[ -z "$left" ] && break
	sleep 0.05; i=$((i + 1))
done
: > "$S/leftovers"
for p in $left; do
	echo "$p $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)" >> "$S/leftovers"
	kill -9 "$p" 2>/dev/null
done
exit 0
"""


# waits for an event of the run: one process following the event log, not
# a shell loop of awk and sleep (sim/trigger.py)
TRIGGER = "%s %s" % (simlib.PYTHON, shlex.quote(os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "trigger.py")))


def driver_script(items, host, tag):
    steps = []
    run = None
    trigger = ""
    for n, k, v in items:
        if k == "step":
            steps.append("{ %s\n} >> \"$S/steps.log\" 2>&1 || { echo 'scenario step "
                         "failed (line %d): %s' >&2; cat \"$S/steps.log\" >&2; exit 98; }"
                         % (v, n, v.replace("'", "")))
        elif k == "run":
            run = v
        elif k == "signal":
            m = re.match(r"^([A-Z]+) when (.+?)(?: after ([0-9.]+))?$", v)
            if not m or m.group(1) not in SIGNALS:
                raise simlib.SimError("line %d: signal: NAME when EVENT [after SECONDS]"
                                      % n)
            sig, pat, delay = m.group(1), m.group(2), m.group(3) or "0"
            trigger += "%s $pid signal %s %s %s &\n" % (TRIGGER, sig, shlex.quote(pat), delay)
    for n, k, v in items:
        if k == "when":
            pat, sep, cmd = v.partition(" => ")
            if not sep:
                raise simlib.SimError("line %d: when: EVENT => COMMAND" % n)
            trigger += ("( %s $pid wait %s || exit 0; ev when %s; %s ) &\n"
                        % (TRIGGER, shlex.quote(pat), shlex.quote(pat), cmd))
    return DRIVER % {"simhost": os.path.join(simlib.build_dir(), "kflash-simhost"),
                     "steps": "\n".join(steps), "run": run,
                     "tag": tag, "trigger": trigger}


def host_version(host):
    r = subprocess.run(["git", "-C", host.klipper, "describe", "--always", "--tags",
                        "--long", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip()


def prepare(items, host):
    hv = host_version(host)
    user = pwd.getpwuid(os.getuid()).pw_name
    items[:] = [(n, k, v.replace("HOSTVERSION", hv).replace("HOSTUSER", user))
                for n, k, v in items]
    boards = []
    for n, k, v in items:
        if k == "register":
            parts = v.split()
            if len(parts) < 2:
                raise simlib.SimError("line %d: register: KEY BOARD [method]" % n)
            path, _, _ = simlib.resolve_board(parts[1])
            p = simlib.board_props(path)
            b = {"key": parts[0], "name": parts[0], "mcu": p["mcu"],
                 "method": parts[2] if len(parts) > 2 else "default",
                 "flashable": True}
            if p.get("transport") == "can":
                b.update({"transport": "can", "canbus_uuid": simlib.canbus_uuid(p),
                          "interface": p.get("interface", "can0")})
            else:
                b["pattern"] = "usb-*_%s_%s-if*" % (p["mcu"], p["serial"])
            if p.get("can_bridge"):
                # a USB board that is its bus's bridge, and a node on it
                b.update({"transport": "bridge", "canbus_uuid": simlib.canbus_uuid(p),
                          "interface": p["can_bridge"]})
            boards.append(b)
    if boards:
        host.write_registry(boards)
    for n, k, v in items:
        if k in ("config", "home-config"):
            key, _, fx = [x.strip() for x in v.partition("=")]
            src = os.path.join(simlib.CONFIGS, fx + ".config")
            if not os.path.isfile(src):
                raise simlib.SimError("line %d: no config fixture %s" % (n, src))
            dst = os.path.join(host.home, key) if k == "home-config" else \
                os.path.join(host.config_dir, "configs", key, ".config")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
        elif k == "setting":
            key, _, val = v.partition(" ")
            path = os.path.join(host.config_dir, "devices.json")
            with open(path) as f:
                doc = json.load(f)
            val = json.loads(val) if val in ("true", "false") or val.isdigit() else val
            if key.startswith("timeout."):
                doc["settings"]["timeouts"][key[8:]] = val
            else:
                doc["settings"][key] = val
            with open(path, "w") as f:
                json.dump(doc, f, indent=2)
        elif k == "fault":
            name, _, what = v.partition(" ")
            host.fault(name, what or "fail")
        elif k == "moonraker":
            try:
                host.moonraker(json.loads(v))
            except ValueError as e:
                raise simlib.SimError("line %d: moonraker: bad JSON: %s" % (n, e))
        elif k == "moonraker-instance":
            name, _, js = v.partition(" ")
            if not re.match(r"^printer_[0-9]$", name):
                raise simlib.SimError("line %d: moonraker-instance: NAME is printer_N" % n)
            try:
                doc = json.loads(js or "{}")
            except ValueError as e:
                raise simlib.SimError("line %d: moonraker-instance: bad JSON: %s" % (n, e))
            with open(os.path.join(host.state, "moonraker-%s.json" % name), "w") as f:
                json.dump(doc, f)
            out = subprocess.run([os.path.join(simlib.FAKE, "moonraker", "start"), "0", name],
                                 env=host.env(), stdout=subprocess.PIPE, text=True, check=True)
            port = out.stdout.strip().rsplit(":", 1)[1]
            conf = os.path.join(host.home, name + "_data", "config")
            os.makedirs(conf, exist_ok=True)
            with open(os.path.join(conf, "moonraker.conf"), "w") as f:
                f.write("[server]\nhost: 0.0.0.0\nport: %s\nklippy_uds_address: "
                        "~/%s_data/comms/klippy.sock\n" % (port, name))
        elif k == "mcu-version":
            obj, mcu, ver = v.rsplit(" ", 2)
            cur = {}
            with open(os.path.join(host.state, "moonraker.json")) as f:
                cur = json.load(f).get("mcus", {})
            cur[obj] = {"mcu_version": ver, "mcu_constants": {"MCU": mcu}}
            host.moonraker({"mcus": cur})
        elif k == "service":
            unit, _, state = v.partition(" ")
            host.set_service(unit, state)


def first(events, pat, after=-1.0):
    """The time of the first event at or after `after` that starts with
    pat ("actor event words")."""
    for t, actor, ev in events:
        if t >= after and (actor + " " + ev).startswith(pat):
            return t
    return None


def downtime(events):
    """(down, tools) in seconds for Klipper's first stop window, where tools
    is the flash tools' own run time inside it; None when it never stopped
    and started again."""
    stop = first(events, "systemctl stop klipper")
    start = first(events, "systemctl start klipper", stop or 0)
    if stop is None or start is None:
        return None
    tools, t0 = 0.0, None
    for t, a, e in events:
        if t < stop or t > start:
            continue
        if a in ("flashtool", "flash_usb") and e.startswith("start"):
            t0 = t
        elif a in ("flashtool", "flash_usb") and e.startswith("exit") and t0:
            tools += t - t0
            t0 = None
    return start - stop, tools


# what ASan, LeakSanitizer and UBSan print: any of it in a run's output
# (or a setup step's) fails the scenario whatever it expects, a non-zero
# exit included. (Not a report file: ASan's log_path crashes a process
# under umockdev's preload as the report is written.)
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                              r"runtime error:|WARNING: AddressSanitizer")


def sanitizer_reports(streams):
    """[message] for each stream (name -> text) that holds a report."""
    fails = []
    for name, text in streams.items():
        m = SANITIZER_REPORT.search(text)
        if m:
            line = text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0]
            fails.append("sanitizer report in %s: %s" % (name, line.strip()))
    return fails


def valgrind_reports(host):
    """[message] for each memcheck report (KFLASH_VALGRIND: simlib runs
    every kflash under valgrind, its log in the state dir)."""
    fails = []
    for path in sorted(glob.glob(os.path.join(host.state, simlib.VALGRIND_LOG + ".*"))):
        with open(path, errors="replace") as f:
            # valgrind 3.19 does not know pidfd_open (kflash then polls):
            # its warning is no report on kflash
            text = re.sub(r"--\d+-- WARNING: unhandled amd64-linux syscall: 434\n"
                          r"(--\d+-- [^\n]*\n){4}", "", f.read()).strip()
        if text:
            fails.append("valgrind report in %s:\n%s" % (path, "\n".join(
                "      " + line for line in text.splitlines()[:40])))
    return fails


def check(items, host, timing=False):
    """Returns a list of failure messages. Timed bounds (expect-downtime's
    margin) are checked only with timing, which make bench sets. A
    sanitizer's report anywhere in the run is always one."""
    st = host.state
    fails = []
    read = lambda p: open(p, errors="replace").read() if os.path.exists(p) else ""
    out, err = read(os.path.join(st, "run.out")), read(os.path.join(st, "run.err"))
    # messages wrap at 80 columns: compare text with whitespace runs folded
    fold = lambda t: re.sub(r"\s+", " ", t)
    fout, ferr = fold(out), fold(err)
    rc = read(os.path.join(st, "run.rc")).strip()
    streams = {"stdout": out, "stderr": err}
    # what an expect-*-line names may be wider than an expect-*-width
    whole = {s: [v for _, k, v in items if k == "expect-%s-line" % s] for s in streams}
    events = host.read_events()
    fails += sanitizer_reports({"stdout": out, "stderr": err,
                                "the steps' output": read(os.path.join(st, "steps.log"))})
    fails += valgrind_reports(host)
    fails += ["a signal came after the run had ended (%s): its moment is too late" % e
              for _, a, e in events if a == "scenario" and e.startswith("signal ")
              and e.endswith(" missed")]
    has_event = lambda pat: first(events, pat) is not None
    for n, k, v in items:
        where = "line %d (%s: %s)" % (n, k, v)
        if k == "expect-exit" and rc != v:
            fails.append("%s: exit code was %s" % (where, rc or "none"))
        elif k == "expect-stdout" and fold(v) not in fout:
            fails.append("%s: not in stdout" % where)
        elif k == "expect-no-stdout" and fold(v) in fout:
            fails.append("%s: found in stdout" % where)
        elif k == "expect-stderr" and fold(v) not in ferr:
            fails.append("%s: not in stderr" % where)
        elif k == "expect-no-stderr" and fold(v) in ferr:
            fails.append("%s: found in stderr" % where)
        elif k in ("expect-stdout-line", "expect-stderr-line"):
            if not any(v in line for line in streams[k[7:13]].split("\n")):
                fails.append("%s: no %s line holds it whole" % (where, k[7:13]))
        elif k in ("expect-stdout-width", "expect-stderr-width"):
            s = k[7:13]
            for line in streams[s].split("\n"):
                line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)
                lead = re.sub(r"^\s*([0-9]+\. )?", "", line)
                if len(line) <= int(v) or len(line.split()) == 1 or \
                        any(lead.startswith(w) for w in whole[s]):
                    continue
                fails.append("%s: a %s line is %d columns: %s" % (where, s, len(line), line))
                break
        elif k == "expect-event" and not has_event(v):
            fails.append("%s: no such event" % where)
        elif k == "expect-no-event" and has_event(v):
            fails.append("%s: event happened" % where)
        elif k == "expect-order":
            t = -1.0
            for pat in [x.strip() for x in v.split("<")]:
                nt = first(events, pat, t)
                if nt is None:
                    fails.append("%s: no '%s' after the previous one" % (where, pat))
                    break
                t = nt
        elif k == "expect-within":
            m = re.match(r"^([0-9.]+) (.+) -> (.+)$", v)
            a = first(events, m.group(2)) if m else None
            b = first(events, m.group(3), a) if a is not None else None
            if a is None or b is None or b - a > float(m.group(1)):
                fails.append("%s: took %s" % (where, "%.2fs" % (b - a) if b else "forever"))
        elif k == "expect-image":
            board, _, key = [x.strip() for x in v.partition("=")]
            img = os.path.join(host.images, board + ".bin")
            fw = os.path.join(host.cache, "kflash", "build", key, "klipper.bin")
            if key.startswith("last-good "):
                top = os.path.join(host.config_dir, "last-good", key.split()[1])
                try:
                    with open(os.path.join(top, "kept.json")) as f:
                        fw = os.path.join(top, json.load(f)["image"])
                except (OSError, ValueError, KeyError) as e:
                    fw = "%s (kept.json: %s)" % (top, e)
            if not os.path.exists(img) or not os.path.exists(fw):
                fails.append("%s: %s or %s missing" % (where, img, fw))
            else:
                a, b = open(img, "rb").read(), open(fw, "rb").read()
                # flash is written in whole blocks: the last one is padded
                # with erased bytes (0xff), as on a real board
                if a[:len(b)] != b or a[len(b):] != b"\xff" * (len(a) - len(b)) \
                        or len(a) - len(b) >= 512:
                    fails.append("%s: image (%d bytes) differs from the firmware "
                                 "(%d bytes)" % (where, len(a), len(b)))
        elif k == "expect-service":
            unit, _, state = v.partition(" ")
            if host.service(unit) != state:
                fails.append("%s: it is %s" % (where, host.service(unit)))
        elif k == "expect-no-leftovers":
            left = read(os.path.join(st, "leftovers")).strip()
            if left:
                fails.append("%s: left running: %s" % (where, left))
        elif k == "expect-downtime":
            d = downtime(events)
            stops = sum(1 for _, a, e in events
                        if a == "systemctl" and e.startswith("stop klipper"))
            if d is None:
                fails.append("%s: Klipper was not stopped and started" % where)
            elif stops != 1:
                fails.append("%s: Klipper was stopped %d times" % (where, stops))
            elif d[1] <= 0:
                fails.append("%s: no flash tool ran while Klipper was down" % where)
            elif timing and d[0] > d[1] + float(v):
                fails.append("%s: down %.2f s, flash tools %.2f s" % (where, d[0], d[1]))
        elif k == "expect-checkout-clean":
            r = subprocess.run(["git", "-C", host.klipper, "status", "--porcelain"],
                               capture_output=True, text=True)
            if r.stdout.strip():
                fails.append("%s: %s" % (where, r.stdout.strip()))
        elif k == "expect-fixes-run":
            fails += ["%s: %s" % (where, f) for f in check_fixes(items, host, out)]
    return fails, out, err


# "    fix: COMMAND   # note" after a failed check "FAIL what" / "✗ what"
FIX = re.compile(r"^\s+fix: (.*?)(?:   # .*)?$")
CHECK = re.compile(r"^(?:ok|FAIL|warn|✓|✗|!) (.*)$")


def printed_fixes(out):
    """[(check, command)] in the order printed."""
    fixes, check_ = [], None
    for line in out.splitlines():
        m = CHECK.match(line)
        if m:
            check_ = m.group(1)
        m = FIX.match(line)
        if m:
            fixes.append((check_, m.group(1)))
    return fixes


def programs(cmd):
    """The program of each simple command in cmd (after VAR=value words
    and sudo's own)."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    progs, first = [], True
    for w in lex:
        if w in ("&&", "||", "|", ";", "&"):
            first = True
        elif first and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w):
            continue
        elif first and w == "sudo":
            progs.append(w)
        elif first:
            progs.append(w)
            first = False
    return progs


def check_fixes(items, host, out):
    fails, ran = [], []
    env = host.env()
    fixes = printed_fixes(out)
    if not fixes:
        return ["no fix: line was printed"]
    for what, cmd in fixes:
        if subprocess.run(["/bin/sh", "-n", "-c", cmd]).returncode != 0:
            fails.append("fix for '%s' is no shell command: %s" % (what, cmd))
            continue
        for p in programs(cmd):
            if not shutil.which(os.path.expanduser(p) if p.startswith("~") else p,
                                path=env["PATH"]):
                fails.append("fix for '%s' runs %s, which the host lacks: %s"
                             % (what, p, cmd))
        if "sudo" in programs(cmd):
            continue    # changes the machine itself: parsed, not run
        r = subprocess.run(["/bin/sh", "-c", cmd], env=env, cwd=host.home,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fails.append("fix for '%s' failed (exit %d): %s: %s"
                         % (what, r.returncode, cmd, (r.stderr or r.stdout).strip()))
        else:
            ran.append(what)
    run_cmd = next(v for _, k, v in items if k == "run")
    again = os.path.join(host.state, "fixed.out")
    host.session(["/bin/sh", "-c", "%s > %s 2>&1 < /dev/null" % (run_cmd, shlex.quote(again))],
                 stdin=subprocess.DEVNULL)
    passed = {m.group(1) for m in map(CHECK.match, open(again).read().splitlines())
              if m and m.group(0).split(" ", 1)[0] in ("ok", "✓")}
    fails += ["after its fix ran, '%s' still fails (see %s)" % (w, again)
              for w in ran if w not in passed]
    return fails


def run(path, keep=False, verbose=False, timing=False):
    return run_items(parse(path), keep, verbose, timing)


def run_items(items, keep=False, verbose=False, timing=False, before_run=None):
    """Runs a parsed scenario (parse()'s list, or one a program made, as
    sim/soak does); returns (failures, host). before_run(host), when given,
    is called once the host is set up, just before the run."""
    boards = [v for _, k, v in items if k == "board"]
    timeout = int(next((v for _, k, v in items if k == "timeout"), "120"))
    host = simlib.Host(boards)
    try:
        host.setup()
        prepare(items, host)
        tag = os.path.basename(host.dir)
        drv = os.path.join(host.dir, "driver.sh")
        with open(drv, "w") as f:
            f.write(driver_script(items, host, tag))
        if before_run:
            before_run(host)
        code = host.session(["/bin/sh", drv], stdin=subprocess.DEVNULL, timeout=timeout)
        if code == 98:
            return ["a setup step failed (see %s/state/steps.log)" % host.dir], host
        fails, out, err = check(items, host, timing)
        if fails and verbose:
            sys.stderr.write("--- stdout ---\n%s--- stderr ---\n%s--- events ---\n%s"
                             % (out, err, open(host.events).read()))
        return fails, host
    finally:
        host.close(keep=True)
