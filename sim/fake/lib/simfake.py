# simfake.py - what every fake tool of the kflash simulator shares: the
# event log, fault files, state files, the Katapult serial protocol (client
# side) and the sysfs look-ups of a USB tty.
#
# The contract (state dir, faults, event lines) is in sim/fake/README.md.
# Nothing here is taken from Klipper or Katapult: the wire format is the one
# reference.md describes, written afresh.
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time

# subprocess is imported where it is needed, and the fault registry
# (faults.py, beside this file) when a fault is first read: every fake
# starts with this module, dozens of times a run
_HERE = os.path.dirname(os.path.realpath(__file__))


def _faults():
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    import faults
    return faults

# ---------------------------------------------------------------- events


def stamp(ns=None):
    """CLOCK_MONOTONIC as '<s>.<ms>', truncated like the C emulator's."""
    if ns is None:
        ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return "%d.%03d" % (ns // 1000000000, (ns // 1000000) % 1000)


def event(actor, *words):
    """Appends one line to $KFLASH_SIM_EVENTS in a single O_APPEND write, so
    lines of concurrent fakes never interleave."""
    event_at(None, actor, *words)


def event_at(ns, actor, *words):
    """event() stamped with an earlier CLOCK_MONOTONIC time: a tool's
    "start" is when it was executed, not when its imports were done."""
    path = os.environ.get("KFLASH_SIM_EVENTS")
    if not path:
        return
    text = " ".join(str(w) for w in words)
    line = ("%s %s %s" % (stamp(ns), actor, text)).replace("\n", " ") + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, line.encode("utf-8", "replace"))
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- state


def state_dir():
    return os.environ.get("KFLASH_SIM_STATE") or ""


def state_path(*parts):
    d = state_dir()
    if not d:
        return None
    return os.path.join(d, *parts)


