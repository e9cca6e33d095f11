"""interactive - drive kflash through a real pseudo-terminal inside the
simulated host, the way a person at an SSH prompt would: wait for a prompt,
type an answer. Run by sim/test-interactive.sh.

The printer_* tests run outside any simulated host: they start sim/printer
itself on a pseudo-terminal, as a person does from their shell."""
import fcntl
import os
import pty
import pwd
import re
import select
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
LOG = os.path.join(os.environ.get("KFLASH_SIM_STATE") or tempfile.mkdtemp(prefix="kflash-interactive."),
                   "interactive.log")


class Term:
    def __init__(self, argv, columns=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            # the window's size, as an SSH client sets it
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
            os.environ["TERM"] = "xterm"
            os.environ["LANG"] = "C.UTF-8"
            os.execvp(argv[0], argv)
        self.seen = ""
        self.all = ""                 # everything it showed
        self.log = open(LOG, "a")

    def expect(self, pattern, timeout=30):
        deadline = time.time() + timeout
        while True:
            m = re.search(pattern, self.seen)
            if m:
                self.seen = self.seen[m.end():]
                return
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no %r on the terminal within %ds; last "
                                     "output:\n%s" % (pattern, timeout, self.seen[-2000:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096).decode("utf-8", "replace")
                except OSError:
                    data = ""
                if not data:
                    raise AssertionError("kflash closed the terminal while waiting "
                                         "for %r:\n%s" % (pattern, self.seen[-2000:]))
                self.log.write(data)
                self.log.flush()
                self.seen += data
                self.all += data

    def send(self, text):
        self.log.write("<<%s>>" % text.replace("\n", "\\n"))
        os.write(self.fd, text.encode())

    def wait(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                try:  # drain what is left
                    while select.select([self.fd], [], [], 0.1)[0]:
                        d = os.read(self.fd, 4096).decode("utf-8", "replace")
                        if not d:
                            break
                        self.seen += d
                        self.all += d
                        self.log.write(d)
                except OSError:
                    pass
                return os.waitstatus_to_exitcode(st)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("kflash did not exit")


def test_wizard_add():
    """`kflash add` on a terminal: pick the device, name it, keep the method."""
    t = Term(["kflash", "add"])
    t.expect(r"Unregistered boards:")
    t.expect(r"2\) usb-Klipper_rp2040_E6626005A7651729-if00")
    t.expect(r"Board number: ")
    t.send("7\n")                     # out of range: asked again
    t.expect(r"please answer 1 to 2")
    t.send("2\n")
    t.expect(r"MCU: rp2040")
    t.expect(r"Name for this board.*: ")
    t.send("../bad\n")                # refused, asked again
    t.expect(r"not allowed|cannot contain")
    t.send("SB2040 toolhead\n")
    t.expect(r"Flash method.*\[katapult\]: ")
    t.send("\n")
    t.expect(r"Registered usb-Klipper_rp2040_E6626005A7651729-if00 as 'sb2040-toolhead'")
    # straight on to menuconfig, which opens with the board's MCU chosen
    # (not Klipper's AVR default); this "user" saves what it shows
    t.expect(r"\[Config\] menuconfig for sb2040-toolhead")
    t.expect(r"Configuration saved to '[^']*/sb2040-toolhead/.config'")
    assert t.wait() == 0
    cfg = open(os.path.join(os.environ["KFLASH_CONFIG_DIR"], "configs",
                            "sb2040-toolhead", ".config")).read()
    assert 'CONFIG_MCU="rp2040"' in cfg, cfg


def add_first_as_octopus(t):
    """The add wizard: the first device, named Octopus, the default method."""
    t.expect(r"Board number.*: ")
    t.send("1\n")
    t.expect(r"Name for this board.*: ")
    t.send("Octopus\n")
    t.expect(r"Flash method.*: ")
    t.send("\n")
    t.expect(r"Registered .* as 'octopus'")


def test_wizard_adopts_config():
    """`kflash add` on a terminal offers the configs for the board's MCU that
    KIAUH and Klipper left (not one for another chip); the one picked is
    the board's config, no menuconfig."""
    t = Term(["kflash", "add"])
    add_first_as_octopus(t)
    t.expect(r"Configs for stm32f446xx on this host:")
    t.expect(r"1\) \S*/klipper-kconfigs/octopus.config")
    t.expect(r"Start from config number.*: ")
    t.send("2\n")                     # out of range: asked again
    t.expect(r"please answer 1 to 1")
    t.send("1\n")
    t.expect(r"Adopted \S*/klipper-kconfigs/octopus.config as octopus's firmware config")
    assert t.wait() == 0
    assert "h723" not in t.seen, t.seen
    assert "menuconfig for" not in t.seen, t.seen
    cfg = open(os.path.join(os.environ["KFLASH_CONFIG_DIR"], "configs", "octopus",
                            ".config")).read()
    assert 'CONFIG_MCU="stm32f446xx"' in cfg, cfg


def test_menu_add_flash_quit():
    """`kflash` alone: the menu. Add a board, flash it, quit."""
    t = Term(["kflash"])
    t.expect(r"kflash")
    t.expect(r"1\) flash a board")
    t.expect(r"Choose: ")
    t.send("x\n")                     # not a choice: asked again
    t.expect(r"'x' is not one of the choices")
    t.expect(r"Choose: ")
    t.send("3\n")                     # add
    add_first_as_octopus(t)
    t.expect(r"\[Config\] menuconfig for octopus")
    t.expect(r"octopus\s+stm32h723xx\s+klipper")   # the status panel
    t.expect(r"Choose: ")
    t.send("1\n")                     # flash a board
    t.expect(r"Board \[1\]: ")
    t.send("\n")
    t.expect(r"\[Config\] menuconfig for octopus")
    t.expect(r"Flashed octopus via katapult in", timeout=60)
    t.expect(r"Choose: ")
    t.send("q\n")
    t.expect(r"bye")
    assert t.wait() == 0


def test_menu_settings_and_config_flag():
    """The menu's status line flags a board whose config is for another MCU;
    7) changes a setting, checked and saved as `kflash settings KEY VALUE`."""
    t = Term(["kflash"])
    t.expect(r"octopus\s+stm32f446xx\s+\S+\s+.*\[config is for stm32h723xx: menuconfig\]")
    t.expect(r"Choose: ")
    t.send("7\n")
    t.expect(r"fallback\s+true")
    t.expect(r"Setting to change \(Enter: none\)")
    t.send("fallback\n")
    t.expect(r"New value: ")
    t.send("maybe\n")                  # refused as on the command line
    t.expect(r"fallback")
    t.expect(r"Choose: ")
    t.send("7\n")
    t.expect(r"Setting to change")
    t.send("fallback\n")
    t.expect(r"New value: ")
    t.send("false\n")
    t.expect(r"fallback = false")
    t.expect(r"Choose: ")
    t.send("q\n")
    t.expect(r"bye")
    assert t.wait() == 0
    s = Term(["kflash", "settings", "fallback"])
    s.expect(r"false")
    assert s.wait() == 0


def test_menu_ctrl_c_quits():
    t = Term(["kflash"])
    t.expect(r"Choose: ")
    os.kill(t.pid, signal.SIGINT)
    t.expect(r"bye")
    assert t.wait() == 0


# sudoers names the user by its login name, whatever $USER says (the
# simulated host's is pi)
SUDOERS = (pwd.getpwuid(os.getuid()).pw_name + " ALL=(root) NOPASSWD: "
           "/usr/bin/systemctl stop klipper, /usr/bin/systemctl start klipper")


def test_error_wraps_to_the_terminal():
    """On a terminal 60 columns wide an error's prose wraps at 60 (TIOCGWINSZ)
    and its commands stay whole; on one 132 wide the same error takes the
    width it has."""
    for columns in (60, 132):
        t = Term(["kflash", "--no-color", "flash", "octopus", "-s"], columns=columns)
        t.expect(r"to fix:", timeout=60)
        assert t.wait() == 3
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", t.all)
        lines = text.split("\n")
        assert any(SUDOERS in line for line in lines), text
        assert any("| sudo EDITOR='tee -a' visudo -f /etc/sudoers.d/kflash" in line
                   for line in lines), text
        report = [line for line in lines if line.startswith(("error:", "  ", "    "))]
        for line in report:
            assert len(line) <= columns or SUDOERS in line, \
                "%d columns on a %d-column terminal: %r" % (len(line), columns, line)
        if columns == 132:
            # what failed fits one line of a wide terminal
            assert any(line.startswith("error: sudo would ask") and
                       line.endswith("with Klipper stopped") for line in lines), text
        else:
            assert not any(line.endswith("with Klipper stopped") and
                           line.startswith("error:") for line in lines), text


def test_ssh_drop_during_flash():
    """The SSH session dies while flashing: the terminal hangs up (SIGHUP to
    kflash, then every write to it fails with EIO). Klipper must still be
    started again."""
    state = os.environ["KFLASH_SIM_STATE"]
    t = Term(["kflash", "flash", "octopus", "-s"])
    t.expect(r"\[Flash\] octopus: flashing", timeout=60)
    os.close(t.fd)                    # the terminal is gone
    pid, st = os.waitpid(t.pid, 0)
    code = os.waitstatus_to_exitcode(st)
    assert code == 129, "kflash exited %d, not 129" % code
    with open(os.path.join(state, "service", "klipper")) as f:
        svc = f.read().strip()
    assert svc == "active", "klipper is %s after the hangup" % svc


def test_build_live_progress():
    """On a terminal a build shows one live line, rewritten in place: files
    compiled, seconds, the file at hand."""
    t = Term(["kflash", "build", "octopus"])
    t.expect(r"\r\x1b\[K\[Build\] octopus: \d+ files?, 0 s \(\w+\.o\)", timeout=60)
    t.expect(r"\r\x1b\[K\[Build\] octopus: \d+ files?, [1-9]\d* s", timeout=60)
    t.expect(r"octopus: built in", timeout=60)
    assert t.wait() == 0


def test_flash_live_progress():
    """On a terminal flashing shows a live line: what the flash tool says it
    does (writing, pages written, verifying) and the seconds."""
    t = Term(["kflash", "flash", "octopus", "-s"])
    t.expect(r"\r\x1b\[K\[Flash\] octopus: [a-z0-9 ]+, [1-9]\d* s", timeout=60)
    t.expect(r"\r\x1b\[K\[Flash\] octopus: \d+ pages written, \d+ s", timeout=60)
    t.expect(r"Flashed octopus via katapult", timeout=60)
    assert t.wait() == 0


def host_processes(mark):
    """Processes (other than this one) whose environment carries MARK: every
    process of a simulated host started with it."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if ("KFLASH_TEST_MARK=%s" % mark).encode() in env.split(b"\0"):
            found.append((int(d), cmd))
    return found


def printer(argv, mark):
    os.environ["KFLASH_TEST_MARK"] = mark
    return Term([PYTHON, os.path.join(REPO, "sim", "printer")] + argv)


def test_printer_gives_a_terminal():
    """sim/printer run from a terminal: the command has it as its
    controlling terminal and is its foreground job, as on a printer."""
    mark = "tty-%d-%d" % (os.getpid(), time.time_ns())
    t = printer(["--board", "beacon", "--", PYTHON, "-c",
                 "import os; fd = os.open('/dev/tty', os.O_RDWR); "
                 "print('CTTY', os.isatty(0), os.tcgetpgrp(fd) == os.getpgrp())"], mark)
    try:
        t.expect(r"CTTY True True", timeout=60)
        assert t.wait(30) == 0
    except AssertionError:
        for pid, _ in host_processes(mark):
            os.kill(pid, signal.SIGKILL)
        raise


def test_printer_ctrl_c_ends_the_host():
    """Ctrl+C in sim/printer while kflash builds: kflash, make, simhost and
    the fake Moonraker all end; sim/printer exits 130."""
    printer_ctrl_c(piped=False)


def test_printer_piped_ctrl_c_ends_the_host():
    """The same with sim/printer's output piped to another program, which
    keeps the terminal: Ctrl+C still ends the whole host."""
    printer_ctrl_c(piped=True)


def printer_ctrl_c(piped):
    mark = "ctrlc-%d-%d" % (os.getpid(), time.time_ns())
    script = os.path.join(os.path.dirname(LOG), "ctrl-c.sh")
    with open(script, "w") as f:
        f.write("""set -e
kflash add --name Octopus --device usb-Klipper_stm32f446xx_3A0039000851313433343333-if00 --no-menuconfig
mkdir -p "$KFLASH_CONFIG_DIR/configs/octopus"
cp "%s/fixtures/configs/octopus-f446.config" "$KFLASH_CONFIG_DIR/configs/octopus/.config"
echo "slow 120" >"$KFLASH_SIM_STATE/fault/make-build"
exec kflash build octopus
""" % REPO)
    if piped:
        os.environ["KFLASH_TEST_MARK"] = mark
        t = Term(["sh", "-c", '"$0" "$1" --board octopus-f446 -- sh "$2" 2>&1 | cat',
                  PYTHON, os.path.join(REPO, "sim", "printer"), script])
    else:
        t = printer(["--board", "octopus-f446", "--", "sh", script], mark)
    try:
        t.expect(r"\[Build\]", timeout=60)
        # make and its compile step are running
        deadline = time.time() + 30
        while not any(" make " in " %s " % c or c.startswith("make ") for _, c in host_processes(mark)):
            assert time.time() < deadline, "make never ran: %s" % host_processes(mark)
            time.sleep(0.1)
        time.sleep(0.5)
        t.send("\x03")
        code = t.wait(60)
        left = []
        for _ in range(20):             # a moment for the last ones to go
            left = host_processes(mark)
            if not left:
                break
            time.sleep(0.1)
        assert not left, "left running after Ctrl+C:\n  " + "\n  ".join(
            "%d %s" % p for p in left)
        assert piped or code == 130, "sim/printer exited %d, not 130" % code
    finally:
        for pid, _ in host_processes(mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main(which):
    tests = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}
    scratch = None
    if which.startswith("printer_"):
        # the hosts sim/printer makes (and keeps) go here
        scratch = os.path.dirname(LOG)
        os.environ["TMPDIR"] = scratch
    try:
        tests[which]()
    except AssertionError as e:
        print("FAIL %s: %s" % (which, e))
        if scratch:
            print("    kept %s" % scratch)
        return 1
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    print("ok   %s" % which)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
