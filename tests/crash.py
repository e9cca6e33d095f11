#!/usr/bin/python3
"""tests/crash.py - crash consistency: kflash killed with SIGKILL at every
point of its saves (make crash).

Each target is a kflash command that writes files: `settings` (the
registry), `add` (the registry and the board's config, adopted from
KIAUH's), `build` (the per-user lock, the config copy, the build stamp and
log, the session recording). A first run under strace lists the syscalls
that change or hold kflash's files (openat, write, pwrite64, fsync, linkat,
rename, unlink, mkdir, flock, fchmod, close ... of a path or a descriptor
under the config dir, the build dir, the sessions or the lock dir); each
of those is a kill point, and a run kills kflash at one of them with
strace's `-e inject=SYSCALL:signal=SIGKILL:when=N` (the Nth call of that
syscall: the kill lands as the call starts, before it does anything), never
by sleeping. The runs go round the points of every target until CRASH_RUNS
(500) kills. After each kill:

  - every file kflash keeps parses and is the old or the new version
    (devices.json and configs byte for byte; the stamp may also say
    `building`, as it does while a build runs; session files are JSON, and
    calls.jsonl whole JSON lines after its header);
  - the same command run again succeeds (the lock is free, the registry
    loads), and then no temp file (NAME.tmp.XXXXXX) is left anywhere: a
    kill between the link and the rename leaves one, which that next save
    must remove.

It runs inside one simulated printer host (sim/scenario with a generated
scenario whose `run:` is this file with --inside), so builds use the
simulator's fake Klipper. Prints the kills, broken files, stray temp files
and per-target counts; exits 1 on any failure, 77 when strace cannot
inject signals here.

    CRASH_RUNS=500 KFLASH_BUILD=build tests/crash.py [TARGET...]
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WRITE_CALLS = ["openat", "write", "pwrite64", "fsync", "fdatasync", "linkat", "rename",
               "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "rmdir", "flock",
               "fchmod", "ftruncate", "close"]
TEMP = re.compile(r"\.tmp\.[A-Za-z0-9]{6}$")
SEEN = set()        # stray temp files already counted
EBB = "usb-Klipper_stm32g0b1xx_1D0028000A50425539393020-if00"


# ---- outside: the simulated host -------------------------------------------

WORLD = """title: crash consistency (tests/crash.py)
board: octopus-f446
board: ebb36-g0b1:klipper
register: octopus octopus-f446
config: octopus = octopus-f446
home-config: klipper/.config = ebb36-g0b1
timeout: 7200
run: /usr/bin/python3 {me} --inside {runs} {report} {targets}
expect-exit: 0
"""


def strace_can_kill():
    try:
        r = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-e", "trace=write",
                            "-e", "inject=write:signal=SIGKILL:when=1", "/bin/echo"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode in (-9, 137)


def outside(argv):
    if not strace_can_kill():
        print("crash: skipped: strace cannot inject SIGKILL here (strace -e inject=...:signal=)")
        return 77
    runs = int(os.environ.get("CRASH_RUNS", "500"))
    targets = argv or ["settings", "add", "build"]
    tmp = tempfile.mkdtemp(prefix="kflash-crash.")
    try:
        report = os.path.join(tmp, "report.txt")
        scen = os.path.join(tmp, "crash.scenario")
        with open(scen, "w") as f:
            f.write(WORLD.format(me=os.path.abspath(__file__), runs=runs, report=report,
                                 targets=" ".join(targets)))
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "sim", "scenario"), "-v", scen],
                           cwd=ROOT, capture_output=True, text=True)
        took = time.monotonic() - t0
        if os.path.exists(report):
            with open(report) as f:
                sys.stdout.write(f.read())
        else:
            sys.stdout.write(r.stdout + r.stderr)
        print("crash: %.0f s" % took)
        if r.returncode != 0:
            sys.stdout.write(r.stdout[-3000:])
            print("crash: FAILED (make crash, or CRASH_RUNS=%d tests/crash.py %s)"
                  % (runs, " ".join(targets)))
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- inside: the runs --------------------------------------------------------

class World:
    def __init__(self):
        home = os.environ["HOME"]
        self.config = os.environ["KFLASH_CONFIG_DIR"]
        self.cache = os.path.join(os.environ.get("XDG_CACHE_HOME", home + "/.cache"), "kflash")
        self.sessions = os.path.join(home, ".local", "state", "kflash", "sessions")
        self.locks = os.environ["KFLASH_LOCK_DIR"]
        self.kept = os.path.join(os.environ["KFLASH_SIM_STATE"], "crash-baseline")
        self.env = dict(os.environ)

    def watched(self):
        return [self.config, self.cache, self.sessions, self.locks]

    def kflash(self, args, prefix=(), mark="", timeout=300):
        env = dict(self.env)
        env["KFLASH_CRASH_MARK"] = mark or "clean"
        if prefix and "ASAN_OPTIONS" in env:
            # LeakSanitizer cannot run under ptrace; the untraced runs keep it
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        return subprocess.run(list(prefix) + ["kflash"] + args, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    # the files a save must leave whole: config dir and build dirs
    def snapshot(self):
        files = {}
        for top in (self.config, self.cache):
            for d, _, names in os.walk(top):
                for n in names:
                    p = os.path.join(d, n)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    with open(p, "rb") as f:
                        files[p] = f.read()
        return files

    def save_baseline(self):
        shutil.rmtree(self.kept, ignore_errors=True)
        os.makedirs(self.kept)
        for i, top in enumerate((self.config, self.cache)):
            if os.path.isdir(top):
                shutil.copytree(top, os.path.join(self.kept, str(i)), symlinks=True)

    def restore(self):
        for i, top in enumerate((self.config, self.cache)):
            shutil.rmtree(top, ignore_errors=True)
            src = os.path.join(self.kept, str(i))
            if os.path.isdir(src):
                shutil.copytree(src, top, symlinks=True)

    def temps(self):
        found = []
        for top in self.watched():
            for d, _, names in os.walk(top):
                found += [os.path.join(d, n) for n in names if TEMP.search(n)]
        return found


def marked_procs(mark):
    """Processes whose environment carries this run's mark (kflash's
    children inherit it)."""
    want = ("KFLASH_CRASH_MARK=" + mark).encode()
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                if want in f.read().split(b"\0"):
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def wait_gone(mark, deadline_s=15.0):
    """kflash's children end on their own (SIGTERM from PDEATHSIG); wait for
    them, so the next run starts on quiet files. True when none was left."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not marked_procs(mark):
            return True
        time.sleep(0.05)
    for p in marked_procs(mark):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return False