def read_state(*parts, default=None):
    p = state_path(*parts)
    if not p:
        return default
    try:
        with open(p, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def write_state(text, *parts):
    """Atomic: temp file in the same dir, then rename."""
    p = state_path(*parts)
    if not p:
        return False
    os.makedirs(os.path.dirname(p), exist_ok=True)
    tmp = "%s.tmp.%d" % (p, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(tmp, p)
    return True


# ---------------------------------------------------------------- faults


class Fault:
    """$KFLASH_SIM_STATE/fault/<name>: first word fail|hang|slow|<tool word>,
    then arguments; a last word 'once' removes the file when it fires."""

    def __init__(self, name, words, path):
        self.name = name
        self.path = path
        self.once = bool(words) and words[-1] == "once"
        if self.once:
            words = words[:-1]
        self.word = words[0] if words else ""
        self.args = words[1:]

    def fired(self, actor):
        event(actor, "fault", self.name, self.word, *self.args)
        if self.once:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def seconds(self, default=0.0):
        try:
            return float(self.args[0])
        except (IndexError, ValueError):
            return default


def fault(name):
    """The Fault in $KFLASH_SIM_STATE/fault/NAME, or None. NAME must be in
    the registry (faults.py): a fake reading a fault nobody can name is a
    bug, and a word the registry does not know is reported on stderr."""
    faults = _faults()
    if faults.lookup(faults.STATE, name) is None:
        raise KeyError("simfake: fault '%s' is not in the registry (sim/fake/lib/faults.py)"
                       % name)
    p = state_path("fault", name)
    if not p:
        return None
    try:
        with open(p, "r") as f:
            words = f.read().split()
    except OSError:
        return None
    if not words:
        return None
    why = faults.problem_state(name, words)
    if why:
        sys.stderr.write("simfake: %s: %s\n" % (p, why))
    return Fault(name, words, p)


def child_sleep(seconds):
    """Sleeps in a real child process (sleep(1)) so that a test can tell
    whether the whole process group was killed: an orphaned sleep with
    KFLASH_SIM_STATE in its environment is a leak."""
    import subprocess
    arg = "2147483647" if seconds is None else "%.3f" % max(0.0, seconds)
    try:
        subprocess.call(["sleep", arg])
    except KeyboardInterrupt:
        raise


def hang():
    child_sleep(None)
    # the child was killed alone: keep hanging, as a stuck tool would
    while True:
        time.sleep(3600)


def apply_common(actor, name, fail_cb=None):
    """hang/slow handled here; returns the Fault for the caller to act on
    'fail' and its own words (None when no fault file)."""
    f = fault(name)
    if f is None:
        return None
    f.fired(actor)
    if f.word == "hang":
        hang()
    elif f.word == "slow":
        child_sleep(f.seconds(1.0))
    return f


# ---------------------------------------------------------------- USB/sysfs


def usb_dir_of(dev):
    """The sysfs dir of the USB device behind a tty (the one holding
    idVendor, busnum and devnum), or None for a tty that is not USB (a bare
    pseudo-terminal). Tries <tty>/device/.. first, then the parents of the
    tty's own dir (umockdev gives ttys no 'device' link)."""
    try:
        name = os.path.basename(os.path.realpath(dev))
    except OSError:
        return None
    cls = os.path.join("/sys/class/tty", name)
    if not os.path.exists(cls):
        return None
    cands = []
    devlink = os.path.join(cls, "device")
    if os.path.exists(devlink):
        cands.append(os.path.dirname(os.path.realpath(devlink)))
    p = os.path.realpath(cls)
    while p not in ("/", "") and p.startswith("/sys"):
        cands.append(p)
        p = os.path.dirname(p)
    for c in cands:
        if os.path.isfile(os.path.join(c, "busnum")) and os.path.isfile(os.path.join(c, "devnum")):
            return c
    return None


def _attr(d, name):
    try:
        with open(os.path.join(d, name), "r") as f:
            return f.read().strip()
    except OSError:
        return None


def usb_info(usbdir):
    """usb_id 'vvvv:pppp' ('' while the device is gone), manufacturer and
    product lower-cased ('unknown' when absent), serial."""
    info = {"usb_id": "", "manufacturer": "unknown", "product": "unknown", "serial": ""}
    if not usbdir:
        return info
    vid, pid = _attr(usbdir, "idVendor"), _attr(usbdir, "idProduct")
    if vid and pid:
        info["usb_id"] = "%s:%s" % (vid.lower(), pid.lower())
    for k in ("manufacturer", "product"):
        v = _attr(usbdir, k)
        if v is not None:
            info[k] = v.lower()
    info["serial"] = (_attr(usbdir, "serial") or "").lower()
    return info


def _mix64(h):
    h ^= h >> 23
    h = (h * 0x2127599bf4325c37) & 0xFFFFFFFFFFFFFFFF
    return h ^ (h >> 47)


def canbus_uuid_of_serial(serial):
    """The canbus_uuid Klipper and Katapult derive from a chip id (its hex
    USB serial): fasthash64 of the bytes, its low 6 bytes first, as on the
    wire (sim/can_node.c)."""
    raw = bytes.fromhex(serial)
    m, mask = 0x880355f21e6d1965, 0xFFFFFFFFFFFFFFFF
    h = 0xA16231A7 ^ ((len(raw) * m) & mask)
    for i in range(0, len(raw), 8):
        v = int.from_bytes(raw[i:i + 8], "little")
        h = ((h ^ _mix64(v)) * m) & mask
    h = _mix64(h)
    return bytes((h >> (8 * i)) & 0xFF for i in range(6)).hex()


def tty_of_usb(usbdir):
    """/dev/ttyXXX of the USB device's interface, if exactly one exists."""
    base = os.path.basename(usbdir)
    found = []
    try:
        for ent in os.listdir(usbdir):
            if not ent.startswith(base + ":"):
                continue
            tdir = os.path.join(usbdir, ent, "tty")
            try:
                found += [t for t in os.listdir(tdir) if t.startswith("tty")]
            except OSError:
                pass
    except OSError:
        return None
    if len(found) != 1:
        return None
    p = "/dev/" + found[0]
    return p if os.path.exists(p) else None


def request_bootloader_1200(dev):
    """What a host does to ask a Klipper USB board for its bootloader: open,
    raise DTR, 1200 baud, drop DTR; all in one block that swallows errors,
    so on a bare pty (where the DTR ioctl fails) the baud never changes.
    Returns True when the baud was set."""
    fd = None
    done = False
    try:
        fd = os.open(dev, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        dtr = struct.pack("I", termios.TIOCM_DTR)
        fcntl.ioctl(fd, termios.TIOCMBIS, dtr)
        t = termios.tcgetattr(fd)
        t[4] = t[5] = termios.B1200
        termios.tcsetattr(fd, termios.TCSANOW, t)
        done = True
        fcntl.ioctl(fd, termios.TIOCMBIC, dtr)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
    return done


def holders_of(dev):
    """Pids (other than ours) holding dev open, found the way flashtool
    does: every /proc/<pid>/fd entry whose (st_dev, st_ino) matches."""
    try:
        st = os.stat(dev)
    except OSError:
        return []
    want = (st.st_dev, st.st_ino)
    me = os.getpid()
    pids = []
    try:
        procs = os.listdir("/proc")
    except OSError:
        return []
    for pid in procs:
        if not pid.isdigit() or int(pid) == me:
            continue
        fddir = "/proc/%s/fd" % pid
        try:
            fds = os.listdir(fddir)
        except OSError:
            continue
        for fd in fds:
            try:
                s = os.stat(os.path.join(fddir, fd))
            except OSError:
                continue
            if (s.st_dev, s.st_ino) == want:
                pids.append(int(pid))
                break
    return pids


# ---------------------------------------------------------------- Katapult

CMD_HEADER = b"\x01\x88"
CMD_TRAILER = b"\x99\x03"
CMDS = {"CONNECT": 0x11, "SEND_BLOCK": 0x12, "SEND_EOF": 0x13,
        "REQUEST_BLOCK": 0x14, "COMPLETE": 0x15, "GET_CANBUS_ID": 0x16}
ACK_SUCCESS, NACK, ACK_ERROR, ACK_BUSY = 0xA0, 0xF1, 0xF2, 0xF3
PRIME_CMD = 0x90
# the line Klipper's serial code takes as "reboot into the bootloader"
SERIAL_BL_REQ = b"~ \x1c Request Serial Bootloader!! ~"


def crc16_mcrf4xx(data):
    """CRC-16/MCRF4XX: reflected 0x1021 (0x8408), init 0xffff, no xorout."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def build_frame(cmd, payload=b""):
    body = bytes([cmd, (len(payload) // 4) & 0xFF]) + bytes(payload)
    return CMD_HEADER + body + struct.pack("<H", crc16_mcrf4xx(body)) + CMD_TRAILER


def retry_scale():
    """$KFLASH_SIM_STATE/flashtool-retry-scale: a factor (0 < x <= 1) on
    every read time-out and pause between retries; 1 when absent."""
    txt = read_state("flashtool-retry-scale")
    try:
        v = float(txt.split()[0])
        if v > 0:
            return v
    except (AttributeError, IndexError, ValueError):
        pass
    return 1.0


class ProtocolError(Exception):
    pass


class KatapultLink:
    """Client end of the Katapult serial protocol over an open pyserial
    port (or anything with fileno/write/read)."""

    def __init__(self, port, log=None, scale=1.0, errlog=None):
        self.port = port
        self.fd = port.fileno()
        self.buf = bytearray()
        self.log = log or (lambda msg: None)
        # called inside the except clause of a read/write error
        self.errlog = errlog or self.log
        self.scale = scale
        self.primed = False
        self.dead = False       # the tty hung up (the board re-enumerated)

    def write(self, data):
        if self.dead:
            return
        try:
            self.port.write(bytes(data))
        except Exception as e:  # pyserial's SerialException, OSError
            self.errlog("Error on serial write")
            self.dead = True

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.dead:
            return False
        try:
            r, _, _ = select.select([self.fd], [], [], left)
        except InterruptedError:
            return True
        except (OSError, ValueError):
            self.dead = True
            return False
        if not r:
            return False
        try:
            data = self.port.read(4096)
        except Exception as e:  # a hung-up tty: "readiness to read but no data"
            self.errlog("Error on serial read")
            self.dead = True
            return False
        if data:
            self.buf += data
        return True

    def drain(self, seconds):
        """Reads and throws away whatever arrives for a while."""
        end = time.monotonic() + seconds
        got = bytearray(self.buf)
        self.buf.clear()
        while self._fill(end):
            got += self.buf
            self.buf.clear()
        return bytes(got)

    def read_frame(self, timeout):
        """One frame (header .. trailer) or None on time-out; bytes before a
        header are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(CMD_HEADER)
            if i < 0:
                # keep a trailing 0x01 that may start the next header
                keep = 1 if self.buf[-1:] == CMD_HEADER[:1] else 0
                del self.buf[:len(self.buf) - keep]
            else:
                del self.buf[:i]
                if len(self.buf) >= 4:
                    need = 8 + self.buf[3] * 4
                    if len(self.buf) >= need:
                        frame = bytes(self.buf[:need])
                        del self.buf[:need]
                        return frame
            if not self._fill(deadline):
                return None

    def prime(self):
        """An invalid command first: STM32 USB with double buffering only
        answers a request once the next one arrives. The answer to the
        prime (an error frame) is thrown away."""
        self.write(build_frame(PRIME_CMD))
        self.primed = True

    def command(self, name, payload=b"", tries=5, timeout=2.0):
        """Sends a command until it is acknowledged; returns the payload of
        the answer without the echoed command word. Raises ProtocolError
        after the last try."""
        cmd = CMDS[name]
        frame = build_frame(cmd, payload)
        while tries:
            self.write(frame)
            resp = self.read_frame(timeout * self.scale)
            if resp is not None and self.primed:
                self.primed = False
                resp = self.read_frame(timeout * self.scale)
            tries -= 1
            if resp is None:
                self.log("Response for command %s timed out, %d tries remaining" % (name, tries))
            else:
                n = resp[3] * 4
                ack = resp[2]
                crc_got = struct.unpack("<H", resp[-4:-2])[0]
                echoed = struct.unpack("<I", resp[4:8])[0] if n >= 4 else 0
                if resp[-2:] != CMD_TRAILER:
                    self.log("Command '%s': Invalid Trailer Received 0x%s" % (name, resp[-2:].hex()))
                elif crc_got != crc16_mcrf4xx(resp[2:-4]):
                    self.log("Command '%s': Frame CRC Mismatch, expected: %d, received %d"
                             % (name, crc16_mcrf4xx(resp[2:-4]), crc_got))
                elif ack == ACK_ERROR:
                    self.log("Command '%s': Received Error Response" % name)
                elif ack == ACK_BUSY:
                    self.log("Command '%s': Received busy signal" % name)
                    time.sleep(1.5 * self.scale)
                elif ack != ACK_SUCCESS:
                    self.log("Command '%s': Received NACK" % name)
                elif echoed != cmd:
                    self.log("Command '%s': Acknowledged wrong command, expected: %2x, received: %2x"
                             % (name, cmd, echoed))
                else:
                    return resp[8:4 + n] if n > 4 else b""
            junk = self.drain(0.25 * self.scale)
            if junk:
                self.log("Read Buffer Contents: %r" % (junk,))
            time.sleep(0.5 * self.scale)
        raise ProtocolError("Error sending command [%s] to Device" % name)


def parse_connect(ret):
    """CONNECT answer -> dict(proto (tuple), app_start, block_size,
    mcu, software)."""
    if len(ret) < 12:
        raise ProtocolError("short CONNECT answer (%d bytes)" % len(ret))
    ver, start, bsize = struct.unpack("<4sII", bytes(ret[:12]))
    proto = (ver[2], ver[1], ver[0])
    info = bytes(ret[12:]).rstrip(b"\x00")
    software = None
    if proto >= (1, 1, 0):
        parts = info.split(b"\x00", 1)
        mcu = parts[0].decode("utf-8", "replace")
        if len(parts) == 2:
            software = parts[1].decode("utf-8", "replace")
    else:
        mcu = info.decode("utf-8", "replace")
    return {"proto": proto, "app_start": start, "block_size": bsize,
            "mcu": mcu, "software": software, "raw_mcu": info}


def find_klipper_dict(data):
    """The data dictionary a klipper.bin carries: the first offset where a
    zlib stream decompresses to JSON with app == Klipper. None if none."""
    import json
    import zlib
    start = 0
    while True:
        # a zlib header: CMF 0x78 with (CMF*256+FLG) % 31 == 0
        i = data.find(b"\x78", start)
        if i < 0 or i + 2 > len(data):
            return None
        start = i + 1
        if ((data[i] << 8) | data[i + 1]) % 31:
            continue
        try:
            d = json.loads(zlib.decompress(data[i:]))
        except (zlib.error, ValueError):
            continue
        if isinstance(d, dict) and d.get("app") == "Klipper":
            return d


def pid_running(pid):
    """True while pid exists and is not a zombie (an orphan's zombie may
    wait long for a reaper that never comes in a container)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:][:1] not in ("Z", "X", "")


def die_by_signal(sig):
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(1)
    os._exit(128 + sig)


def is_errno(e, *codes):
    return isinstance(e, OSError) and e.errno in codes


__all__ = [n for n in dir() if not n.startswith("_")] + ["errno"]
