#!/usr/bin/python3
"""fuzz/make-seeds.py - writes the seed corpora of fixtures/fuzz/TARGET/
(seed-*; crash-* files are kept as they are) from what real runs saw:
the recordings in fixtures/recordings/ (devices.json, .config files,
Moonraker's answers, flashtool's and make flash's output, the sessions
themselves), Klipper's test configs (~/klipper/test/configs) and the
Katapult protocol as ~/katapult/scripts/flashtool.py frames it.

    /usr/bin/python3 fuzz/make-seeds.py

Each target's input format is in the first comment of fuzz/fuzz_TARGET.c.
"""
import base64
import glob
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "fuzz")
HOME = os.path.expanduser("~")


def text(v):
    """a recorded string: text, or {"b64": ...}"""
    if isinstance(v, dict) and "b64" in v:
        return base64.b64decode(v["b64"])
    return (v or "").encode()


def recordings():
    for d in sorted(glob.glob(os.path.join(ROOT, "fixtures/recordings/*/"))):
        calls = [json.loads(line) for line in open(d + "calls.jsonl")]
        yield os.path.basename(d.rstrip("/")), d, calls[1:]


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for old in glob.glob(os.path.join(d, "seed-" + name)):
        os.unlink(old)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear(target):
    for f in glob.glob(os.path.join(OUT, target, "seed-*")):
        os.unlink(f)


def unique(items):
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def reads(calls, suffix):
    return [text(c["ret"].get("data") or c["ret"].get("data_b64"))
            for c in calls if c["op"] == "read_file" and c["ret"].get("r") == 0
            and c["args"]["path"].endswith(suffix)]


def tool_runs(calls, word):
    """(argv, exit, output) of each child whose command line has word"""
    pids, out = {}, []
    for c in calls:
        if c["op"] == "spawn" and word in " ".join(c["args"]["argv"]):
            pids[c["ret"].get("pid")] = c["args"]["argv"]
        elif c["op"] == "wait" and c["args"]["pid"] in pids and "exit" in c["ret"]:
            lines = c["ret"].get("lines") or []
            ex = c["ret"]["exit"]
            if ex["kind"] != "running" or lines:
                out.append((pids[c["args"]["pid"]], ex,
                            b"\n".join(text(l) for l in lines) + b"\n"))
    return out


def how(ex):
    """tool.h's first byte for an end like ex"""
    if ex["kind"] == "exited":
        return {0: 0, 1: 1 << 3, 2: 2 << 3}.get(ex["code"], 0x20)
    return {"signaled": 4, "timed_out": 5, "interrupted": 6,
            "exec_failed": 7}.get(ex["kind"], 5)


