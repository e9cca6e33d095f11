#!/bin/bash
# test-can.sh - the simulated CAN bus: python3 processes with ordinary raw
# CAN sockets (socket.PF_CAN) under libkflash-simcan.so exchange frames
# through kflash-simcanbus, with bind, CAN_RAW_FILTER, the interface names
# and asyncio's add_reader working as on a kernel with AF_CAN; and the
# emulated boards on the bus answer Katapult's and Klipper's admin frames.
#
# Usage: [KFLASH_BUILD=build] sim/test-can.sh   (builds nothing)

if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${KFLASH_BUILD:-build}
BUS=$BUILD/kflash-simcanbus
LIB=$BUILD/libkflash-simcan.so
PY=python3
for f in "$BUS" "$LIB"; do
	if [ ! -e "$f" ]; then
		echo "FAIL: $f is not built (make)"
		exit 1
	fi
done
BUS=$(pwd)/$BUS
LIB=$(pwd)/$LIB
BUILD=$(cd "$BUILD" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-can.XXXXXX")
BUSPID=
cleanup() {
	[ -n "$BUSPID" ] && kill "$BUSPID" 2>/dev/null && wait "$BUSPID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok - $1"; }
not_ok() { fails=$((fails + 1)); echo "not ok - $1"; [ $# -gt 1 ] && sed 's/^/#   /' "$2"; }

export KFLASH_SIM_CANBUS=$WORK/bus.sock KFLASH_SIM_CAN_IFACES=can0,can1
# the probes' Katapult framing is the fakes' (sim/fake/lib/simfake.py)
export PYTHONPATH=$(pwd)/sim/fake/lib${PYTHONPATH:+:$PYTHONPATH}

# start_bus ARGS...: a fresh bus, up when its socket is there
start_bus() {
	if [ -n "$BUSPID" ]; then
		kill "$BUSPID" 2>/dev/null
		wait "$BUSPID" 2>/dev/null
	fi
	rm -f "$KFLASH_SIM_CANBUS"
	"$BUS" "$@" 2>>"$WORK/bus.err" &
	BUSPID=$!
	for _ in $(seq 200); do
		[ -S "$KFLASH_SIM_CANBUS" ] && return 0
		kill -0 "$BUSPID" 2>/dev/null || break
		sleep 0.01
	done
	echo "bus did not start:"; cat "$WORK/bus.err"
	return 1
}

# the helper every probe below uses: raw CAN sockets, nothing simulated
cat >"$WORK/cantool.py" <<'EOF'
import asyncio, socket, struct, sys, time
FMT = "<IB3x8s"

def sock(iface, filters=None):
    s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    if filters is not None:
        s.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER,
                     b"".join(struct.pack("<II", i, m) for i, m in filters))
    s.bind((iface,))
    return s

def frame(can_id, data=b""):
    return struct.pack(FMT, can_id, len(data), data)

def unpack(pkt):
    can_id, n, data = struct.unpack(FMT, pkt)
    return can_id, data[:n]

def recv_all(s, seconds, out):
    s.settimeout(seconds)
    end = time.time() + seconds
    while time.time() < end:
        try:
            pkt, addr = s.recvfrom(16)
        except socket.timeout:
            break
        cid, data = unpack(pkt)
        out.write("%x %s %s\n" % (cid, data.hex(), addr[0]))
        out.flush()

ADMIN, ANSWER = 0x3f0, 0x3f1

def query(s, seconds=0.5):
    """Who is unassigned: "UUID APP" lines, APP 01 Klipper / 11 Katapult."""
    s.send(frame(ADMIN, b"\x00"))
    s.settimeout(seconds)
    found = []
    end = time.time() + seconds
    while time.time() < end:
        try:
            cid, data = unpack(s.recv(16))
        except socket.timeout:
            break
        if cid == ANSWER and len(data) == 8 and data[0] == 0x20:
            found.append("%s %02x" % (data[1:7].hex(), data[7]))
    return sorted(found)

from simfake import crc16_mcrf4xx as crc16  # noqa: E402

def command(s, nodeid, cmd, payload=b"", seconds=2):
    """One Katapult command over the node's ids: (ack, payload words)."""
    body = bytes([cmd, len(payload) // 4]) + payload
    req = b"\x01\x88" + body + struct.pack("<H", crc16(body)) + b"\x99\x03"
    rx = 0x100 + 2 * nodeid
    for i in range(0, len(req), 8):
        s.send(frame(rx, req[i:i + 8]))
    got = b""
    s.settimeout(seconds)
    while len(got) < 8 or len(got) < 8 + got[3] * 4:
        cid, data = unpack(s.recv(16))
        if cid == rx + 1:
            got += data
    assert got[-2:] == b"\x99\x03" and crc16(got[2:-4]) == struct.unpack("<H", got[-4:-2])[0]
    return got[2], got[4:-4]
EOF

# ---- 1. no bus named: a CAN socket fails as the kernel makes it ----------
out=$(env -u KFLASH_SIM_CANBUS LD_PRELOAD="$LIB" "$PY" -c '
import socket
try:
    socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    print("opened")
except OSError as e:
    print("errno", e.errno)
' 2>&1)
native=$("$PY" -c '
import socket
try:
    socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW); print("opened")
except OSError as e:
    print("errno", e.errno)')
if [ "$out" = "$native" ]; then ok "without KFLASH_SIM_CANBUS a CAN socket behaves as natively ($native)"
else not_ok "without KFLASH_SIM_CANBUS: '$out', natively '$native'"; fi

start_bus || exit 1

# ---- 2. interface names and indexes, the same in every process -----------
out=$(LD_PRELOAD="$LIB" "$PY" -c '
import socket, fcntl, struct
print(socket.if_nametoindex("can0"), socket.if_nametoindex("can1"),
      socket.if_indextoname(101))
s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
r = fcntl.ioctl(s, 0x8933, struct.pack("16si12x", b"can1", 0))
print(struct.unpack("16si12x", r)[1])
try:
    s.bind(("can7",))
    print("bound can7")
except OSError as e:
    print("can7:", e.errno)
' 2>&1)
if [ "$out" = "$(printf '100 101 can1\n101\ncan7: 19')" ]; then
	ok "can0/can1 have stable indexes (if_nametoindex, SIOCGIFINDEX); an unknown interface is ENODEV"
else
	echo "$out" >"$WORK/out"; not_ok "interface names and indexes" "$WORK/out"
fi

# ---- 3. frames reach the other sockets whose filters pass them -----------
LD_PRELOAD="$LIB" "$PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import cantool
s = cantool.sock("can0", [(0x3f1, 0x7ff)])
print("ready", flush=True)
cantool.recv_all(s, 1.5, open(sys.argv[2], "w"))' "$WORK" "$WORK/filtered" >"$WORK/r1.ready" &
R1=$!
LD_PRELOAD="$LIB" "$PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import cantool
s = cantool.sock("can0")
print("ready", flush=True)
cantool.recv_all(s, 1.5, open(sys.argv[2], "w"))' "$WORK" "$WORK/all" >"$WORK/r2.ready" &
R2=$!
LD_PRELOAD="$LIB" "$PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import cantool
s = cantool.sock("can1")
print("ready", flush=True)
cantool.recv_all(s, 1.5, open(sys.argv[2], "w"))' "$WORK" "$WORK/other" >"$WORK/r3.ready" &
R3=$!
for _ in $(seq 300); do
	[ -s "$WORK/r1.ready" ] && [ -s "$WORK/r2.ready" ] && [ -s "$WORK/r3.ready" ] && break
	sleep 0.01
done
LD_PRELOAD="$LIB" "$PY" -c '
import sys, socket; sys.path.insert(0, sys.argv[1]); import cantool
s = cantool.sock("can0")
s.send(cantool.frame(0x3f0, b"\x00"))
s.send(cantool.frame(0x3f1, b"\x20\x01\x02\x03\x04\x05\x06\x11"))
s.sendall(cantool.frame(0x123 | socket.CAN_EFF_FLAG, b"\xaa"))
s.setblocking(False)
try:
    s.recv(16); print("got own frame")
except BlockingIOError:
    pass' "$WORK" >"$WORK/sender.out" 2>&1
wait $R1 $R2 $R3
if [ "$(cat "$WORK/filtered")" = "3f1 2001020304050611 can0" ]; then
	ok "a socket filtering 0x3f1/0x7ff gets only the 0x3f1 frame, with its interface as address"
else
	not_ok "filtered socket got other frames" "$WORK/filtered"
fi
if [ "$(cat "$WORK/all")" = "$(printf '3f0 00 can0\n3f1 2001020304050611 can0\n80000123 aa can0')" ]; then
	ok "an unfiltered socket gets all three frames in order, the extended id with its flag"
else
	not_ok "unfiltered socket" "$WORK/all"
fi
if [ ! -s "$WORK/other" ]; then ok "a socket bound to can1 gets nothing sent on can0"
else not_ok "can1 socket got can0 frames" "$WORK/other"; fi
if [ ! -s "$WORK/sender.out" ]; then ok "the sender does not get its own frames back"
else not_ok "sender" "$WORK/sender.out"; fi

# ---- 4. two-way exchange with asyncio's add_reader, as flashtool does ----
LD_PRELOAD="$LIB" "$PY" -c '
import sys, select; sys.path.insert(0, sys.argv[1]); import cantool
s = cantool.sock("can0", [(0x200, 0x7ff)])
print("ready", flush=True)
n = 0
while n < 50:
    r, _, _ = select.select([s], [], [], 3)
    if not r:
        break
    cid, data = cantool.unpack(s.recv(16))
    s.send(cantool.frame(0x201, bytes(b ^ 0xff for b in data)))
    n += 1' "$WORK" >"$WORK/echo.ready" 2>&1 &
E=$!
for _ in $(seq 300); do [ -s "$WORK/echo.ready" ] && break; sleep 0.01; done
LD_PRELOAD="$LIB" "$PY" -c '
import asyncio, sys, socket; sys.path.insert(0, sys.argv[1]); import cantool
async def main():
    loop = asyncio.get_running_loop()
    s = cantool.sock("can0", [(0x201, 0x7ff)])
    s.setblocking(False)
    q = asyncio.Queue()
    loop.add_reader(s.fileno(), lambda: q.put_nowait(s.recv(4096)))
    good = 0
    for i in range(50):
        data = bytes([i, i + 1, i + 2, 7, 6, 5, 4, 3])
        await loop.sock_sendall(s, cantool.frame(0x200, data))
        cid, back = cantool.unpack(await asyncio.wait_for(q.get(), 2))
        good += cid == 0x201 and back == bytes(b ^ 0xff for b in data)
    print("echoed", good)
asyncio.run(main())' "$WORK" >"$WORK/echo.out" 2>&1
wait $E
if [ "$(cat "$WORK/echo.out")" = "echoed 50" ]; then
	ok "50 request/answer pairs between an asyncio add_reader socket and a select() one"
else
	not_ok "asyncio exchange" "$WORK/echo.out"
fi

# ---- 5. boards on the bus: who answers Katapult's and Klipper's query ----
BOARDS=fixtures/boards
EVENTS=$WORK/events
start_bus --events "$EVENTS" --image-dir "$WORK" \
	--board "$BOARDS/ebb36-can.board,canbus_uuid=aabbccddeeff" \
	--board "$BOARDS/ebb36-can.board:katapult,name=kat,canbus_uuid=112233445566" \
	--board "$BOARDS/ebb36-can.board,name=busy,canbus_uuid=0a0b0c0d0e0f,assigned=1" \
	--board "$BOARDS/ebb36-can.board,name=far,canbus_uuid=f0f1f2f3f4f5,interface=can1" || exit 1
can() { LD_PRELOAD="$LIB" "$PY" -c "import sys; sys.path.insert(0, '$WORK'); from cantool import *
$1" >"$WORK/out" 2>&1; }
can 's = sock("can0", [(0x3f1, 0x7ff)]); print(*query(s), sep="\n")'
if [ "$(cat "$WORK/out")" = "$(printf '112233445566 11\naabbccddeeff 01')" ]; then
	ok "query: the unassigned Klipper node answers with app 01, the Katapult one with 11; the assigned one and the can1 one keep quiet"
else
	not_ok "query answers" "$WORK/out"
fi

# ---- 6. a Klipper node asked to reboot comes back as Katapult ------------
can 's = sock("can0", [(0x3f1, 0x7ff)])
s.send(frame(ADMIN, bytes.fromhex("02aabbccddeeff")))
time.sleep(0.5)
print(*query(s), sep="\n")'
if [ "$(cat "$WORK/out")" = "$(printf '112233445566 11\naabbccddeeff 11')" ] &&
   grep -q ' ebb36-can bootloader-request$' "$EVENTS" &&
   grep -A2 ' ebb36-can bootloader-request$' "$EVENTS" | grep -q ' ebb36-can enumerate katapult$'; then
	ok "a Klipper node sent 02 UUID reboots and answers the next query as Katapult (events bootloader-request, disconnect, enumerate katapult)"
else
	cat "$EVENTS" >>"$WORK/out"; not_ok "reboot into Katapult" "$WORK/out"
fi

# ---- 7. node id, CONNECT, GET_CANBUS_ID, a flash, COMPLETE ---------------
# a 128-byte image whose vector table the emulated CPU can start
"$PY" -c '
import struct, sys
img = struct.pack("<II", 0x20002000, 0x08002000 + 0x41) + bytes(range(120))
open(sys.argv[1], "wb").write(img)' "$WORK/app.bin"
can 's = sock("can0")
s.send(frame(ADMIN, b"\x12"))
s.send(frame(ADMIN, bytes.fromhex("11aabbccddeeff") + bytes([130])))
ack, p = command(s, 130, 0x11)
print("connect %02x block %d" % (ack, struct.unpack("<I", p[12:16])[0]))
ack, p = command(s, 130, 0x16)
print("canbus_id %02x %s" % (ack, p[4:10].hex()))
print("others", *query(s))
img = open("'"$WORK"'/app.bin", "rb").read()
for off in range(0, len(img), 64):
    ack, p = command(s, 130, 0x12, struct.pack("<I", 0x08002000 + off) + img[off:off + 64])
    print("block %02x" % ack)
ack, p = command(s, 130, 0x13)
print("eof %02x" % ack)
ack, p = command(s, 130, 0x15)
print("complete %02x" % ack)
time.sleep(0.5)
print("after", *query(s))'
want='connect a0 block 64
canbus_id a0 aabbccddeeff
others 112233445566 11
block a0
block a0
eof a0
complete a0
after 112233445566 11 aabbccddeeff 01'
if [ "$(cat "$WORK/out")" = "$want" ]; then
	ok "an assigned Katapult node takes CONNECT (block size 64), GET_CANBUS_ID (its UUID), two blocks, EOF, COMPLETE, and comes back as Klipper"
else
	printf 'want:\n%s\ngot:\n' "$want" >"$WORK/why"; cat "$WORK/out" >>"$WORK/why"
	not_ok "flash over CAN" "$WORK/why"
fi
if cmp -s "$WORK/app.bin" "$WORK/ebb36-can.bin"; then
	ok "the flashed image is in IMAGE_DIR/ebb36-can.bin, byte-exact"
else
	not_ok "image differs or is missing"
fi
got=$(awk '$3 == "ebb36-can" { $1 = ""; $2 = ""; $3 = ""; sub(/^ +/, ""); print }' "$EVENTS" | tr '\n' ',')
want='enumerate klipper,bootloader-request,disconnect klipper,enumerate katapult,write-start,flash-complete bytes=128,boot-app,disconnect katapult,enumerate klipper,'
if [ "$got" = "$want" ]; then
	ok "events: $want"
else
	echo "got: $got" >"$WORK/why"; not_ok "event order" "$WORK/why"
fi

# ---- 8. inside the simulated host: can0 in udev, the preload, fake ip ----
kill "$BUSPID" 2>/dev/null; wait "$BUSPID" 2>/dev/null; BUSPID=
SIMHOST=$BUILD/kflash-simhost
if ! command -v umockdev-wrapper >/dev/null 2>&1 || [ ! -x "$SIMHOST" ]; then
	echo "ok - the simulated host's CAN interfaces # SKIP no umockdev-wrapper or $SIMHOST"
else
	mkdir -p "$WORK/state"
	cat >"$WORK/inside.sh" <<'EOF'
echo "preload ${LD_PRELOAD%%:*}"
echo "can0 $(cat /sys/class/net/can0/operstate) $(cat /sys/class/net/can0/tx_queue_len) $(cat /sys/class/net/can0/type)"
echo "can1 $(cat /sys/class/net/can1/operstate) $(cat /sys/class/net/can1/tx_queue_len)"
udevadm info /sys/class/net/can0 | grep -x 'E: INTERFACE=can0'
python3 -c "import sys; sys.path.insert(0, '$WORK'); from cantool import *
print('can0', *query(sock('can0', [(0x3f1, 0x7ff)])))
print('can1', *query(sock('can1', [(0x3f1, 0x7ff)])))"
ip -details -json link show can1 | python3 -c 'import json, sys
d = json.load(sys.stdin)[0]
print("ip", d["ifname"], d["operstate"], d["txqlen"], d["linkinfo"]["info_data"]["bittiming"]["bitrate"])'
# a USB board still answers on its tty with both preloads in place
python3 -c "import os, sys, tty; sys.path.insert(0, '$WORK'); from cantool import crc16
import struct, select, time
fd = os.open('/dev/ttyACM0', os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
body = bytes([0x11, 0])
os.write(fd, b'\x01\x88' + body + struct.pack('<H', crc16(body)) + b'\x99\x03')
got, end = b'', time.time() + 3
while len(got) < 8 and time.time() < end:
    if select.select([fd], [], [], 0.2)[0]:
        got += os.read(fd, 512)
print('usb connect %02x' % got[2] if len(got) > 2 else 'usb no answer')"
EOF
	KFLASH_SIM_STATE=$WORK/state PATH=$(pwd)/sim/fake/bin:$PATH timeout 60 umockdev-wrapper "$SIMHOST" \
		--events "$WORK/events8" --image-dir "$WORK/img8" \
		--board "$BOARDS/ebb36-g0b1.board" \
		--board "$BOARDS/ebb36-can.board,canbus_uuid=aabbccddeeff" \
		--board "$BOARDS/ebb36-can.board,name=t2,canbus_uuid=112233445566,interface=can1,link=down,txqueuelen=10,bitrate=500000" \
		-- env WORK="$WORK" bash -c '. "$WORK/inside.sh"' >"$WORK/out" 2>&1
	want="preload $LIB
can0 up 128 280
can1 down 10
E: INTERFACE=can0
can0 aabbccddeeff 01
can1
ip can1 DOWN 10 500000
usb connect a0"
	if [ "$(cat "$WORK/out")" = "$want" ]; then
		ok "simhost with CAN boards: can0/can1 in udev and sysfs (operstate, tx_queue_len), the preload first, the nodes on can0, nothing on the down can1, the fake ip's bitrate, the USB board still served"
	else
		printf 'want:\n%s\ngot:\n' "$want" >"$WORK/why"; cat "$WORK/out" >>"$WORK/why"
		not_ok "simhost with CAN boards" "$WORK/why"
	fi
	if grep -q ' ebb36-can enumerate klipper$' "$WORK/events8" && [ -f "$WORK/state/can/can0" ]; then
		ok "simhost: the CAN nodes' events in its event log, the interfaces' state in \$KFLASH_SIM_STATE/can/"
	else
		cat "$WORK/events8" >"$WORK/why"; not_ok "simhost events/state" "$WORK/why"
	fi
fi

# the bus ends cleanly on SIGTERM: no sanitizer report, nothing left over
if [ -n "$BUSPID" ]; then kill "$BUSPID" 2>/dev/null; wait "$BUSPID" 2>/dev/null; BUSPID=; fi
if ! grep -q "Sanitizer\|runtime error" "$WORK/bus.err"; then
	ok "the bus ran and ended without a sanitizer report"
else
	not_ok "the bus's stderr" "$WORK/bus.err"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
