#!/bin/bash
# test-simboard.sh - drives kflash-simboard with Katapult's real, unmodified flashtool.py.
#
# Usage: [KATAPULT_DIR=/path/to/katapult] [SIMBOARD=build/kflash-simboard] sim/test-simboard.sh
# KATAPULT_DIR defaults to ~/katapult. Builds nothing. Exits 77 (skip) when
# flashtool.py or pyserial is missing.

# Callers may run it as "sh test-simboard.sh"; it needs bash (arrays).
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u

SIMBOARD=${SIMBOARD:-build/kflash-simboard}
PY=/usr/bin/python3
# the probes below speak the protocol with the fakes' own framing
export PYTHONPATH="$(cd "$(dirname "$0")/fake/lib" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
MCU=stm32f446xx
SERIAL=3A0039000851313433343333

KATAPULT_DIR=${KATAPULT_DIR:-$HOME/katapult}
if [ ! -f "$KATAPULT_DIR/scripts/flashtool.py" ]; then
	echo "SKIP: Katapult's flashtool.py not found (set KATAPULT_DIR to a Katapult checkout; looked for '${KATAPULT_DIR:-}/scripts/flashtool.py')"
	exit 77
fi
if ! "$PY" -c 'import serial' 2>/dev/null; then
	echo "SKIP: $PY has no pyserial (apt-get install python3-serial)"
	exit 77
fi
if [ ! -x "$SIMBOARD" ]; then
	echo "FAIL: $SIMBOARD is not built (set SIMBOARD or build it first)"
	exit 1
fi
FLASHTOOL=$KATAPULT_DIR/scripts/flashtool.py
SIMBOARD=$(cd "$(dirname "$SIMBOARD")" && pwd)/$(basename "$SIMBOARD")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-simboard.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASS=0
FAIL=0
DIR=
BOARD_PID=

# Forget a reaped child so cleanup never signals a recycled pid.
forget() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

ok() {
	echo "ok - $1"
	PASS=$((PASS + 1))
}

not_ok() {
	echo "not ok - $1"
	FAIL=$((FAIL + 1))
	local f
	for f in "$DIR"/flash.out "$DIR"/flash.err "$DIR"/probe.out "$DIR"/sim.log; do
		[ -s "$f" ] || continue
		echo "    --- $f"
		cat -v "$f" | tail -40 | sed 's/^/    | /'
	done
}

check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# Waits until PATH is a symlink to a tty other than OLD; prints the target.
wait_link() {
	local path=$1 old=${2:-} i t
	for i in $(seq 100); do
		t=$(readlink "$path" 2>/dev/null) && [ "$t" != "$old" ] && [ -c "$path" ] &&
			{ echo "$t"; return 0; }
		sleep 0.05
	done
	return 1
}

