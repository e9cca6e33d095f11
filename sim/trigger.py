#!/usr/bin/python3
"""sim/trigger.py - waits for an event of a scenario's run (`signal:`, `when:`).

usage: trigger.py PID wait PATTERN
           exit 0 once an event line's "actor words" start with PATTERN,
           1 when PID ended first
       trigger.py PID signal NAME PATTERN [DELAY]
           DELAY seconds (default 0) after that event, logs `scenario signal
           NAME` and sends signal NAME to PID; a PID that had ended by then
           (a zombie not yet reaped counts as ended) is logged as `scenario
           signal NAME missed`

It follows $KFLASH_SIM_EVENTS from its start (an event before it began
counts) every 5 ms, in one process, instead of a shell loop of awk and
sleep: the moment a signal lands is within a few ms of the one asked for,
and a soak of hundreds of runs spends its CPU on the runs, not the waits.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake", "lib"))
import simfake  # noqa: E402  the event log's one writer

POLL = 0.005


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_event(pid, pat):
    """True once the event is in the log, False when pid ended first."""
    path = os.environ["KFLASH_SIM_EVENTS"]
    buf, off = b"", 0
    want = pat.encode()
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(off)
                chunk = f.read()
        except OSError:
            chunk = b""
        off += len(chunk)
        lines = (buf + chunk).split(b"\n")
        buf = lines.pop()
        for line in lines:
            parts = line.split(b" ", 1)
            if len(parts) == 2 and parts[1].startswith(want):
                return True
        if not alive(pid):
            return False
        time.sleep(POLL)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("wait", "signal") or \
            (argv[1] == "signal" and len(argv) not in (4, 5)):
        sys.stderr.write(__doc__)
        return 2
    pid = int(argv[0])
    if argv[1] == "wait":
        return 0 if wait_event(pid, argv[2]) else 1
    name, pat = argv[2], argv[3]
    sig = getattr(signal, "SIG" + name)
    if not wait_event(pid, pat):
        return 1
    due = time.monotonic() + (float(argv[4]) if len(argv) == 5 else 0.0)
    while time.monotonic() < due:
        if not alive(pid):
            break
        time.sleep(min(POLL, max(0.0, due - time.monotonic())))
    simfake.event("scenario", "signal", name)
    try:
        if not alive(pid):
            raise ProcessLookupError
        os.kill(pid, sig)
    except ProcessLookupError:
        simfake.event("scenario", "signal", name, "missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