def main():
    recs = list(recordings())
    for t in ("registry", "kconfig", "flashtool", "make_flash", "moonraker",
              "session", "can", "byid", "katapult", "can_node"):
        clear(t)

    # registry: every devices.json the recordings read, and hand edits
    regs = unique(r for _, _, c in recs for r in reads(c, "/devices.json"))
    for i, r in enumerate(regs):
        write("registry", "recorded-%d.json" % i, r)
    doc = json.loads(regs[0])
    doc["settings"]["moonraker_api_key"] = "0123456789abcdef"
    doc["settings"]["sessions"] = {"keep": 5}
    write("registry", "api-key.json", json.dumps(doc, indent=2).encode())
    write("registry", "empty.json", b'{"schema": 1}\n')
    write("registry", "newer.json", b'{"schema": 2, "boards": []}\n')
    write("registry", "cut.json", regs[0][:len(regs[0]) // 2])

    # kconfig: the configs the recordings built, Klipper's test configs
    for i, c in enumerate(unique(r for _, _, c in recs for r in reads(c, "/.config"))):
        write("kconfig", "recorded-%d.config" % i, c)
    for f in sorted(glob.glob(HOME + "/klipper/test/configs/*.config"))[::6]:
        write("kconfig", "klipper-" + os.path.basename(f), open(f, "rb").read())
    write("kconfig", "no-bootloader.config",
          b'CONFIG_MCU="stm32f446xx"\nCONFIG_FLASH_BOOT_ADDRESS=0x8000000\n'
          b'CONFIG_FLASH_APPLICATION_ADDRESS=0x8000000\n# CONFIG_USB_SERIAL is not set\r\n')

    # flashtool: what it printed in the recordings, and its own messages
    runs = [r for _, _, c in recs for r in tool_runs(c, "flashtool.py")]
    for i, (argv, ex, out) in enumerate(unique((tuple(a), json.dumps(e), o)
                                               for a, e, o in
                                               [(a, e, o) for a, e, o in runs])):
        write("flashtool", "recorded-%d" % i, bytes([how(json.loads(ex))]) + out)
    canned = {
        "not-katapult": (1 << 3, b"Detected USB device running Klipper\nRequesting USB "
                         b"bootloader for /dev/ttyACM0...\nWaiting for USB Reconnect...done\n"
                         b"Detected new USB Device: 1d50:614e Klipper stm32f446xx\n"
                         b"Device is not Katapult, exiting...\n"),
        "status-spaces": (0, b"Katapult Connected\nSoftware Version: v0.0.1\x00\x00\n"
                          b"Protocol Version: 1.1.0\nBlock Size: 64 bytes\n"
                          b"Application Start: 0x   0\nMCU type: lpc1769\n"
                          b"Status Request Complete\n"),
        "mismatch": (1 << 3, b"MCU returned by Katapult does not match MCU identified "
                     b"in klipper.bin.\nKatapult MCU: stm32f446xx\nKlipper Binary MCU: "
                     b"stm32g0b1xx\nERROR:root:Flash Tool Error\n"),
        "write-failed": (1 << 3, b"Flashing 'out/klipper.bin'...\n\n[####\n"
                         b"Flash write failed, flash address 0x8008400\n"
                         b"ERROR:root:Flash Tool Error\n"),
        "in-use": (1 << 3, b"Unable to open serial port: [Errno 16] could not open port "
                   b"/dev/ttyACM0: in use by another program\n"),
        "no-pyserial": (1 << 3, b"The pyserial python package was not found.\n"),
        "hang": (5, b"Attempting to connect to bootloader\n"),
    }
    for k, (b, out) in canned.items():
        write("flashtool", k, bytes([b]) + out)

    # make flash: the recorded ones, and flash_usb.py's and sudo's words
    runs = [r for _, _, c in recs for r in tool_runs(c, "flash FLASH_DEVICE")]
    for i, (argv, ex, out) in enumerate(runs[:4]):
        write("make_flash", "recorded-%d" % i, bytes([how(ex), 0]) + out)
    for k, b, s, out in (
        ("dfu-missing", 1 << 3, 1, b"  Flashing out/klipper.bin to /dev/ttyACM0\nEntering "
         b"bootloader on /dev/ttyACM0\nsudo: dfu-util: command not found\nFailed to flash "
         b"to /dev/ttyACM0: Error running dfu-util\nmake: *** [src/stm32/Makefile:84: flash] "
         b"Error 255\n"),
        ("sudo-password", 1 << 3, 1, b"sudo: a terminal is required to read the password; "
         b"either use the -S option\nmake: *** [flash] Error 255\n"),
        ("rp2040-none", 0, 3, b"Flashing out/klipper.uf2 to /dev/ttyACM0\n"
         b"No rp2040 in BOOTSEL mode was found\n"),
        ("libusb", 1 << 3, 7, b"lib/rp2040_flash/main.c:9:10: fatal error: libusb.h: No such "
         b"file or directory\nmake: *** [Makefile:11: rp2040_flash] Error 1\n"),
        ("katapult", 1 << 3, 0, b"Flashing out/klipper.bin to /dev/ttyACM0 via "
         b"lib/katapult/flashtool.py\nFlash write failed, flash address 0x8008000\n"),
    ):
        write("make_flash", k, bytes([b, s]) + out)

    # moonraker: the answers of one recorded printer, in fuzz_moonraker's order
    for name, _, calls in recs:
        ans = {}
        for c in calls:
            if c["op"] == "http_get" and c["ret"].get("r") == 0:
                u = c["args"]["url"]
                key = ("status" if "print_stats" in u else "info" if "system_info" in u
                       else "config" if "configfile" in u else "list" if u.endswith("/list")
                       else "mcu:" + u if "query?mcu" in u else None)
                if key and key not in ans:
                    ans[key] = text(c["ret"]["body"])
        if "status" not in ans:
            continue
        conf = unique(reads(calls, "moonraker.conf")) or [b"[server]\nport: 7125\n"]
        parts = [ans["status"], conf[0], ans.get("info", b""), ans.get("config", b""),
                 ans.get("list", b"")] + [v for k, v in sorted(ans.items())
                                          if k.startswith("mcu:")]
        write("moonraker", name, b"\x00" + b"\x00".join(parts))
    write("moonraker", "klippy-down", b"\x02" + b'{"error": {"code": 503, "message": '
          b'"Klippy Host not connected", "traceback": ""}}')

    # session: the small recordings whole, the first calls of the others
    for name, d, _ in recs:
        info = open(d + "session.json", "rb").read()
        lines = open(d + "calls.jsonl", "rb").read().splitlines(True)
        if sum(map(len, lines)) > 50000:
            lines = lines[:60]
        write("session", name, info + b"\x00" + b"".join(lines))

    # can: the recorded queries, ip's JSON and sysfs
    qs = [o for _, _, c in recs for (a, e, o) in tool_runs(c, "-q")]
    ip = (b'[{"ifname":"can0","operstate":"UP","linkinfo":{"info_kind":"can","info_data":'
          b'{"state":"ERROR-ACTIVE","bittiming":{"bitrate":1000000,"sample_point":"0.750"}}},'
          b'"txqlen":1024}]')
    for i, q in enumerate(unique(qs) or [b"Checking for Katapult nodes...\nDetected UUID: "
                                          b"0a1b2c3d4e5f, Application: Katapult\n"]):
        write("can", "query-%d" % i, q + b"\x00" + ip + b"\x00up\n\x001024\n\x00280\n")

    # byid: names as udev shows real boards
    for k, parts in {
        "klipper": ["usb-Klipper_stm32f446xx_3A0039000851313433343333-if00", "1d50",
                    "614e", "Klipper", "stm32f446xx", "3A0039000851313433343333",
                    "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0",
                    "usb-*_stm32f446xx_3A0039000851313433343333-if*", "stm32f446xx"],
        "katapult": ["usb-katapult_stm32h723xx_290016000651313433393235-if00", "1d50",
                     "6177", "katapult", "stm32h723xx", "290016000651313433393235",
                     "platform-3f980000.usb-usb-0:1.3:1.0",
                     "usb-*_stm32h723xx_12345-if*", "stm32h723xx",
                     "290016000651313433393235", "platform-3f980000.usb-usb-0:1.3:1.0"],
        "canboot": ["usb-CanBoot_rp2040_E66138935F4B2C28-if00", "1d50", "6177", "CanBoot",
                    "rp2040", "E66138935F4B2C28"],
        "kalico": ["usb-Kalico_stm32g0b1xx_4F0041000D50415833323520-if00", "1d50", "614e",
                   "Kalico", "stm32g0b1xx", "4F0041000D50415833323520"],
        "beacon": ["usb-Beacon_Beacon_RevH_FC3E2E5B5154354D38202020FF0A1A3A-if00", "04d8",
                   "e72b", "Beacon", "Beacon RevH", "FC3E2E5B5154354D38202020FF0A1A3A"],
        "cartographer": ["usb-Cartographer_614e_16000C000F43304253373820-if00", "1d50",
                         "614e", "Cartographer", "614e", "16000C000F43304253373820"],
        "ch340": ["usb-1a86_USB_Serial-if00-port0", "1a86", "7523", "", "USB Serial", ""],
        "disagree": ["usb-Klipper_stm32f446xx_3A0039000851313433343333-if00", "1d50", "614e",
                     "Klipper", "stm32f407xx", "3A0039000851313433343333"],
    }.items():
        write("byid", k, "\x00".join(parts).encode())

    # katapult: flashtool's frames (its _build_command), as it sends them
    def crc16(buf):
        crc = 0xffff
        for b in buf:
            b ^= crc & 0xff
            b ^= (b & 0x0f) << 4
            b &= 0xff
            crc = ((b << 8) | (crc >> 8)) ^ (b >> 4) ^ (b << 3)
        return crc & 0xffff

    def frame(cmd, payload=b""):
        body = bytes([cmd, len(payload) // 4]) + payload
        return b"\x01\x88" + body + struct.pack("<H", crc16(body)) + b"\x99\x03"

    blocks = b"".join(frame(0x12, struct.pack("<I", 0x08008000 + 64 * i) +
                            bytes([(i * 7 + j) & 0xff for j in range(64)]))
                      for i in range(4))
    reads_ = b"".join(frame(0x14, struct.pack("<I", 0x08008000 + 64 * i)) for i in range(4))
    flash = frame(0x90) + frame(0x11) + blocks + frame(0x13) + reads_
    write("katapult", "status", b"\x00" + frame(0x90) + frame(0x11))
    write("katapult", "flash", b"\x00" + flash + frame(0x15))
    write("katapult", "can-id", b"\x41" + frame(0x90) + frame(0x16) + frame(0x11))
    write("katapult", "garbage-resync", b"\x00\x00\x00\x17\x01\x88" + frame(0x11)[:-1] +
          b"\x42" + frame(0x11))
    write("katapult", "klipper-request", b"\x08~ \x1c Request Serial Bootloader!! ~" +
          frame(0x11))

    # can_node: admin frames and a Katapult stream on the node's id
    def cf(can_id, data, tick=False):
        return struct.pack(">H", can_id | (0x800 if tick else 0)) + bytes([len(data)]) + data

    uuid = bytes.fromhex("0a1b2c3d4e5f")
    stream = frame(0x90) + frame(0x11) + blocks[:80] + frame(0x13)
    chunks = b"".join(cf(0x100 + 2 * 4, stream[i:i + 8]) for i in range(0, len(stream), 8))
    write("can_node", "katapult", b"\x00" + cf(0x3f0, b"\x00") +
          cf(0x3f0, b"\x11" + uuid + b"\x04") + chunks + cf(0x100 + 2 * 4, frame(0x15)[:8])
          + cf(0x100 + 2 * 4, frame(0x15)[8:], True))
    write("can_node", "klipper-reboot", b"\x08" + cf(0x3f0, b"\x00") +
          cf(0x3f0, b"\x02" + uuid) + cf(0x3f0, b"\x00", True) * 6 +
          cf(0x3f0, b"\x11" + uuid + b"\x05") + cf(0x3f0, b"\x12"))


if __name__ == "__main__":
    sys.exit(main())
