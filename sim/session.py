"""session - loads a recorded kflash session (doc/sessions.md) into the
simulated host: its boards, its registry and settings, its board configs.

Used by sim/printer (--session DIR, --board DIR/boards/NAME). A recorded
board becomes a `.board` file (fixtures/boards/README.md) written into the
host's state dir, so simhost starts it like any other board; the registry is
what kflash read of devices.json during the session, with its paths and
services pointed at the simulator's own fakes.
"""
import base64
import fnmatch
import json
import os
import re
import sys

import simlib

sys.path.insert(0, os.path.join(simlib.FAKE, "lib"))
import faults  # noqa: E402  the registry: only its faults are imitated

FORMAT = 1
KLIPPER_ID = ("1d50", "614e")
KATAPULT_ID = ("1d50", "6177")
# kflash's registry settings that name something on the recorded host:
# the simulated host has its own (simlib.Host.write_registry)
SIM_PATHS = {"klipper_dir": "~/klipper", "katapult_dir": "~/katapult",
             "python": simlib.PYTHON}


def _err(path, what, line=None):
    where = "%s:%d" % (path, line) if line else path
    return simlib.SimError("%s: %s" % (where, what))


# a session's file bigger than this is not one kflash wrote
MAX_BYTES = 64 << 20


def _read_text(path, what):
    """PATH's text; SimError naming it when it is missing, unreadable, not
    UTF-8 or absurdly big."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_BYTES:
                raise _err(path, "bigger than %d MiB, not a session file" % (MAX_BYTES >> 20))
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise _err(path, "missing (%s)" % what)
    except IsADirectoryError:
        raise _err(path, "a directory, not a file (%s)" % what)
    except (OSError, UnicodeDecodeError) as e:
        raise _err(path, "cannot read: %s" % e)


def _load_json(path, what):
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except ValueError as e:
        raise _err(path, "not JSON: %s" % e, getattr(e, "lineno", None))


# ---- boards/NAME.umockdev ---------------------------------------------------
def parse_umockdev(path):
    """umockdev's device description -> list of devices, each
    {"P": syspath, "N": node, "E": {props}, "A": {attrs}, "L": {links}}."""
    lines = _read_text(path, "the board's udev view").split("\n")
    devs, cur = [], None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            cur = None
            continue
        if line.startswith("#"):
            continue
        m = re.match(r"^([PNEASLH]): ?(.*)$", line)
        if not m:
            raise _err(path, "not a umockdev line: '%s'" % line[:60], n)
        tag, val = m.group(1), m.group(2)
        if tag == "P":
            cur = {"P": val, "N": None, "E": {}, "A": {}, "L": {}}
            devs.append(cur)
            continue
        if cur is None:
            raise _err(path, "'%s:' before the device's 'P:' line" % tag, n)
        if tag == "N":
            cur["N"] = val.split("=", 1)[0]
        elif tag in "EASL":
            k, _, v = val.partition("=")
            cur[{"S": "L"}.get(tag, tag)][k] = v
    if not devs:
        raise _err(path, "no device in it")
    return devs


def _links(dev):
    out = dev["E"].get("DEVLINKS", "").split()
    out += [v for v in dev["L"].values()] + [k for k in dev["L"]]
    return out


def _port_in(by_path):
    """The USB port chain in a by-path name: ...-usb-0:1.2:1.0 -> 1.2."""
    m = re.search(r"-usb-\d+:([0-9.]+):\d+\.\d+(?:-port\d+)?$", by_path or "")
    return m.group(1) if m else None


def dev_of_umockdev(path):
    """A .umockdev -> a device as calls.jsonl writes one (doc/sessions.md:
    devnode, by_id, by_path, vid, pid, manufacturer, product, serial,
    driver), plus what only udev's description has: the port from the
    sysfs path, busnum, revision."""
    devs = parse_umockdev(path)
    tty = next((d for d in devs if d["E"].get("SUBSYSTEM") == "tty"), None)
    usb = next((d for d in devs if d["E"].get("DEVTYPE") == "usb_device"
                or "idVendor" in d["A"]), None)
    if tty is None:
        raise _err(path, "no tty device (E: SUBSYSTEM=tty) in it")
    ua, te = (usb["A"] if usb else {}), tty["E"]
    links = _links(tty)
    node = te.get("DEVNAME") or (tty["N"] and "/dev/" + tty["N"])
    dev = {
        "devnode": node,
        "by_id": next((l for l in links if "/by-id/" in l), None),
        "by_path": next((l for l in links if "/by-path/" in l), None),
        "vid": ua.get("idVendor") or te.get("ID_VENDOR_ID"),
        "pid": ua.get("idProduct") or te.get("ID_MODEL_ID"),
        "manufacturer": ua.get("manufacturer") or te.get("ID_VENDOR"),
        "product": ua.get("product") or te.get("ID_MODEL"),
        "serial": ua.get("serial") or te.get("ID_SERIAL_SHORT"),
        "driver": te.get("ID_USB_DRIVER") or next(
            (d["E"]["DRIVER"] for d in devs if d["E"].get("DEVTYPE") == "usb_interface"
             and d["E"].get("DRIVER")), None),
        "busnum": ua.get("busnum"), "revision": ua.get("bcdDevice"),
        "port": _port_in(te.get("ID_PATH")),
    }
    for p in ((usb or {}).get("P"), tty["P"]):
        chain = re.findall(r"/\d+-([0-9.]+)(?=/|$)", p or "")
        if chain and not dev["port"]:
            dev["port"] = chain[-1]   # bus 1, port 1.2: .../1-1.2
    return dev


# where Katapult usually puts the application when the recording does not
# say (it had no Katapult answer and no config): 16 KiB on RP2040 and
# LPC176x, 32 KiB on STM32 (simhost's default)
APP_START = (("rp2", "0x10004000"), ("lpc176", "0x4000"))


def app_start_of(meta, config, mcu):
    """The application start: what Katapult told kflash, else the board's
    config (CONFIG_FLASH_APPLICATION_ADDRESS) when it is for this MCU (a
    config for another chip is what a mismatch session is about), else the
    usual one."""
    if meta.get("app_start"):
        return meta["app_start"]
    m = re.search(r"^CONFIG_FLASH_APPLICATION_ADDRESS=(0x[0-9a-fA-F]+)$", config or "", re.M)
    if m and re.search(r'^CONFIG_MCU="%s"$' % re.escape(mcu), config, re.M):
        return m.group(1)
    return next((a for pre, a in APP_START if mcu.startswith(pre)), None)


def _pattern_serial(entry, mcu):
    """The USB serial a registry pattern names literally
    (usb-*_lpc1769_12345-if* -> 12345), else None."""
    m = re.search(r"_%s_([^*?\[\]_/]+)-if\*?$" % re.escape(mcu),
                  (entry or {}).get("pattern") or "")
    return m.group(1) if m else None


def board_from_dev(dev, meta, name, entry=None, config=None):
    """A recorded device (DEV as dev_of_umockdev makes it or calls.jsonl
    has it), what kflash knew of the board (META, its .json), its registry
    ENTRY and CONFIG's text when known -> the key=value pairs of a simhost
    board file (fixtures/boards/README.md); "port" is None when the
    recording has none."""
    vid, pid = (dev.get("vid") or "").lower(), (dev.get("pid") or "").lower()
    manufacturer, product, serial = dev.get("manufacturer"), dev.get("product"), dev.get("serial")
    port = _port_in(dev.get("by_path")) or dev.get("port") or meta.get("port")
    b = {"name": name, "port": port}
    if dev.get("devnode"):
        b["tty"] = os.path.basename(dev["devnode"])
    if str(dev.get("busnum") or "").isdigit():
        b["busnum"] = str(int(dev["busnum"]))
    if dev.get("revision"):
        b["revision"] = dev["revision"]
    mode = meta.get("mode")
    if mode not in ("klipper", "katapult"):
        mode = {KLIPPER_ID: "klipper", KATAPULT_ID: "katapult"}.get((vid, pid))
    mcu = meta.get("mcu") or (entry or {}).get("mcu") or (
        product if (vid, pid) in (KLIPPER_ID, KATAPULT_ID) else None)
    if (vid, pid) in (KLIPPER_ID, KATAPULT_ID) and mcu and mode:
        # Katapult always shows the chip id; Klipper may show its own
        # (CONFIG_USB_SERIAL_NUMBER), and then the chip id is what kflash
        # learned in Katapult mode (the registry's katapult_serial)
        if mode == "katapult":
            chip, klipper_serial = serial, _pattern_serial(entry, mcu)
        else:
            chip = (entry or {}).get("katapult_serial") or meta.get("serial") or serial
            klipper_serial = serial
        b.update({"kind": "klipper", "mode": mode, "mcu": mcu, "serial": chip})
        app = app_start_of(meta, config, mcu)
        if app:
            b["app_start"] = app
        if klipper_serial and klipper_serial != chip:
            b["usb_serial"] = klipper_serial
        if mode == "klipper":
            if manufacturer and manufacturer != "Klipper":
                b["manufacturer"] = manufacturer
            if product and product != mcu:
                b["product"] = product
        elif manufacturer and manufacturer != "katapult":
            b["bootloader_manufacturer"] = manufacturer
    else:
        # not a board simhost can emulate (a probe, a USB-serial chip, a
        # board it has no Katapult for): it is there as udev saw it
        b.update({"kind": "fixed", "vid": vid, "pid": pid})
        for k, v in (("manufacturer", manufacturer), ("product", product),
                     ("serial", serial)):
            if v:
                b[k] = v
    if dev.get("driver") and dev["driver"] != "cdc_acm":
        b["driver"] = dev["driver"]
    return b


def can_board_from_meta(meta, net, entry=None, config=None):
    """A CAN node's or a bridge board's .json (kflash saw no tty of it, so
    there is no .umockdev), its registry ENTRY, CONFIG's text and NET, the
    USB device udev showed its interface on (enumerate_net; None when not
    recorded) -> the key=value pairs of a simhost board file."""
    entry = entry or {}
    mcu = meta.get("mcu") or entry.get("mcu")
    uuid = meta.get("serial") or entry.get("canbus_uuid")
    iface = entry.get("interface") or meta.get("port") or "can0"
    b = {"name": meta.get("key"), "port": None, "kind": "klipper",
         "mode": "katapult" if meta.get("mode") == "katapult" else "klipper",
         "mcu": mcu, "canbus_uuid": uuid}
    app = app_start_of(meta, config, mcu)
    if app:
        b["app_start"] = app
    if meta.get("transport") == "bridge":
        # on USB it is the Klipper bridge udev showed under its interface
        b["can_bridge"] = iface
        # a net device's by_path is its USB device's name: 1-1.4.8
        m = re.match(r"^\d+-([0-9.]+)$", (net or {}).get("by_path") or "")
        b["port"] = m.group(1) if m else None
        b["serial"] = (net or {}).get("serial") or uuid.upper()
    else:
        b.update({"transport": "can", "interface": iface, "serial": uuid.upper()})
    return b


def write_board_file(pairs, path, source):
    with open(path, "w") as f:
        f.write("# made by sim/printer from the recorded board %s\n" % source)
        for k, v in pairs.items():
            f.write("%s=%s\n" % (k, v))


def recorded_board(spec):
    """--board DIR/boards/NAME (or NAME.umockdev, NAME.json) -> (stem, rest)
    when it names a recorded board, else None. REST is the :mode and
    ,key=value suffix, passed on to simhost."""
    m = re.match(r"^(.*?)((?::klipper|:katapult)?(?:,.*)?)$", spec)
    base, rest = m.group(1), m.group(2)
    for ext in (".umockdev", ".json"):
        if base.endswith(ext):
            base = base[:-len(ext)]
            break
    else:
        if not os.path.exists(base + ".umockdev"):
            return None
    return base, rest


def place_board(pairs, out_dir, source):
    """Writes the board PAIRS as OUT_DIR/NAME.board; returns its path. A
    board without a port, or on one the simulated host cannot have (1 is
    its hub; another board's), gets the first free port 1.N."""
    os.makedirs(out_dir, exist_ok=True)
    used = set()
    for f in os.listdir(out_dir):
        if f.endswith(".board"):
            used.add(simlib.board_props(os.path.join(out_dir, f)).get("port"))
    if not pairs["port"] or pairs["port"] == "1" or pairs["port"] in used:
        free = next("1.%d" % i for i in range(1, 100) if "1.%d" % i not in used)
        sys.stderr.write("sim/printer: %s: recorded on port %s, simulated on %s\n"
                         % (pairs["name"], pairs["port"] or "(none)", free))
        pairs["port"] = free
    path = os.path.join(out_dir, pairs["name"] + ".board")
    write_board_file(pairs, path, source)
    return path


def load_board(stem, out_dir, entry=None, config=None):
    """Writes OUT_DIR/NAME.board from the recorded board STEM (its registry
    ENTRY and its CONFIG's text when known); returns its path, the board's
    .json and its device."""
    name = os.path.basename(stem)
    meta_path = stem + ".json"
    meta = _load_json(meta_path, "what kflash knew of the board") \
        if os.path.exists(meta_path) else {}
    if not isinstance(meta, dict):
        raise _err(meta_path, "not a JSON object")
    dev = dev_of_umockdev(stem + ".umockdev")
    pairs = board_from_dev(dev, meta, name, entry, config)
    return place_board(pairs, out_dir, stem), meta, dev


# ---- the session ------------------------------------------------------------
def _json_line(path, line, n):
    try:
        return json.loads(line)
    except ValueError as e:
        raise _err(path, "not JSON: %s" % e, n)


def read_calls(path):
    """calls.jsonl -> its calls ordered by n."""
    lines = _read_text(path, "the session's calls").split("\n")
    header = _json_line(path, lines[0], 1) if lines[0].strip() else None
    if not isinstance(header, dict) or header.get("kflash-session") != FORMAT:
        raise _err(path, "not a kflash session of format %d (the first line "
                   "should be {\"kflash-session\": %d})" % (FORMAT, FORMAT), 1)
    calls = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        c = _json_line(path, line, n)
        if not isinstance(c, dict) or not isinstance(c.get("n"), int) \
                or not isinstance(c.get("op"), str):
            raise _err(path, "a call needs a number \"n\" and an \"op\"", n)
        calls.append(c)
    return sorted(calls, key=lambda c: c["n"])


def _read_data(c):
    """What a successful read_file answered, as text, else None."""
    if c.get("op") != "read_file":
        return None
    ret = c.get("ret") or {}
    if not isinstance(ret.get("r"), int) or ret["r"] < 0:
        return None
    if isinstance(ret.get("data"), str):
        return ret["data"]
    if isinstance(ret.get("data_b64"), str):
        return base64.b64decode(ret["data_b64"]).decode("utf-8", "replace")
    return None


def _path(c):
    p = (c.get("args") or {}).get("path")
    return p if isinstance(p, str) else ""


class Session:
    """A recorded session directory."""

    def __init__(self, d):
        self.dir = d
        if not os.path.isdir(d):
            raise _err(d, "not a session directory")
        sj = os.path.join(d, "session.json")
        self.meta = _load_json(sj, "what ran")
        if not isinstance(self.meta, dict):
            raise _err(sj, "not a JSON object")
        if self.meta.get("format") != FORMAT:
            raise _err(sj, "format %r, this simulator reads format %d"
                       % (self.meta.get("format"), FORMAT))
        cmd = self.meta.get("command")
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise _err(sj, "\"command\" is not a list of strings")
        self.boards_dir = os.path.join(d, "boards")
        self.calls_path = os.path.join(d, "calls.jsonl")
        self.calls = read_calls(self.calls_path)
        if not os.path.isdir(self.boards_dir) and self.udev() is None:
            # without boards/, udev's answers in calls.jsonl still tell
            # what was plugged in; without either there is no host to build
            raise _err(self.boards_dir, "missing or not a directory (the recorded "
                       "boards), and %s has no udev enumeration" % self.calls_path)

    def board_stems(self):
        if not os.path.isdir(self.boards_dir):
            return []
        names = sorted({f.rsplit(".", 1)[0] for f in os.listdir(self.boards_dir)
                        if f.endswith(".umockdev")})
        return [os.path.join(self.boards_dir, n) for n in names]

    def board_metas(self):
        """The .json of each board kflash knew but udev did not show."""
        out = []
        if os.path.isdir(self.boards_dir):
            for f in sorted(os.listdir(self.boards_dir)):
                if f.endswith(".json") and not os.path.exists(
                        os.path.join(self.boards_dir, f[:-5] + ".umockdev")):
                    m = _load_json(os.path.join(self.boards_dir, f),
                                   "what kflash knew of the board")
                    if isinstance(m, dict):
                        out.append(m)
        return out

    def udev(self, op="enumerate"):
        """The devices of kflash's first successful udev enumeration (of
        net devices: op enumerate_net), else None."""
        for c in self.calls:
            ret = c.get("ret") or {}
            if c.get("op") == op and isinstance(ret.get("r"), int) \
                    and ret["r"] >= 0 and isinstance(ret.get("devs"), list):
                return [d for d in ret["devs"] if isinstance(d, dict)]
        return None

    def registry(self):
        """(config dir as recorded, devices.json's document) from the first
        successful read of a devices.json, else (None, None)."""
        for c in self.calls:
            p = _path(c)
            data = _read_data(c)
            if p.endswith("/devices.json") and data is not None:
                try:
                    doc = json.loads(data)
                except ValueError as e:
                    raise _err(self.calls_path, "call %d: %s is not JSON: %s"
                               % (c["n"], p, e))
                if not isinstance(doc, dict):
                    raise _err(self.calls_path, "call %d: %s is not a JSON object"
                               % (c["n"], p))
                return os.path.dirname(p), doc
        return None, None

    def configs(self, config_dir):
        """{key: text} of each board config kflash read under CONFIG_DIR."""
        out = {}
        pre = (config_dir.rstrip("/") + "/configs/") if config_dir else None
        for c in self.calls:
            p = _path(c)
            m = re.search(r"(?:^|/)configs/([^/]+)/\.config$", p)
            data = _read_data(c)
            if not m or data is None or (pre and not p.startswith(pre)):
                continue
            out.setdefault(m.group(1), data)
        return out

    def moonraker(self):
        """What the recorded Moonraker said, as the fake Moonraker's state
        (sim/fake/moonraker/handler): the print state, printer.cfg's mcu
        serials, the Klipper unit. Only answers of 200 count."""
        state = {}
        for c in self.calls:
            ret = c.get("ret") or {}
            url = (c.get("args") or {}).get("url")
            if c.get("op") != "http_get" or ret.get("status") != 200 \
                    or not isinstance(url, str) or not isinstance(ret.get("body"), str):
                continue
            try:
                res = json.loads(ret["body"]).get("result") or {}
            except (ValueError, AttributeError):
                continue
            st = res.get("status") if isinstance(res, dict) else None
            if isinstance(st, dict):
                for obj in ("print_stats", "virtual_sdcard"):
                    if isinstance(st.get(obj), dict):
                        state.setdefault(obj, st[obj])
                cf = (st.get("configfile") or {}).get("settings")
                if isinstance(cf, dict) and "mcu_serials" not in state:
                    state["mcu_serials"] = {
                        k: v["serial"] for k, v in cf.items()
                        if (k == "mcu" or k.startswith("mcu ")) and isinstance(v, dict)
                        and isinstance(v.get("serial"), str)}
            si = res.get("system_info") if isinstance(res, dict) else None
            if isinstance(si, dict) and "service" not in state:
                u = (si.get("instance_ids") or {}).get("klipper")
                if isinstance(u, str) and u:
                    state["service"] = u[:-8] if u.endswith(".service") else u
        return state

    def units_inactive(self):
        """The units `systemctl is-active UNIT` said were not active before
        kflash stopped anything (their first answer)."""
        pids, seen, out = {}, set(), set()
        for c in self.calls:
            a, ret = c.get("args") or {}, c.get("ret") or {}
            argv = a.get("argv")
            if c.get("op") == "spawn" and isinstance(argv, list) and "is-active" in argv:
                units = [x for x in argv[argv.index("is-active") + 1:]
                         if isinstance(x, str) and not x.startswith("-")]
                if isinstance(ret.get("pid"), int) and units:
                    pids[ret["pid"]] = units[0]
            elif c.get("op") == "spawn" and isinstance(argv, list) and "stop" in argv:
                break
            elif c.get("op") == "wait" and a.get("pid") in pids:
                unit = pids.pop(a["pid"])
                ex = ret.get("exit") or {}
                if unit not in seen and ex.get("kind") == "exited":
                    seen.add(unit)
                    if ex.get("code") != 0:
                        out.add(unit[:-8] if unit.endswith(".service") else unit)
        return out

    def command(self):
        """The recorded command line, without what named the recording
        host's paths (the simulated host has its own config dir)."""
        out, it = [], iter(self.meta["command"])
        for a in it:
            if a in ("--record", "--config-dir"):
                next(it, None)
            elif a.startswith("--record=") or a.startswith("--config-dir="):
                pass
            else:
                out.append(a)
        return ["kflash"] + out



# ---- the world as it behaved --------------------------------------------------
# A session records what kflash asked and what the world answered, not why the
# world answered so. When a flash tool failed or hung, a board never came back
# or a signal arrived, the rerun imitates it with the simulator's own faults
# (sim/fake/lib/faults.py), inferred from the answers: state faults for the
# fake tools, board keys for simhost, and a signal sent when the simulated run
# reaches the point where the recorded one was interrupted.
SIG_NAMES = {1: "HUP", 2: "INT", 3: "QUIT", 15: "TERM"}


def _text(lines):
    """A wait's captured lines as text ({"b64": ...} lines decoded)."""
    out = []
    for ln in lines or []:
        if isinstance(ln, dict) and isinstance(ln.get("b64"), str):
            ln = base64.b64decode(ln["b64"]).decode("utf-8", "replace")
        if isinstance(ln, str):
            out.append(ln)
    return "\n".join(out)


def _tool(argv):
    """Which fake answers for a spawned ARGV: ("flashtool", "-f"|"-s"|"-r"|
    None), ("make-flash", None), ("make-build", None) or None."""
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return None
    if any(a.endswith("flashtool.py") for a in argv):
        return "flashtool", next((a for a in argv if a in ("-f", "-s", "-r")), None)
    if argv and os.path.basename(argv[0]) == "make":
        rest = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
        if "flash" in rest:
            return "make-flash", None
        if not set(rest) & {"olddefconfig", "menuconfig", "clean", "distclean"} \
                and any(a.startswith("-j") for a in argv):
            return "make-build", None
    return None


def _device_of(argv):
    """The tty a flash tool was pointed at (-d DEV, FLASH_DEVICE=DEV)."""
    for i, a in enumerate(argv):
        if a == "-d" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("FLASH_DEVICE="):
            return a.split("=", 1)[1]
    return None


# what a failing flashtool printed -> the fault word that prints it
FLASHTOOL_WORDS = (("pyserial python package was not found", "pyserial-missing"),
                   ("Error sending command [CONNECT]", "fail"),
                   ("Flash write failed", "fail"),
                   ("Error sending command [SEND_BLOCK]", "fail"))


class Fault:
    """One inferred fault: KIND "state" (NAME WORD), "board" (BOARD's key
    NAME=WORD) or "signal" (NAME sent when event WORD appears); CALLS the
    call numbers it comes from, WHY what they say."""

    def __init__(self, kind, name, word, calls, why, board=None):
        self.kind, self.name, self.word = kind, name, word
        self.calls, self.why, self.board = calls, why, board

    def __str__(self):
        what = {"state": "fault %s %s" % (self.name, self.word),
                "board": "board %s %s=%s" % (self.board, self.name, self.word),
                "signal": "signal %s when %s" % (self.name, self.word)}[self.kind]
        return "%s (call%s %s: %s)" % (what, "s" if len(self.calls) > 1 else "",
                                       ", ".join(str(n) for n in self.calls), self.why)


def infer_faults(calls, board_of_node):
    """The faults the recorded world showed, from CALLS; BOARD_OF_NODE maps a
    tty (/dev/ttyACM0) to the name of the simulated board there. Returns
    (faults, what could not be imitated: texts naming the calls)."""
    spawns, found, missed = {}, [], []
    runs = []          # (call n, tool, mode, device, exit) of each flash tool's end
    by_n = {c["n"]: c for c in calls}
    for c in calls:
        a, ret = c.get("args") or {}, c.get("ret") or {}
        if c["op"] == "spawn" and isinstance(ret.get("pid"), int) and ret.get("r", -1) >= 0:
            spawns[ret["pid"]] = c
        if c["op"] != "wait" or a.get("pid") not in spawns:
            continue
        sp = spawns[a["pid"]]
        argv = sp["args"].get("argv")
        tool = _tool(argv)
        ex = ret.get("exit") or {}
        if tool is None:
            continue
        name, mode = tool
        text, cmd = _text(ret.get("lines")), os.path.basename(
            next((x for x in argv if x.endswith(".py")), argv[0]))
        if ex.get("kind") == "running" and ex.get("interrupted_by"):
            sig = ex["interrupted_by"]
            took = next((x for x in calls if x["n"] > c["n"] and x["op"] == "take_signal"
                         and (x.get("ret") or {}).get("sig") == sig), None)
            node = _device_of(argv)
            board = board_of_node.get(node)
            if name == "flashtool" and mode == "-f" and board and "Flashing" in text:
                ev, at = "simboard %s write-start" % board, "the flash tool was writing"
            elif name == "flashtool":
                ev, at = "flashtool start", "flashtool had started"
            elif name == "make-flash":
                ev, at = "flash_usb start", "make flash had started"
            else:
                ev, at = "make build start", "the build had started"
            found.append(Fault("signal", SIG_NAMES.get(sig, str(sig)), ev,
                               [sp["n"], c["n"]] + ([took["n"]] if took else []),
                               "signal %d arrived while %s (%s)" % (sig, at, cmd)))
            continue
        if ex.get("kind") == "running":
            # the deadline passed and kflash stopped it: it hung
            stop = next((x for x in calls if x["n"] > c["n"] and x["op"] in ("wait", "kill_group")
                         and (x.get("args") or {}).get("pid") == a["pid"]), None)
            if stop is None or stop["op"] != "kill_group":
                continue
            runs.append((c["n"], name, mode, _device_of(argv), "hang"))
            found.append(Fault("state", name, "hang", [sp["n"], c["n"]],
                               "%s was still running at its deadline and was killed" % cmd))
            continue
        if ex.get("kind") != "exited":
            continue
        if ex.get("code") == 0:
            runs.append((c["n"], name, mode, _device_of(argv), "ok"))
            if name == "flashtool" and "Device is not Katapult" in text:
                found.append(Fault("state", "flashtool", "no-complete", [sp["n"], c["n"]],
                                   "flashtool.py exited 0 after \"Device is not Katapult\""))
            continue
        runs.append((c["n"], name, mode, _device_of(argv), "failed"))
        word = None
        if name == "flashtool" or (name == "make-flash" and "Flash Tool Error" in text):
            word = next((w for pat, w in FLASHTOOL_WORDS if pat in text), None)
            name = "flashtool"
        elif name == "make-flash" and ("Failed to flash to" in text or "dfu-util" in text):
            word = "fail"
        elif name == "make-build":
            m = re.search(r"^(src/\S+?\.c):\d+", text, re.M)
            word = "fail" + (" " + m.group(1) if m else "")
        last = text.strip().split("\n")[-1][:100] if text.strip() else "nothing"
        if word is None:
            missed.append("calls %d, %d: %s exited %s printing \"%s\": no fault of the "
                          "simulator prints that" % (sp["n"], c["n"], cmd, ex.get("code"), last))
            continue
        found.append(Fault("state", name, word, [sp["n"], c["n"]],
                           "%s exited %s: \"%s\"" % (cmd, ex.get("code"), last)))
    taken = {n for f in found if f.kind == "signal" for n in f.calls}
    for c in calls:
        sig = (c.get("ret") or {}).get("sig") if c["op"] == "take_signal" else 0
        if sig and c["n"] not in taken:
            missed.append("call %d: signal %d arrived while no flash tool or build "
                          "ran: no event of the rerun says when to send it" % (c["n"], sig))
    found = _once(found, runs, missed)
    found += _boards_back(calls, runs, board_of_node, by_n)
    # a fault the registry does not have would do nothing: say so
    known = []
    for f in found:
        why = (faults.problem_state(f.name, f.word.split()) if f.kind == "state" else
               faults.problem_board(f.name, f.word) if f.kind == "board" else None)
        if why:
            missed.append("%s: %s" % (f, why))
        else:
            known.append(f)
    return known, missed


# the fakes that read each state fault: a flashtool fault also hits the
# flashtool make flash runs for a Katapult board
READ_BY = {"flashtool": ("flashtool", "make-flash"), "make-flash": ("make-flash",),
           "make-build": ("make-build",)}


def _once(found, runs, missed):
    """One state fault per fake: the first seen; `once` when a later run of
    a fake that reads it worked (a fallback, a retry); one that an earlier
    run of such a fake did not meet cannot be a state fault."""
    out, seen = [], {}
    for f in found:
        if f.kind != "state":
            out.append(f)
            continue
        if f.name in seen:
            if seen[f.name].word != f.word:
                missed.append("call %d: %s %s again, after %s: one fault word per tool; "
                              "the first is imitated" % (f.calls[-1], f.name, f.word,
                                                         seen[f.name].word))
            continue
        n = f.calls[-1]
        tools = READ_BY.get(f.name, (f.name,))
        if any(r[0] < n and r[1] in tools and r[4] == "ok" for r in runs):
            missed.append("call %d: %s %s after an earlier %s worked: a state fault "
                          "would hit that one first" % (n, f.name, f.word, f.name))
            continue
        if any(r[0] > n and r[1] in tools and r[4] == "ok" for r in runs):
            f.word += " once"
        seen[f.name] = f
        out.append(f)
    return out


def _boards_back(calls, runs, board_of_node, by_n):
    """After a flash that worked, whether the board came back: udev add
    events while kflash waited for it (monitor_next with a deadline). None
    before a deadline passed: after_complete=gone; back with the bootloader's
    USB id: after_complete=katapult."""
    out = []
    for n, name, mode, node, result in runs:
        if result != "ok" or (name, mode) not in (("flashtool", "-f"), ("make-flash", None)):
            continue
        board = board_of_node.get(node)
        if board is None:
            continue
        nxt = min([r[0] for r in runs if r[0] > n and r[3] == node] + [1 << 62])
        waited, back = [], None
        for c in calls:
            if c["n"] <= n or c["n"] >= nxt or c["op"] != "monitor_next":
                continue
            if not (c.get("args") or {}).get("deadline"):
                continue
            ret = c.get("ret") or {}
            waited.append(c["n"])
            ev = ret.get("ev") or {}
            dev = ev.get("dev") or {}
            if ret.get("r") == 1 and ev.get("action") == "add" and dev.get("devnode") == node:
                back = c
                break
            if ret.get("r") == 0:
                break
        if back is None and waited and (by_n[waited[-1]].get("ret") or {}).get("r") == 0:
            out.append(Fault("board", "after_complete", "gone", waited,
                             "%s's flash worked, then the wait for its return ran out "
                             "with no udev add of %s" % (board, node), board=board))
        elif back is not None and ((back["ret"]["ev"]["dev"].get("vid") or "").lower(),
                                   (back["ret"]["ev"]["dev"].get("pid") or "").lower()) \
                == KATAPULT_ID:
            out.append(Fault("board", "after_complete", "katapult", [back["n"]],
                             "%s came back in Katapult mode after its flash" % board,
                             board=board))
    return out


def sim_registry(doc, port, meta_settings=None):
    """The recorded registry DOC, its settings pointed at the simulated
    host: its checkouts, python and Moonraker. Returns (doc, service unit to
    make active or None)."""
    doc = json.loads(json.dumps(doc))
    s = doc.get("settings")
    if not isinstance(s, dict):
        s = dict(meta_settings or {})
        doc["settings"] = s
    s.update(SIM_PATHS)
    s["moonraker_url"] = "http://127.0.0.1:%d" % port
    if s.get("moonraker_api_key") == "<redacted>":
        del s["moonraker_api_key"]
    unit = s.get("service")
    if not isinstance(unit, str) or not unit or unit == "auto":
        s["service"], unit = "auto", None
    return doc, unit


def registry_from_boards(metas, settings):
    """No devices.json in the recording: one from session.json's settings
    and each board's .json."""
    boards = []
    for m in metas:
        if not m.get("mcu") or not (m.get("key") or m.get("name")):
            continue
        key = m.get("key") or m["name"]
        serial = m.get("serial") or "*"
        b = {"key": key, "name": m.get("name") or key, "mcu": m["mcu"],
             "pattern": "usb-*_%s_%s-if*" % (m["mcu"], serial),
             "method": m.get("method") or "default", "flashable": True}
        if m.get("port"):
            b["port"] = m["port"]
        boards.append(b)
    # session.json has the settings as devices.json holds them (older
    # sessions: as `kflash settings` shows them, strings and timeout.NAME)
    st, timeouts = {}, {}
    for k, v in (settings or {}).items():
        if k.startswith("timeout.") and str(v).isdigit():
            timeouts[k[8:]] = int(v)
        elif k == "timeouts" and isinstance(v, dict):
            timeouts.update({t: n for t, n in v.items() if isinstance(n, int)})
        elif k == "fallback":
            st[k] = v in (True, "true")
        elif k in ("klipper_dir", "katapult_dir", "python", "service", "moonraker_url",
                   "moonraker_api_key", "default_method") and isinstance(v, str):
            st[k] = v
    if timeouts:
        st["timeouts"] = timeouts
    return {"schema": 1, "settings": st, "boards": boards}


# after the event, as scenarios do it (`signal: INT when ... after 0.02`):
# the tool is inside what it had started
SIGNAL_DELAY = 0.02


def _kflash_pids(host):
    """The kflash processes running in HOST (not its guardian)."""
    exe = os.path.realpath(os.path.join(simlib.build_dir(), "kflash"))
    mark = ("KFLASH_SIM_STATE=%s" % host.state).encode()
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.path.realpath("/proc/%s/exe" % pid) != exe:
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if b"--guardian" in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        out.append(int(pid))
    return out


def send_when(host, event, sig):
    """Sends signal SIG (INT, TERM ...) to HOST's kflash once an event line
    whose "actor words" start with EVENT is in its event log, like a
    scenario's `signal: SIG when EVENT`; a thread of this process, so it
    ends with it."""
    import signal
    import threading
    import time
    num = getattr(signal, "SIG" + sig, None) or int(sig)

    def watch():
        while True:
            try:
                with open(host.events, errors="replace") as f:
                    hit = any(line.split(" ", 1)[-1].startswith(event) for line in f)
            except OSError:
                hit = False
            if hit:
                break
            time.sleep(0.02)
        time.sleep(SIGNAL_DELAY)
        pids = _kflash_pids(host)
        with open(host.events, "a") as f:
            f.write("%.3f session signal %s %s\n" % (time.monotonic(), sig,
                                                      " ".join(map(str, pids)) or "none"))
        for pid in pids:
            try:
                os.kill(pid, num)
            except ProcessLookupError:
                pass

    threading.Thread(target=watch, daemon=True).start()


def load_into(host, d):
    """Loads the session at D into HOST (a simlib.Host before setup()):
    its boards now; returns a function that writes the registry and the
    configs once the host is set up, the recorded command and its exit code
    (None when the recorded run did not finish)."""
    ses = Session(d)
    config_dir, doc = ses.registry()
    entries = {b.get("key"): b for b in (doc or {}).get("boards") or []
               if isinstance(b, dict)}
    configs = ses.configs(config_dir)
    out_dir = os.path.join(host.dir, "boards")
    metas, seen, at_node = [], set(), {}
    for stem in ses.board_stems():
        key = os.path.basename(stem)
        path, meta, dev = load_board(stem, out_dir, entries.get(key), configs.get(key))
        host.boards.append(simlib.resolve_board(path))
        metas.append(meta)
        seen.update(filter(None, (dev.get("by_id"), dev.get("devnode"))))
        if dev.get("devnode"):
            at_node[dev["devnode"]] = (key, path)
    # a board kflash knew but udev did not show: registered, absent; a CAN
    # node or a bridge board is on the bus, as the session saw it
    nets = {d.get("iface"): d for d in ses.udev("enumerate_net") or []}
    for m in ses.board_metas():
        metas.append(m)
        if m.get("transport") in ("can", "bridge") and m.get("serial"):
            entry = entries.get(m.get("key"))
            pairs = can_board_from_meta(m, nets.get((entry or {}).get("interface")
                                                    or m.get("port")),
                                        entry, configs.get(m.get("key")))
            path = place_board(pairs, out_dir, "%s (its CAN node)" % m.get("key"))
            host.boards.append(simlib.resolve_board(path))
    # what else udev showed kflash (another board, a probe, a USB-serial
    # chip) is plugged in too, so `kflash list` sees the same host
    for dev in ses.udev() or []:
        if dev.get("by_id") in seen or dev.get("devnode") in seen:
            continue
        by_id = os.path.basename(dev.get("by_id") or "")
        entry = next((e for e in entries.values() if isinstance(e.get("pattern"), str)
                      and by_id and fnmatch.fnmatchcase(by_id, e["pattern"])), None)
        name = (entry or {}).get("key") or "udev-" + os.path.basename(dev.get("devnode") or "dev")
        pairs = board_from_dev(dev, {}, name, entry, configs.get(name))
        path = place_board(pairs, out_dir, "%s (udev's answer)" % ses.calls_path)
        host.boards.append(simlib.resolve_board(path))
        seen.update(filter(None, (dev.get("by_id"), dev.get("devnode"))))
        if dev.get("devnode"):
            at_node.setdefault(dev["devnode"], (name, path))

    found, missed = infer_faults(ses.calls, {k: v[0] for k, v in at_node.items()})
    for f in found:
        if f.kind == "board":
            with open(next(p for b, p in at_node.values() if b == f.board), "a") as bf:
                bf.write("# inferred from %s\n%s=%s\n" % (ses.calls_path, f.name, f.word))
    for f in found:
        sys.stderr.write("sim/printer: inferred from calls.jsonl: %s\n" % f)
    for m in missed:
        sys.stderr.write("sim/printer: not imitated: %s\n" % m)

    def finish():
        reg = doc if doc is not None else registry_from_boards(
            metas, ses.meta.get("settings"))
        reg, unit = sim_registry(reg, host.port, ses.meta.get("settings"))
        world = ses.moonraker()
        if world:
            host.moonraker(world)
        for u in filter(None, (unit, world.get("service"))):
            host.set_service(u, "active")
        for u in ses.units_inactive():
            host.set_service(u, "inactive")
        for f in found:
            if f.kind == "state":
                host.fault(f.name, f.word)
            elif f.kind == "signal":
                send_when(host, f.word, f.name)
        with open(os.path.join(host.config_dir, "devices.json"), "w") as f:
            json.dump(reg, f, indent=2)
        for key, text in configs.items():
            cd = os.path.join(host.config_dir, "configs", key)
            os.makedirs(cd, exist_ok=True)
            with open(os.path.join(cd, ".config"), "w") as f:
                f.write(text)

    return finish, ses.command(), ses.meta.get("exit")
