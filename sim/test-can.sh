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

# start_bus ARGS...: a fresh bus, up when its socket is there
start_bus() {
	if [ -n "$BUSPID" ]; then
		kill "$BUSPID" 2>/dev/null
		wait "$BUSPID" 2>/dev/null
	fi
	rm -f "$KFLASH_SIM_CANBUS"
	"$BUS" "$@" 2>"$WORK/bus.err" &
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

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