def check_session_dir(d, bad):
    sj = os.path.join(d, "session.json")
    cj = os.path.join(d, "calls.jsonl")
    if os.path.exists(sj):
        try:
            with open(sj) as f:
                json.load(f)
        except ValueError as e:
            bad.append("%s: not JSON: %s" % (sj, e))
    if os.path.exists(cj):
        with open(cj, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            bad.append("%s: its last line is cut short" % cj)
        for n, line in enumerate(data.split(b"\n")[:-1], 1):
            try:
                v = json.loads(line)
            except ValueError as e:
                bad.append("%s:%d: not JSON: %s" % (cj, n, e))
                break
            if n == 1 and "kflash-session" not in v:
                bad.append("%s:1: no session header" % cj)


def check_files(w, old, new, bad):
    now = w.snapshot()
    for p in sorted(set(old) | set(new) | set(now)):
        if "/build/" in p and not p.endswith(("/kflash.stamp", "/.config")):
            continue        # the fake Klipper's output, and build.log (a log, appended)
        if TEMP.search(p):
            continue        # counted apart
        got = now.get(p)
        ok = got == old.get(p) or got == new.get(p)
        if not ok and p.endswith("/kflash.stamp"):
            # what it says while a build runs; none after --rebuild's make
            # clean: either way the next build builds
            ok = got is None or got.startswith(b"building")
        if not ok:
            bad.append("%s: neither the old nor the new version (%s)"
                       % (p, "missing" if got is None else "%d bytes" % len(got)))
        if ok and got is not None and p.endswith("devices.json"):
            try:
                json.loads(got)
            except ValueError as e:
                bad.append("%s: not JSON: %s" % (p, e))
    if os.path.isdir(w.sessions):
        for s in os.listdir(w.sessions):
            check_session_dir(os.path.join(w.sessions, s), bad)
    for n in os.listdir(w.locks) if os.path.isdir(w.locks) else []:
        if n.startswith("kflash-") and n.endswith(".lock"):
            with open(os.path.join(w.locks, n), "rb") as f:
                text = f.read()
            if text and not re.fullmatch(rb"\s*\d+\n", text):
                bad.append("%s: not a pid line: %r" % (n, text[:40]))


class Target:
    def __init__(self, name, args, again_ok=None):
        self.name = name
        self.args = args
        # what a second run may answer besides exit 0 (add: the board is
        # registered already, when the kill came after its save)
        self.again_ok = again_ok or (lambda r: False)
        self.points = []
        self.kills = self.broken = self.stray = self.left = self.missed = 0


def trace_points(w, t):
    """The kill points of one clean run: (syscall, Nth of that syscall) for
    each call on kflash's own files."""
    tr = os.path.join(w.kept, "trace.txt")
    r = w.kflash(t.args, prefix=["strace", "-qq", "-o", tr, "-e",
                                 "trace=" + ",".join(WRITE_CALLS)])
    if r.returncode != 0:
        raise SystemExit("crash: %s failed on its own (exit %d): %s"
                         % (" ".join(t.args), r.returncode, r.stderr[-2000:]))
    tops = tuple(w.watched())
    fds, counts, points = {}, {}, []
    call = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+)")
    with open(tr) as f:
        for line in f:
            m = call.match(line)
            if not m:
                continue
            name, args, ret = m.group(1), m.group(2), int(m.group(3))
            counts[name] = counts.get(name, 0) + 1
            paths = re.findall(r'"([^"]*)"', args)
            first = args.split(",")[0].strip()
            ours = any(p.startswith(tops) for p in paths)
            if not ours and first.isdigit() and name not in ("openat",):
                ours = int(first) in fds
            if name == "openat" and ours and ret >= 0:
                fds[ret] = True
            if name == "close" and first.isdigit():
                fds.pop(int(first), None)
            if ours:
                points.append((name, counts[name]))
    return points