# Waits until the board log has announced MODE ("katapult"/"klipper") more
# than N times and the link is back: the pts number is often reused, so the
# link target alone cannot tell a re-enumeration.
wait_mode() {
	local mode=$1 n=$2 i
	for i in $(seq 100); do
		[ "$(grep -c "^kflash-simboard: .* $mode mode (" "$DIR/sim.log")" -gt "$n" ] &&
			[ -c "$DIR/tty" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_board NAME SIMBOARD-ARGS...: a fresh board in $WORK/NAME.
start_board() {
	DIR=$WORK/$1
	shift
	mkdir -p "$DIR"
	"$SIMBOARD" --mcu "$MCU" --serial "$SERIAL" --tty "$DIR/tty" \
		--image "$DIR/image.bin" "$@" 2>"$DIR/sim.log" &
	BOARD_PID=$!
	PIDS+=("$BOARD_PID")
	LINK=$(wait_link "$DIR/tty") || { not_ok "$(basename "$DIR"): board came up"; return 1; }
}

stop_board() {
	local sig=${1:-TERM} rc
	kill "-$sig" "$BOARD_PID" 2>/dev/null
	wait "$BOARD_PID"
	rc=$?
	forget "$BOARD_PID"
	[ "$rc" = 0 ] && [ ! -e "$DIR/tty" ] && [ ! -L "$DIR/tty" ]
}

# flash ARGS...: runs flashtool on the board's tty; output in flash.out/err.
flash() {
	timeout 60 "$PY" "$FLASHTOOL" -d "$DIR/tty" "$@" >"$DIR/flash.out" 2>"$DIR/flash.err"
}

programmed() {
	grep -q "^Programming Complete$" "$DIR/flash.out"
}

# mkfw FILE LINK-ADDRESS SIZE [STACK]: a firmware as a linker makes it for
# an application at LINK-ADDRESS: a Cortex-M vector table (initial stack
# pointer, a Thumb reset vector into the image), then random bytes. Named
# *.bin but not klipper.bin, so flashtool skips its dictionary check.
mkfw() {
	"$PY" - "$@" <<'EOF'
import os, struct, sys
path, link, size = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
sp = int(sys.argv[4], 0) if len(sys.argv) > 4 else 0x20020000
data = struct.pack('<II', sp, (link + 0x1c1) | 1) + os.urandom(size - 8)
open(path, 'wb').write(data)
EOF
}

# mkuf2 FILE SIZE: what Klipper's make writes to klipper.uf2 for an rp2040
# without a bootloader offset: 512-byte UF2 blocks of 256 data bytes.
mkuf2() {
	"$PY" - "$@" <<'EOF'
import os, struct, sys
path, size = sys.argv[1], int(sys.argv[2])
img, out = os.urandom(size), b''
n = (size + 255) // 256
for i in range(n):
    out += struct.pack('<IIIIIIII', 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000 + i * 256,
                       256, i, n, 0xE48BFF56) + img[i * 256:(i + 1) * 256].ljust(476, b'\0') \
           + struct.pack('<I', 0x0AB16F30)
open(path, 'wb').write(out)
EOF
}

mkfw "$WORK/fw.bin" 0x8008000 40960
mkfw "$WORK/odd.bin" 0x8008000 40001

# Katapult's BLOCK_SIZE has no Kconfig prompt: every build says 64, which
# is what flashtool then sends.
test_flash() {
	local rc
	start_board katapult --mode katapult || return
	flash -f "$WORK/fw.bin"
	rc=$?
	check "katapult: flashtool exits 0 with Programming Complete" \
		eval '[ $rc = 0 ] && programmed'
	check "katapult: flashtool saw block size 64, app 0x8008000, $MCU" \
		eval 'grep -q "^Block Size: 64 bytes$" "$DIR/flash.out" &&
		      grep -q "^Application Start: 0x8008000$" "$DIR/flash.out" &&
		      grep -q "^MCU type: $MCU$" "$DIR/flash.out" &&
		      grep -q "^Protocol Version: 1.1.0$" "$DIR/flash.out"'
	check "katapult: image equals the firmware byte for byte" \
		cmp -s "$WORK/fw.bin" "$DIR/image.bin"
	check "katapult: board reappears as klipper after COMPLETE" \
		wait_mode "klipper" 0
	check "katapult: SIGTERM exits 0 and removes the link" stop_board
}

test_block_size_64_only() {
	local bs rc
	DIR=$WORK/bs
	mkdir -p "$DIR"
	for bs in 128 256 512; do
		timeout 5 "$SIMBOARD" --mcu "$MCU" --serial x --tty "$DIR/t" --image "$DIR/i" \
			--block-size "$bs" 2>"$DIR/sim.log"
		rc=$?
		check "block size $bs: refused (exit 2): every Katapult build uses 64" \
			eval '[ $rc = 2 ] && grep -q "every Katapult build uses 64-byte blocks" "$DIR/sim.log" &&
			      [ ! -e "$DIR/t" ]'
	done
}

test_odd_size_padded() {
	start_board odd --mode katapult || return
	flash -f "$WORK/odd.bin"
	check "odd size: flashed" programmed
	"$PY" - "$WORK/odd.bin" "$DIR/image.bin" <<'EOF'
import sys
fw = open(sys.argv[1], 'rb').read()
img = open(sys.argv[2], 'rb').read()
pad = -len(fw) % 64
sys.exit(0 if img == fw + b'\xff' * pad else 1)
EOF
	check "odd size: image is the firmware padded with 0xff to the block" [ $? = 0 ]
	check "odd size: SIGINT exits 0 and removes the link" stop_board INT
}

# The page count in SEND_EOF's reply is the real port's page_write_count
# for a 40 KiB image: stm32 F2/F4 sectors are 16 KiB up to 0x08010000, then
# 64 KiB, then 128 KiB; H7 sectors 128 KiB; G0/G4 and F103xe pages 2 KiB,
# F042 pages 1 KiB; lpc176x sectors 4 KiB below 0x10000; the RP2040 counts
# every 256-byte page it programs (erasing 4 KiB sectors as it goes).
test_page_counts() {
	local mcu app pages rc fw
	while read -r mcu app pages; do
		fw=pages-$mcu
		mkfw "$WORK/$fw.bin" "$app" 40960 \
			"$(case $mcu in lpc*) echo 0x10008000 ;; *) echo 0x20020000 ;; esac)"
		start_board "$fw" --mcu "$mcu" --mode katapult --app-start "$app" || continue
		flash -f "$WORK/$fw.bin"
		rc=$?
		check "$mcu at $app: 40 KiB written as $pages pages, verified, board back as klipper" \
			eval '[ $rc = 0 ] && programmed && grep -qx "Write complete: $pages pages" "$DIR/flash.out" &&
			      cmp -s "$WORK/$fw.bin" "$DIR/image.bin" && wait_mode klipper 0'
		stop_board
	done <<'EOF'
stm32f446xx 0x8008000 3
stm32h723xx 0x8020000 1
stm32g0b1xx 0x8002000 20
stm32f103xe 0x8002000 20
stm32f042x6 0x8002000 40
lpc1769 0x4000 10
rp2040 0x10004000 160
EOF
	# A second, different image: the sectors it starts are erased again.
	start_board pages-again --mode katapult || return
	flash -f "$WORK/fw.bin" && wait_mode klipper 0 && flash -r && wait_mode katapult 0 &&
		flash -f "$WORK/odd.bin"
	rc=$?
	check "a second flash erases the F4 sectors it starts again (3 pages), image is the new one" \
		eval '[ $rc = 0 ] && grep -qx "Write complete: 3 pages" "$DIR/flash.out" &&
		      cmp -s <(head -c 40001 "$DIR/image.bin") "$WORK/odd.bin"'
	stop_board
}

# After COMPLETE Katapult loads the stack pointer and the reset vector from
# the application's vector table without looking at them; an image linked
# for another application address or a UF2 file faults the CPU, and the
# board never comes back.
test_boot_check() {
	local mcu app fw why rc bname
	mkfw "$WORK/at-20000.bin" 0x8020000 30000
	mkfw "$WORK/at-8000.bin" 0x8008000 30000
	mkuf2 "$WORK/klipper.uf2" 30000
	while read -r bname mcu app fw why; do
		start_board "$bname" --mcu "$mcu" --mode katapult --app-start "$app" || continue
		flash -f "$WORK/$fw"
		rc=$?
		sleep 1.5
		check "$bname: flashtool succeeds, but the board never comes back ($why)" \
			eval '[ $rc = 0 ] && programmed && ! grep -q " klipper mode (" "$DIR/sim.log" &&
			      [ ! -e "$DIR/tty" ] && grep -q "does not start ($why" "$DIR/sim.log"'
		stop_board
	done <<'EOF'
f446-image-for-0x8020000 stm32f446xx 0x8008000 at-20000.bin reset 0x080201c1
h723-image-for-0x8008000 stm32h723xx 0x8020000 at-8000.bin reset 0x080081c1
rp2040-uf2 rp2040 0x10004000 klipper.uf2 stack 0x0a324655
EOF
}

# flashtool primes only USB stm32 boards it finds in sysfs, never a bare
# pty; load it as a module (file untouched) and make it prime anyway. It
# throws away the first answer after a prime, so a board that did not answer
# the prime would cost CONNECT a 2 s time-out.
test_prime() {
	local rc
	start_board prime --mode katapult || return
	timeout 60 "$PY" - "$FLASHTOOL" "$DIR/tty" "$WORK/fw.bin" \
		>"$DIR/flash.out" 2>"$DIR/flash.err" <<'EOF'
import argparse, asyncio, importlib.util, sys
spec = importlib.util.spec_from_file_location("flashtool", sys.argv[1])
ft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ft)
ft.SerialSocket._has_double_buffering = lambda self, product: True
args = argparse.Namespace(device=sys.argv[2], baud=250000, interface="can0",
                          firmware=sys.argv[3], uuid=None, query=False,
                          verbose=True, request_bootloader=False, status=False)
sys.exit(asyncio.run(ft.main(args)))
EOF
	rc=$?
	check "prime: flashtool's prime frame is answered, CONNECT needs no retry" \
		eval '[ $rc = 0 ] && programmed && ! grep -q "timed out" "$DIR/flash.err" &&
		      grep -q "command 0x90: unknown: error" "$DIR/sim.log"'
	check "prime: image equals the firmware" cmp -s "$WORK/fw.bin" "$DIR/image.bin"
	stop_board
}

test_klipper_serial_request() {
	local rc
	start_board klipper-r --mode klipper || return
	flash -r
	rc=$?
	check "klipper -r: flashtool sends the serial request, exits 0" \
		eval '[ $rc = 0 ] && grep -q "^Bootloader Request Complete$" "$DIR/flash.out"'
	check "klipper -r: board re-enumerates as katapult" wait_mode katapult 0
	flash -f "$WORK/fw.bin"
	rc=$?
	check "klipper -r: then flashes" eval '[ $rc = 0 ] && programmed'
	check "klipper -r: image equals the firmware" cmp -s "$WORK/fw.bin" "$DIR/image.bin"
	stop_board
}

# What kflash (or flashtool on a real USB tty) does: open, 1200 baud, close.
set_1200() {
	"$PY" - "$1" <<'EOF'
import os, sys, termios
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
t = termios.tcgetattr(fd)
t[4] = t[5] = termios.B1200
termios.tcsetattr(fd, termios.TCSANOW, t)
os.close(fd)
EOF
}

test_klipper_1200() {
	local rc
	start_board klipper-1200 --mode klipper || return
	set_1200 "$DIR/tty"
	check "klipper 1200 baud: board re-enumerates as katapult" \
		eval 'wait_mode katapult 0 && grep -q "bootloader request (1200 baud)" "$DIR/sim.log"'
	flash -s
	rc=$?
	check "klipper 1200 baud: flashtool -s connects to katapult" \
		eval '[ $rc = 0 ] && grep -q "^Katapult Connected$" "$DIR/flash.out" &&
		      grep -q "^Status Request Complete$" "$DIR/flash.out"'
	stop_board
}

test_fault_no_bootloader() {
	start_board no-bl --mode klipper --fault no-bootloader || return
	set_1200 "$DIR/tty"
	sleep 1.2
	check "fault no-bootloader: 1200 baud is ignored" \
		eval '[ "$(readlink "$DIR/tty")" = "$LINK" ] &&
		      grep -q "ignored: fault no-bootloader" "$DIR/sim.log"'
	stop_board
}

test_fault_corrupt_readback() {
	local rc
	start_board corrupt --mode katapult --fault corrupt-readback || return
	flash -f "$WORK/fw.bin"
	rc=$?
	check "fault corrupt-readback: flashtool fails the verify" \
		eval '[ $rc = 1 ] && grep -q "Checksum mismatch" "$DIR/flash.err" && ! programmed'
	stop_board
}

test_in_use() {
	local holder rc
	start_board in-use --mode katapult || return
	"$PY" -c 'import sys, time; f = open(sys.argv[1], "rb", buffering=0); time.sleep(30)' \
		"$DIR/tty" &
	holder=$!
	PIDS+=("$holder")
	sleep 0.3
	flash -f "$WORK/fw.bin"
	rc=$?
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	forget "$holder"
	check "in use: flashtool refuses a tty another process holds open" \
		eval '[ $rc = 1 ] && grep -q "in use by another program" "$DIR/flash.out" &&
		      grep -q "^Process ID: $holder$" "$DIR/flash.out"'
	stop_board
}

# Byte-level answers flashtool does not exercise on a bare pty.
test_protocol_probe() {
	start_board probe --mode katapult --app-start 0x8004000 \
		--version v0.0.1-abc || return
	"$PY" - "$DIR/tty" >"$DIR/probe.out" 2>&1 <<'EOF'
import os, select, struct, sys, termios, tty, time

from simfake import build_frame as frame, crc16_mcrf4xx as crc16

fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)

def read_for(secs):
    buf, end = b'', time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if r:
            buf += os.read(fd, 4096)
    return buf

def frames(buf):
    out = []
    while buf:
        assert buf[:2] == b'\x01\x88', buf.hex()
        n = 8 + buf[3] * 4
        f, buf = buf[:n], buf[n:]
        assert f[-2:] == b'\x99\x03', f.hex()
        assert struct.unpack('<H', f[-4:-2])[0] == crc16(f[2:-4]), f.hex()
        out.append(f)
    return out

def expect(name, req, codes):
    os.write(fd, req)
    got = frames(read_for(0.3))
    ok = [f[2] for f in got] == codes
    print(('ok   ' if ok else 'FAIL ') + name + ': ' + ' '.join(f.hex() for f in got))
    return got if ok else None

fails = 0
# flashtool's prime frame: command 0x90, no payload -> one ERROR frame.
got = expect('prime 0x90 -> error f2, n=0', frame(0x90), [0xf2])
fails += got is None or got[0] != b'\x01\x88\xf2\x00' + struct.pack('<H', crc16(b'\xf2\x00')) + b'\x99\x03'
got = expect('connect', frame(0x11), [0xa0])
if got:
    p = got[0][4:-4]
    want = (struct.pack('<IIII', 0x11, 0x00010100, 0x8004000, 64)
            + b'stm32f446xx\0' + b'\0\0\0\0' + b'v0.0.1-abc\0\0')
    print('connect payload ' + ('ok' if p == want else 'FAIL ' + p.hex()))
    fails += p != want
    fails += p[4:8] != b'\x00\x01\x01\x00'
else:
    fails += 1
# Garbage, then a valid request: one nack for the whole run, then the ack.
got = expect('garbage run -> one nack, then ack', b'\x55' * 20 + frame(0x11), [0xf1, 0xa0])
fails += got is None
fails += expect('GET_CANBUS_ID on USB -> error', frame(0x16), [0xf2]) is None
fails += expect('SEND_BLOCK wrong size -> error', frame(0x12, struct.pack('<I', 0x8004000) + b'\0' * 32), [0xf2]) is None
fails += expect('SEND_BLOCK below app start -> error', frame(0x12, struct.pack('<I', 0x8000000) + b'\0' * 64), [0xf2]) is None
fails += expect('SEND_BLOCK unaligned -> error', frame(0x12, struct.pack('<I', 0x8004004) + b'\0' * 64), [0xf2]) is None
got = expect('SEND_BLOCK ok echoes address', frame(0x12, struct.pack('<I', 0x8004000) + bytes(range(64))), [0xa0])
fails += got is None or got[0][4:12] != struct.pack('<II', 0x12, 0x8004000)
got = expect('REQUEST_BLOCK reads it back', frame(0x14, struct.pack('<I', 0x8004000)), [0xa0])
fails += got is None or got[0][4:-4] != struct.pack('<II', 0x14, 0x8004000) + bytes(range(64))
got = expect('SEND_EOF -> page count', frame(0x13), [0xa0])
fails += got is None or got[0][4:12] != struct.pack('<II', 0x13, 1)
extra = read_for(0.5)
print(('ok   ' if not extra else 'FAIL ') + 'nothing unsolicited ' + extra.hex())
fails += bool(extra)
os.close(fd)
sys.exit(1 if fails else 0)
EOF
	check "protocol: prime, connect layout, nack, errors, blocks, no unsolicited bytes" [ $? = 0 ]
	stop_board
}

# Katapult's command_find_block() drops bytes up to the next 01, not past
# it: a bad frame that starts with 01 is read again on every pass, so after
# its nack the board answers nothing, not even a valid CONNECT.
test_resync_stall() {
	local what rc
	for what in bad-crc lone-01 too-long; do
		start_board "stall-$what" --mode katapult || return
		"$PY" - "$DIR/tty" "$what" >"$DIR/probe.out" 2>&1 <<'EOF'
import os, select, struct, sys, time, tty

from simfake import build_frame as frame, crc16_mcrf4xx as crc16

fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)

def read_for(secs):
    buf, end = b'', time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if r:
            buf += os.read(fd, 4096)
    return buf

bad = {'bad-crc': frame(0x11)[:-4] + b'\0\0\x99\x03',
       'lone-01': b'\x01',
       # a SEND_BLOCK with a 128-byte block: 140 bytes, over MESSAGE_MAX
       'too-long': frame(0x12, struct.pack('<I', 0x8008000) + b'\0' * 128)}[sys.argv[2]]
os.write(fd, frame(0x11))
first = read_for(0.3)
os.write(fd, bad + frame(0x11))
second = read_for(0.5)
os.write(fd, frame(0x11))
third = read_for(0.5)
print('first', first.hex())
print('second', second.hex())
print('third', third.hex())
nack = b'\x01\x88\xf1\x00' + struct.pack('<H', crc16(b'\xf1\x00')) + b'\x99\x03'
sys.exit(0 if first[2:3] == b'\xa0' and second == nack and third == b'' else 1)
EOF
		rc=$?
		check "resync ($what): one nack, then no answer to anything (Katapult stalls)" \
			eval '[ $rc = 0 ] && grep -q "stalled" "$DIR/sim.log"'
		stop_board
	done
}

