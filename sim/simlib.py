"""simlib - the simulated printer host: state dir, fakes, umockdev boards.

Used by sim/printer (run one command inside a fresh simulated host) and
sim/scenario (run the declarative scenarios in fixtures/scenarios).
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = os.path.join(REPO, "fixtures", "boards")
CONFIGS = os.path.join(REPO, "fixtures", "configs")
FAKE = os.path.join(REPO, "sim", "fake")
PYTHON = "/usr/bin/python3"
# with $KFLASH_VALGRIND set, memcheck's reports on kflash: STATE/VALGRIND_LOG.PID
VALGRIND_LOG = "valgrind"


class SimError(Exception):
    """A problem with the simulator's input: bad board, bad scenario."""


def build_dir():
    b = os.environ.get("KFLASH_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def resolve_board(spec):
    """NAME or FILE, optionally :klipper/:katapult and ,key=value overrides
    -> (path, suffix for simhost, name)."""
    spec, comma, overrides = spec.partition(",")
    m = re.match(r"^(.*?)(:klipper|:katapult)?$", spec)
    base, mode = m.group(1), (m.group(2) or "") + comma + overrides
    path = base
    if not os.path.exists(path):
        path = os.path.join(BOARDS, base + ".board")
    if not os.path.isfile(path):
        known = sorted(f[:-6] for f in os.listdir(BOARDS) if f.endswith(".board"))
        raise SimError("unknown board '%s': no file %s and no fixture %s "
                       "(known: %s)" % (base, base, path, ", ".join(known)))
    name = os.path.basename(path)[:-6] if path.endswith(".board") else os.path.basename(path)
    with open(path) as f:
        for line in f:
            if line.startswith("name="):
                name = line.split("=", 1)[1].strip()
    return path, mode, name


def board_props(path):
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
    return props


def canbus_uuid(props):
    """A CAN board file's canbus_uuid: its own key, else the one Klipper and
    Katapult derive from the chip id (simfake.canbus_uuid_of_serial)."""
    if props.get("canbus_uuid"):
        return props["canbus_uuid"].lower()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake", "lib"))
    import simfake
    return simfake.canbus_uuid_of_serial(props["serial"])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_TEMPLATES = {}
_TEMPLATES_LOCK = threading.Lock()


def monotonic():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def foreground_job():
    """Whether stdin and stdout are a terminal whose foreground job is this
    process's."""
    try:
        return os.isatty(0) and os.isatty(1) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def take_terminal(pgrp=None):
    """Makes PGRP (default: a new process group led by this process) the
    foreground job of the terminal on stdin. SIGTTOU is blocked meanwhile,
    as a shell does: a background job may not otherwise change it."""
    if pgrp is None:
        os.setpgid(0, 0)
        pgrp = os.getpid()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
    try:
        os.tcsetpgrp(0, pgrp)
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Host:
    def __init__(self, boards, keep_dir=None):
        self.boards = [resolve_board(b) for b in boards]
        self.dir = keep_dir or tempfile.mkdtemp(prefix="kflash-sim.")
        self.home = os.path.join(self.dir, "home")
        self.bin = os.path.join(self.dir, "bin")
        self.state = os.path.join(self.dir, "state")
        self.images = os.path.join(self.dir, "images")
        self.events = os.path.join(self.dir, "events.log")
        self.config_dir = os.path.join(self.home, ".config", "kflash")
        self.cache = os.path.join(self.home, ".cache")
        self.klipper = os.path.join(self.home, "klipper")
        self.katapult = os.path.join(self.home, "katapult")
        self.moonraker_pid = None
        self.port = None

    # ---- setting up ------------------------------------------------------
    def setup(self):
        for d in (self.home, self.bin, self.state, self.images, self.config_dir,
                  self.cache, os.path.join(self.state, "service"),
                  os.path.join(self.state, "fault")):
            os.makedirs(d, exist_ok=True)
        open(self.events, "a").close()
        self._checkout(os.path.join(FAKE, "klipper"), self.klipper, "v0.13.0")
        self._checkout(os.path.join(FAKE, "katapult"), self.katapult, "v0.0.1")
        kflash = os.path.join(build_dir(), "kflash")
        if os.environ.get("KFLASH_VALGRIND"):
            # make valgrind: every kflash the host runs is under memcheck;
            # its reports go to STATE/valgrind.PID, which sim/scenario reads
            with open(os.path.join(self.bin, "kflash"), "w") as f:
                f.write("#!/bin/sh\nexec valgrind -q --leak-check=full "
                        ""
                        "--show-leak-kinds=definite,indirect "
                        "--errors-for-leak-kinds=definite,indirect --error-exitcode=97 "
                        "--log-file=%s %s \"$@\"\n" % (shlex.quote(os.path.join(
                            self.state, VALGRIND_LOG + ".%p")), shlex.quote(kflash)))
            os.chmod(os.path.join(self.bin, "kflash"), 0o755)
        else:
            os.symlink(kflash, os.path.join(self.bin, "kflash"))
        for tool in sorted(os.listdir(os.path.join(FAKE, "bin"))):
            os.symlink(os.path.join(FAKE, "bin", tool), os.path.join(self.bin, tool))
        self.set_service("klipper", "active")
        self.moonraker({})
        self.start_moonraker()
        self.write_registry()

    def _checkout(self, src, dst, tag):
        # made once per process and copied: git is slow to set up 44 times
        key = (src, tag)
        with _TEMPLATES_LOCK:   # scenarios run in threads
            if key not in _TEMPLATES:
                tdir = tempfile.mkdtemp(prefix="kflash-sim-template.")
                self._make_checkout(src, os.path.join(tdir, "checkout"), tag)
                _TEMPLATES[key] = os.path.join(tdir, "checkout")
        shutil.copytree(_TEMPLATES[key], dst, symlinks=True)

    def _make_checkout(self, src, dst, tag):
        shutil.copytree(src, dst, symlinks=True)
        env = dict(os.environ, GIT_AUTHOR_DATE="2026-01-01T00:00:00Z",
                   GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
                   GIT_AUTHOR_NAME="sim", GIT_AUTHOR_EMAIL="sim@localhost",
                   GIT_COMMITTER_NAME="sim", GIT_COMMITTER_EMAIL="sim@localhost")
        run = lambda *a: subprocess.run(["git", "-C", dst] + list(a), env=env,
                                        check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        run("init", "-q")
        run("add", "-A")
        run("commit", "-q", "--allow-empty", "-m", "base")
        run("tag", "-a", tag, "-m", tag)
        with open(os.path.join(dst, ".sim-version"), "w") as f:
            f.write("sim\n")
        run("add", "-A")
        run("commit", "-q", "-m", "after the tag")

    def write_registry(self, boards=None):
        doc = {"schema": 1, "settings": {
            "klipper_dir": "~/klipper", "katapult_dir": "~/katapult",
            "python": PYTHON, "service": "auto",
            "moonraker_url": "http://127.0.0.1:%d" % self.port,
            "default_method": "katapult", "fallback": True,
            "timeouts": {"build": 300, "flash": 60, "service": 30, "reconnect": 30}},
            "boards": boards or []}
        path = os.path.join(self.config_dir, "devices.json")
        if os.path.exists(path) and boards is None:
            with open(path) as f:
                cur = json.load(f)
            cur["settings"]["moonraker_url"] = doc["settings"]["moonraker_url"]
            doc = cur
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)

    def set_service(self, unit, state):
        with open(os.path.join(self.state, "service", unit), "w") as f:
            f.write(state + "\n")

    def service(self, unit):
        try:
            with open(os.path.join(self.state, "service", unit)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "missing"

    def fault(self, name, what):
        with open(os.path.join(self.state, "fault", name), "w") as f:
            f.write(what + "\n")

    def moonraker(self, values):
        """Sets what the fake Moonraker answers (merged into its state)."""
        path = os.path.join(self.state, "moonraker.json")
        cur = {"print_stats": {"state": "standby", "filename": ""},
               "virtual_sdcard": {"progress": 0.0}, "klippy_state": "ready",
               "mcus": {}}
        if os.path.exists(path):
            with open(path) as f:
                cur.update(json.load(f))
        cur.update(values)
        with open(path, "w") as f:
            json.dump(cur, f, indent=2)

    def start_moonraker(self):
        self.port = free_port()
        if not os.path.exists(os.path.join(FAKE, "moonraker", "start")):
            return
        env = self.env()
        p = subprocess.Popen([os.path.join(FAKE, "moonraker", "start"), str(self.port)],
                             env=env, stdout=subprocess.DEVNULL)
        p.wait(timeout=10)
        pidfile = os.path.join(self.state, "moonraker.pid")
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                self.moonraker_pid = int(f.read().strip() or 0)

    def stop_moonraker(self):
        stop = os.path.join(FAKE, "moonraker", "stop")
        if os.path.exists(stop):
            subprocess.run([stop], env=self.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        elif self.moonraker_pid:
            try:
                os.kill(self.moonraker_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def env(self):
        e = dict(os.environ)
        e.update({
            "HOME": self.home,
            "PATH": self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
            "KFLASH_CONFIG_DIR": self.config_dir,
            "XDG_CACHE_HOME": self.cache,
            "XDG_RUNTIME_DIR": self.state,
            # the locks' home on a printer is /run/lock; each simulated
            # host keeps its own
            "KFLASH_LOCK_DIR": self.state,
            "KFLASH_SIM_STATE": self.state,
            "KFLASH_SIM_EVENTS": self.events,
            "KFLASH_SIM_IMAGES": self.images,
            "KFLASH_SIM_LIB": os.path.join(FAKE, "lib"),
            "PYTHONPATH": os.path.join(FAKE, "lib"),
            "USER": "pi",
            "NO_COLOR": "1",
        })
        for k in ("KFLASH_SIM_TAG",):
            e.pop(k, None)
        return e

    # ---- running -----------------------------------------------------------
    def session(self, argv, stdin=None, timeout=120, terminal=False):
        """Runs argv inside the simulated host (umockdev testbed with the
        boards); returns its exit code.

        With terminal=True, stdin and stdout a terminal and this process
        its foreground job, the host runs as the terminal's foreground job
        in this session (simhost hands it on to argv), the way a shell runs
        a command: argv has a controlling terminal, and Ctrl+C reaches argv,
        whose end ends the host. Otherwise the host runs in a session of
        its own, away from any terminal (scenarios run several at once; a
        pager this process's output is piped to keeps the terminal), and a
        Ctrl+C that reaches this process is passed on to simhost, which
        ends argv's process group and everything left behind."""
        host = [os.path.join(build_dir(), "kflash-simhost"), "--events", self.events,
                "--image-dir", self.images]
        for path, mode, _ in self.boards:
            host += ["--board", path + mode]
        cmd = ["umockdev-wrapper"] + host + ["--"] + list(argv)
        fg = terminal and stdin is None and foreground_job()
        if fg:
            # in the child before exec, so simhost finds itself in the
            # foreground when it starts argv
            p = subprocess.Popen(cmd, env=self.env(), cwd=self.home,
                                 preexec_fn=take_terminal)
        else:
            p = subprocess.Popen(cmd, env=self.env(), cwd=self.home, stdin=stdin,
                                 start_new_session=True)
        try:
            try:
                return p.wait(timeout=timeout)
            except KeyboardInterrupt:
                os.kill(p.pid, signal.SIGINT)
                return p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            raise SimError("the simulated host did not finish within %d s" % timeout)
        finally:
            if fg:
                take_terminal(os.getpgrp())

    def read_events(self):
        out = []
        with open(self.events) as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    try:
                        out.append((float(parts[0]), parts[1], parts[2]))
                    except ValueError:
                        pass
        return out

    def close(self, keep=True):
        self.stop_moonraker()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