def one_kill(w, t, point, old, new, log):
    name, nth = point
    mark = "%s-%s-%d-%d" % (t.name, name, nth, t.kills + t.missed)
    w.restore()
    r = w.kflash(t.args, mark=mark, prefix=[
        "strace", "-qq", "-o", "/dev/null", "-e", "trace=" + name,
        "-e", "inject=%s:signal=SIGKILL:when=%d" % (name, nth)])
    wait_gone(mark)
    if r.returncode not in (-9, 137):
        t.missed += 1       # the run took another path and never got there
        return
    t.kills += 1
    bad = []
    check_files(w, old, new, bad)
    left = w.temps()
    t.left += len(left) > 0
    again = w.kflash(t.args, mark=mark + "-again")
    wait_gone(mark + "-again")
    if again.returncode != 0 and not t.again_ok(again):
        bad.append("run again after the kill: exit %d: %s"
                   % (again.returncode, again.stderr.strip()[-600:]))
    stray = [s for s in w.temps() if s not in SEEN]
    SEEN.update(stray)
    t.broken += bool(bad)
    t.stray += len(stray)
    for b in bad:
        log.append("BROKEN %s, kill at %s #%d: %s" % (t.name, name, nth, b))
    for s in stray:
        log.append("STRAY %s, kill at %s #%d: %s" % (t.name, name, nth, s))


def inside(argv):
    runs, report, names = int(argv[0]), argv[1], argv[2:]
    w = World()
    w.env["NO_COLOR"] = "1"
    # the first build, so a target's baseline has one
    if "build" in names:
        r = w.kflash(["build", "octopus"])
        if r.returncode != 0:
            raise SystemExit("crash: the first build failed: " + r.stderr[-2000:])
    catalogue = {
        "settings": Target("settings", ["settings", "timeout.build", "321"]),
        "add": Target("add", ["add", "--name", "EBB", "--device", EBB, "--config",
                              os.path.join(os.environ["HOME"], "klipper", ".config")],
                      lambda r: r.returncode == 2 and "already" in r.stderr),
        "build": Target("build", ["build", "octopus", "--rebuild"]),
    }
    targets = [catalogue[n] for n in names]
    base = {}
    w.save_baseline()
    for t in targets:
        w.restore()
        old = w.snapshot()
        t.points = trace_points(w, t)
        w.restore()
        r = w.kflash(t.args)
        new = w.snapshot()
        base[t.name] = (old, new)
        w.restore()
    log = []
    order = [(t, p) for t in targets for p in t.points]
    # fewer runs than points: spread evenly over every target's points;
    # more: every point, then round again
    picks = ([order[k * len(order) // runs] for k in range(runs)]
             if runs < len(order) else [])
    i = 0
    while sum(t.kills for t in targets) < runs and order and i < 4 * runs:
        t, p = picks[i] if i < len(picks) else order[(i - len(picks)) % len(order)]
        one_kill(w, t, p, base[t.name][0], base[t.name][1], log)
        i += 1
    kills = sum(t.kills for t in targets)
    broken = sum(t.broken for t in targets)
    stray = sum(t.stray for t in targets)
    out = ["crash: %d kills at %d kill points (%s), %d broken files, %d stray temp files"
           % (kills, len(order), ", ".join("%s %d" % (t.name, len(t.points)) for t in targets),
              broken, stray)]
    for t in targets:
        out.append("  %-9s %4d kills  %3d points  %d broken  %d stray  %d left a temp "
                   "file the next save removed  %d runs missed their point"
                   % (t.name, t.kills, len(t.points), t.broken, t.stray, t.left,
                      t.missed))
    out += log[:50]
    with open(report, "w") as f:
        f.write("\n".join(out) + "\n")
    return 1 if broken or stray or kills < runs else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        sys.exit(inside(sys.argv[2:]))
    sys.exit(outside(sys.argv[1:]))