test_bad_args() {
	local rc
	DIR=$WORK/args
	mkdir -p "$DIR"
	"$SIMBOARD" --serial x --tty "$DIR/t" --image "$DIR/i" 2>"$DIR/sim.log"
	rc=$?
	check "args: missing --mcu exits 2 with a message" \
		eval '[ $rc = 2 ] && grep -q -- "--mcu is required" "$DIR/sim.log"'
	"$SIMBOARD" --mcu m --serial x --tty "$DIR/t" --image "$DIR/i" --block-size 100 2>"$DIR/sim.log"
	rc=$?
	check "args: bad --block-size exits 2" eval '[ $rc = 2 ] && grep -q "bad --block-size" "$DIR/sim.log"'
	"$SIMBOARD" --mcu m --serial x --tty "$DIR/t" --image "$DIR/i" --mode dfu 2>"$DIR/sim.log"
	rc=$?
	check "args: bad --mode exits 2" eval '[ $rc = 2 ] && grep -q "bad --mode" "$DIR/sim.log"'
	timeout 5 "$SIMBOARD" --mcu atmega2560 --serial x --tty "$DIR/t" --image "$DIR/i" 2>"$DIR/sim.log"
	rc=$?
	check "args: an MCU Katapult does not run on exits 2" \
		eval '[ $rc = 2 ] && grep -q "not one Katapult runs on" "$DIR/sim.log"'
	timeout 5 "$SIMBOARD" --mcu rp2040 --serial x --tty "$DIR/t" --image "$DIR/i" --app-start 0x8008000 2>"$DIR/sim.log"
	rc=$?
	check "args: an application start outside the chip's flash exits 2" \
		eval '[ $rc = 2 ] && grep -q "outside the chip.s flash" "$DIR/sim.log"'
	touch "$DIR/t"
	timeout 5 "$SIMBOARD" --mcu "$MCU" --serial x --tty "$DIR/t" --image "$DIR/i" 2>"$DIR/sim.log"
	rc=$?
	check "args: refuses to replace a file that is not a symlink" \
		eval '[ $rc = 1 ] && [ -f "$DIR/t" ] && [ ! -L "$DIR/t" ]'
}

SECONDS=0
test_flash
test_block_size_64_only
test_odd_size_padded
test_page_counts
test_boot_check
test_prime
test_klipper_serial_request
test_klipper_1200
test_fault_no_bootloader
test_fault_corrupt_readback
test_in_use
test_protocol_probe
test_resync_stall
test_bad_args

echo "($SECONDS s)"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
