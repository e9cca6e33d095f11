#!/bin/bash
# test-simhost.sh - checks kflash-simhost: the boards enumerate through libudev with udev's properties and links, a bootloader request re-enumerates a board into Katapult and back, the control FIFO unplugs and plugs boards, and after_complete= decides what a board does after COMPLETE.
#
# Usage: [SIMHOST=build/kflash-simhost] [KATAPULT_DIR=/path/to/katapult] sim/test-simhost.sh
# KATAPULT_DIR defaults to ~/katapult.
# Builds nothing. Exits 77 (skip) with "SKIP: reason" when umockdev cannot
# run here; the flashtool.py and pyserial checks skip alone when those are
# missing. Ends with "test-simhost: N passed, N failed, N skipped".
set -u
# the control FIFO defaults to $KFLASH_SIM_STATE/simhost.ctl: not here
unset KFLASH_SIM_STATE KFLASH_SIM_CONTROL

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIMHOST=${SIMHOST:-$ROOT/build/kflash-simhost}
PY=/usr/bin/python3
F446=3A0039000851313433343333
H723=29001C000451313236343430
G0B1=1D0028000A50425539393020
F103=33FFDA054E43363431571843
RP2040=E6626005A7651729
BEACON=5C1E6E1A5150484153202020FF0C2A3B
BYPATH=platform-fd500000.pcie-pci-0000:01:00.0
KATAPULT_DIR=${KATAPULT_DIR:-$HOME/katapult}

if ! command -v umockdev-wrapper >/dev/null 2>&1; then
	echo "SKIP: umockdev-wrapper not found (apt-get install umockdev)"
	exit 77
fi
if [ ! -x "$PY" ]; then
	echo "SKIP: $PY not found; the libudev probe is a python3 ctypes script"
	exit 77
fi
if [ ! -x "$SIMHOST" ]; then
	echo "FAIL: $SIMHOST is not built (set SIMHOST or build it first)"
	exit 1
fi
SIMHOST=$(cd "$(dirname "$SIMHOST")" && pwd)/$(basename "$SIMHOST")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test-simhost.XXXXXX")
cleanup() {
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixtures are copied, never used in place.
mkdir -p "$WORK/boards"
cp "$ROOT"/fixtures/boards/*.board "$WORK/boards/"
B=$WORK/boards

PASS=0
FAIL=0
SKIP=0
ok() {
	echo "ok - $1"
	PASS=$((PASS + 1))
}
not_ok() {
	echo "not ok - $1"
	FAIL=$((FAIL + 1))
	if [ -n "${2:-}" ] && [ -f "$2" ]; then
		sed 's/^/#   /' "$2" | head -40
	fi
}
skip() {
	echo "ok - $1 # SKIP $2"
	SKIP=$((SKIP + 1))
}
# check NAME LOG CMD...: passes when CMD succeeds; shows LOG otherwise.
check() {
	local name=$1 log=$2
	shift 2
	if "$@"; then ok "$name"; else not_ok "$name" "$log"; fi
}

# simhost OUT BOARD-ARGS... -- CMD...: runs CMD in a simulated host; its
# output (and simhost's) goes to OUT, the events to OUT.events.
simhost() {
	local out=$1
	shift
	rm -f "$out.events"
	timeout 60 umockdev-wrapper "$SIMHOST" --events "$out.events" --image-dir "$WORK/img" "$@" >"$out" 2>&1
}

cat >"$WORK/probe.py" <<'EOF'
# Looks at the simulated host the way kflash does: libudev (ctypes, no
# pyudev), /dev/serial links and the tty itself.
import ctypes, fcntl, os, select, stat, struct, sys, termios, time

u = ctypes.CDLL("libudev.so.1")
V, S, I = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
for name, res, args in [
    ("udev_new", V, []), ("udev_enumerate_new", V, [V]),
    ("udev_enumerate_add_match_subsystem", I, [V, S]),
    ("udev_enumerate_scan_devices", I, [V]),
    ("udev_enumerate_get_list_entry", V, [V]),
    ("udev_list_entry_get_next", V, [V]), ("udev_list_entry_get_name", S, [V]),
    ("udev_list_entry_get_value", S, [V]),
    ("udev_device_new_from_syspath", V, [V, S]),
    ("udev_device_get_properties_list_entry", V, [V]),
    ("udev_device_get_devnode", S, [V]), ("udev_device_get_driver", S, [V]),
    ("udev_device_get_subsystem", S, [V]), ("udev_device_get_action", S, [V]),
    ("udev_device_get_property_value", S, [V, S]),
    ("udev_device_get_parent_with_subsystem_devtype", V, [V, S, S]),
    ("udev_device_get_sysattr_value", S, [V, S]),
    ("udev_monitor_new_from_netlink", V, [V, S]),
    ("udev_monitor_filter_add_match_subsystem_devtype", I, [V, S, S]),
    ("udev_monitor_enable_receiving", I, [V]), ("udev_monitor_get_fd", I, [V]),
    ("udev_monitor_receive_device", V, [V]), ("udev_device_unref", V, [V])]:
    fn = getattr(u, name)
    fn.restype, fn.argtypes = res, args
ud = u.udev_new()

def s(b):
    return b.decode() if b is not None else "-"

def entries(e):
    while e:
        yield e
        e = u.udev_list_entry_get_next(e)

def dump():
    en = u.udev_enumerate_new(ud)
    u.udev_enumerate_add_match_subsystem(en, b"tty")
    u.udev_enumerate_scan_devices(en)
    for e in entries(u.udev_enumerate_get_list_entry(en)):
        d = u.udev_device_new_from_syspath(ud, u.udev_list_entry_get_name(e))
        node = s(u.udev_device_get_devnode(d))
        for p in entries(u.udev_device_get_properties_list_entry(d)):
            print(node, "E", s(u.udev_list_entry_get_name(p)) + "=" + s(u.udev_list_entry_get_value(p)))
        usb = u.udev_device_get_parent_with_subsystem_devtype(d, b"usb", b"usb_device")
        if usb:
            print(node, "USB", "DRIVER=" + s(u.udev_device_get_driver(usb)))
            for k in ("DEVTYPE", "BUSNUM", "DEVNUM"):
                print(node, "USB", k + "=" + s(u.udev_device_get_property_value(usb, k.encode())))
            for a in ("idVendor", "idProduct", "manufacturer", "product", "serial", "busnum", "devnum"):
                print(node, "USB", a + "=" + s(u.udev_device_get_sysattr_value(usb, a.encode())))
        intf = u.udev_device_get_parent_with_subsystem_devtype(d, b"usb", b"usb_interface")
        if intf:
            print(node, "INTF", "DRIVER=" + s(u.udev_device_get_driver(intf)))
            print(node, "INTF", "bInterfaceNumber=" + s(u.udev_device_get_sysattr_value(intf, b"bInterfaceNumber")))
        st = os.stat(node)
        print(node, "STAT", "char" if stat.S_ISCHR(st.st_mode) else "other",
              "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    for d in ("/dev/serial/by-id", "/dev/serial/by-path"):
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            t = os.readlink(p)
            print("LINK", p, t, os.path.normpath(os.path.join(d, t)))

def links():
    try:
        return sorted(os.listdir("/dev/serial/by-id"))
    except FileNotFoundError:
        return []

def node_of(pattern):
    for n in links():
        if pattern in n:
            return os.path.normpath(os.path.join("/dev/serial/by-id", os.readlink("/dev/serial/by-id/" + n)))
    return None

# Run TRIGGER with a libudev monitor listening; print the tty events seen
# until a by-id link matching WANT exists (with GONE: none does) plus a
# moment, or SECS pass. TAG prefixes the lines.
def watch(trigger, want, secs, gone=False, tag=""):
    mon = u.udev_monitor_new_from_netlink(ud, b"udev")
    u.udev_monitor_filter_add_match_subsystem_devtype(mon, b"tty", None)
    u.udev_monitor_enable_receiving(mon)
    fd = u.udev_monitor_get_fd(mon)
    t0 = time.monotonic()
    trigger()
    found = None
    while time.monotonic() - t0 < secs:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            d = u.udev_monitor_receive_device(mon)
            if d:
                print(tag + "EV", s(u.udev_device_get_action(d)), s(u.udev_device_get_subsystem(d)),
                      s(u.udev_device_get_devnode(d)), s(u.udev_device_get_property_value(d, b"ID_SERIAL")),
                      s(u.udev_device_get_property_value(d, b"ID_MODEL_ID")), flush=True)
                u.udev_device_unref(d)
        if found is None and any(want in n for n in links()) != gone:
            found = time.monotonic()
            print(tag + ("GONE" if gone else "APPEARED") + " %.3f" % (found - t0), flush=True)
        if found is not None and time.monotonic() - found > 0.2:
            break
    print(tag + "LINKS", " ".join(links()), flush=True)

def control(*lines):
    # one write per piece, as a scenario's "echo ... > FIFO" does
    fd = os.open(os.environ["KFLASH_SIM_CONTROL"], os.O_WRONLY)
    for l in lines:
        os.write(fd, l.encode())
        time.sleep(0.05)
    os.close(fd)

def holder_check(holder, tag):
    try:
        print(tag + "HOLDER_READ", len(os.read(holder, 16)))
    except OSError as e:
        print(tag + "HOLDER_READ_ERRNO", e.errno)
    try:
        fcntl.ioctl(holder, termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR))
        print(tag + "HOLDER_IOCTL ok")
    except OSError as e:
        print(tag + "HOLDER_IOCTL_ERRNO", e.errno)
    os.close(holder)

def pyserial_1200(node):
    import serial
    p = serial.Serial(node, 250000)
    p.baudrate = 1200
    p.close()

def raw_1200(node):
    # what Klipper's flash_usb.py does: DTR up, 1200 baud, DTR down, close
    f = open(node, "rb")
    fd = f.fileno()
    fcntl.ioctl(fd, termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR))
    t = termios.tcgetattr(fd)
    t[4] = t[5] = termios.B1200
    termios.tcsetattr(fd, termios.TCSANOW, t)
    fcntl.ioctl(fd, termios.TIOCMBIC, struct.pack("I", termios.TIOCM_DTR))
    f.close()

def crc16(data):
    crc = 0xffff
    for b in data:
        b ^= crc & 0xff
        b ^= (b << 4) & 0xff
        crc = ((b << 8) | (crc >> 8)) ^ (b >> 4) ^ (b << 3)
        crc &= 0xffff
    return crc

def complete(node):
    # a Katapult COMPLETE frame; the answer must arrive before the reset
    fd = os.open(node, os.O_RDWR | os.O_NOCTTY)
    t = termios.tcgetattr(fd)
    t[3] = 0
    termios.tcsetattr(fd, termios.TCSANOW, t)
    body = bytes([0x15, 0])
    os.write(fd, b"\x01\x88" + body + struct.pack("<H", crc16(body)) + b"\x99\x03")
    buf, end = b"", time.monotonic() + 2
    while time.monotonic() < end and len(buf) < 8:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            buf += os.read(fd, 64)
    print("REPLY", buf.hex())
    os.close(fd)

mode = sys.argv[1]
if mode == "dump":
    dump()
elif mode == "ioctl":
    import serial
    p = serial.Serial(sys.argv[2], 250000)
    t = termios.tcgetattr(p.fd)
    print("BAUD", p.baudrate, "CBAUD_IS_BOTHER", (t[2] & termios.CBAUD) == 0o010000)
    bits = struct.unpack("I", fcntl.ioctl(p.fd, termios.TIOCMGET, struct.pack("I", 0)))[0]
    print("DTR_AFTER_OPEN", int(bool(bits & termios.TIOCM_DTR)))
    p.dtr = False
    bits = struct.unpack("I", fcntl.ioctl(p.fd, termios.TIOCMGET, struct.pack("I", 0)))[0]
    print("DTR_AFTER_CLEAR", int(bool(bits & termios.TIOCM_DTR)))
    p.close()
elif mode in ("pyserial-1200", "raw-1200", "complete"):
    want, pattern = sys.argv[2], sys.argv[3]
    node = node_of(pattern)
    print("NODE", node)
    # raw-1200 also keeps the old tty open in a second client, which must
    # see the unplug. (Not with pyserial: its close must be the last close,
    # for HUPCL to drop DTR, which Klipper wants low with 1200 baud.)
    holder = None
    if mode == "raw-1200":
        holder = os.open(node, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    trig = {"pyserial-1200": pyserial_1200, "raw-1200": raw_1200, "complete": complete}[mode]
    watch(lambda: trig(node), want, float(sys.argv[4]))
    if holder is not None:
        holder_check(holder, "")
elif mode == "control":
    # unplug, plug and mode through the FIFO, each watched through libudev
    board, klipper, katapult = sys.argv[2], sys.argv[3], sys.argv[4]
    node = node_of(klipper)
    holder = os.open(node, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    control("bogus command\n", "unplug no-such-board\n", "mode %s bootrom\n" % board)
    watch(lambda: control("unplug %s\n" % board), klipper, 3, gone=True, tag="unplug: ")
    holder_check(holder, "unplug: ")
    print("unplug: NODE_EXISTS", os.path.exists(node))
    # a command split over two writes still counts once it is whole
    watch(lambda: control("pl", "ug %s\n" % board), klipper, 3, tag="plug: ")
    watch(lambda: control("mode %s katapult\n" % board), katapult, 3, tag="mode: ")
    # an unplugged board comes back in the mode it was in
    watch(lambda: control("unplug %s\n" % board), katapult, 3, gone=True, tag="unplug2: ")
    watch(lambda: control("plug %s\n" % board), katapult, 3, tag="plug2: ")
elif mode == "settle":
    # COMPLETE, then whatever the board does within SECS
    node = node_of(sys.argv[2])
    watch(lambda: complete(node), "never-appears", float(sys.argv[3]))
EOF
PROBE="$PY $WORK/probe.py"

# mkfw FILE LINK-ADDRESS SIZE [STACK]: a firmware linked for an application
# at LINK-ADDRESS: a Cortex-M vector table (stack pointer, Thumb reset
# vector into the image), then random bytes.
mkfw() {
	"$PY" - "$@" <<'EOF'
import os, struct, sys
path, link, size = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
sp = int(sys.argv[4], 0) if len(sys.argv) > 4 else 0x20020000
open(path, 'wb').write(struct.pack('<II', sp, (link + 0x1c1) | 1) + os.urandom(size - 8))
EOF
}

# --- can umockdev run here at all? -----------------------------------------
simhost "$WORK/smoke" --board "$B/octopus-f446.board" -- true
rc=$?
if [ $rc -eq 77 ] || grep -q "SKIP:" "$WORK/smoke"; then
	echo "SKIP: $(grep -m1 SKIP: "$WORK/smoke" | sed 's/.*SKIP: //')"
	exit 77
fi
if [ $rc -ne 0 ]; then
	echo "not ok - a testbed with one board runs 'true'"
	sed 's/^/#   /' "$WORK/smoke"
	echo "test-simhost: 0 passed, 1 failed, 0 skipped"
	exit 1
fi
ok "a testbed with one board runs 'true' and exits 0"

# --- enumeration through libudev --------------------------------------------
ALL=()
for f in "$B"/*.board; do
	ALL+=(--board "$f")
done
simhost "$WORK/dump" "${ALL[@]}" -- $PROBE dump
check "all fixtures load and the probe runs" "$WORK/dump" [ $? -eq 0 ]
D=$WORK/dump

# node SERIAL: the devnode whose ID_SERIAL is SERIAL
node() {
	awk -v want="ID_SERIAL=$1" '$2 == "E" && $3 == want { print $1; exit }' "$D"
}
# has NODE KIND KEY=VALUE...: every line present in the dump
has() {
	local n=$1 kind=$2 kv
	shift 2
	[ -n "$n" ] || return 1
	for kv in "$@"; do
		grep -qxF "$n $kind $kv" "$D" || { echo "#   missing: $n $kind $kv"; return 1; }
	done
}
# link NAME NODE: /dev/serial/NAME is a relative link that resolves to NODE
link() {
	local tty=${2#/dev/}
	grep -qxF "LINK /dev/serial/$1 ../../$tty $2" "$D" || { echo "#   missing link $1 -> ../../$tty"; return 1; }
}

n=$(node "Klipper_stm32f446xx_$F446")
check "octopus-f446: tty with udev's ID_* properties" "$D" has "$n" E \
	SUBSYSTEM=tty MAJOR=166 "DEVNAME=$n" ID_BUS=usb ID_VENDOR=Klipper ID_VENDOR_ID=1d50 \
	ID_MODEL=stm32f446xx ID_MODEL_ID=614e "ID_SERIAL_SHORT=$F446" ID_USB_INTERFACE_NUM=00 \
	ID_USB_DRIVER=cdc_acm "ID_PATH=$BYPATH-usb-0:1.2:1.0"
check "octopus-f446: DEVLINKS names the by-path and by-id links" "$D" has "$n" E \
	"DEVLINKS=/dev/serial/by-path/$BYPATH-usb-0:1.2:1.0 /dev/serial/by-id/usb-Klipper_stm32f446xx_$F446-if00"
check "octopus-f446: USB parent carries the sysfs attributes" "$D" has "$n" USB \
	DRIVER=usb DEVTYPE=usb_device idVendor=1d50 idProduct=614e manufacturer=Klipper \
	product=stm32f446xx "serial=$F446" busnum=1 BUSNUM=001
check "octopus-f446: cdc_acm interface 00 between them" "$D" has "$n" INTF \
	DRIVER=cdc_acm bInterfaceNumber=00
check "octopus-f446: the tty node is a char device ${n:-?} (166:N)" "$D" \
	grep -qE "^$n STAT char 166:[0-9]+$" "$D"
check "octopus-f446: relative by-id and by-path links resolve to the tty" "$D" eval \
	"link by-id/usb-Klipper_stm32f446xx_$F446-if00 $n && link by-path/$BYPATH-usb-0:1.2:1.0 $n"

n=$(node "Klipper_stm32h723xx_$H723")
check "octopus-pro-h723: Klipper stm32h723xx on port 1.1" "$D" eval \
	"has '$n' E ID_MODEL_ID=614e ID_PATH=$BYPATH-usb-0:1.1:1.0 && link by-id/usb-Klipper_stm32h723xx_$H723-if00 $n"
n=$(node "Klipper_rp2040_$RP2040")
check "sb2040: Klipper rp2040 with a 16-digit serial" "$D" eval \
	"has '$n' E ID_SERIAL_SHORT=$RP2040 && link by-id/usb-Klipper_rp2040_$RP2040-if00 $n"
n=$(node "katapult_stm32g0b1xx_$G0B1")
check "ebb36-g0b1: sits in Katapult as 1d50:6177 usb-katapult_..." "$D" eval \
	"has '$n' E ID_VENDOR=katapult ID_MODEL_ID=6177 && has '$n' USB idProduct=6177 manufacturer=katapult && link by-id/usb-katapult_stm32g0b1xx_$G0B1-if00 $n"
n=$(node "CanBoot_stm32f103xe_$F103")
check "old-canboot: bootloader named CanBoot (usb-CanBoot_...)" "$D" eval \
	"has '$n' E ID_MODEL_ID=6177 && has '$n' USB manufacturer=CanBoot && link by-id/usb-CanBoot_stm32f103xe_$F103-if00 $n"
n=$(node "Beacon_Beacon_RevH_$BEACON")
check "beacon: 04d8:e72b usb-Beacon_Beacon_RevH_<serial>-if00" "$D" eval \
	"has '$n' E ID_VENDOR_ID=04d8 ID_MODEL_ID=e72b ID_MODEL=Beacon_RevH 'ID_MODEL_ENC=Beacon\\x20RevH' && link by-id/usb-Beacon_Beacon_RevH_$BEACON-if00 $n"
n=$(node "1a86_USB_Serial")
check "ch340: ttyUSB0 (188:0), ch341, usb-1a86_USB_Serial-if00-port0" "$D" eval \
	"[ '$n' = /dev/ttyUSB0 ] && has '$n' E MAJOR=188 MINOR=0 ID_USB_DRIVER=ch341 ID_VENDOR=1a86 && has '$n' INTF DRIVER=ch341 && link by-id/usb-1a86_USB_Serial-if00-port0 $n && link by-path/$BYPATH-usb-0:1.4.4:1.0-port0 $n"
check "ch340: no serial string, so no ID_SERIAL_SHORT" "$D" eval \
	"! grep -q '^/dev/ttyUSB0 E ID_SERIAL_SHORT=' '$D'"

if command -v udevadm >/dev/null 2>&1; then
	simhost "$WORK/udevadm" --board "$B/octopus-f446.board" -- \
		udevadm info --query=property --name=/dev/ttyACM0
	check "udevadm info sees the board in the testbed" "$WORK/udevadm" \
		grep -qx "ID_SERIAL=Klipper_stm32f446xx_$F446" "$WORK/udevadm"
else
	skip "udevadm info sees the board in the testbed" "udevadm not installed"
fi

# --- start mode override ----------------------------------------------------
simhost "$WORK/mode" --board "$B/octopus-f446.board:katapult" --board "$B/old-canboot.board:klipper" \
	-- sh -c 'ls /dev/serial/by-id'
check "FILE:katapult and FILE:klipper override the starting mode" "$WORK/mode" eval \
	"grep -qx usb-katapult_stm32f446xx_$F446-if00 '$WORK/mode' && grep -qx usb-Klipper_stm32f103xe_$F103-if00 '$WORK/mode'"

# --- ioctls from clients ----------------------------------------------------
HAVE_PYSERIAL=0
if $PY -c 'import serial' 2>/dev/null; then
	HAVE_PYSERIAL=1
fi
if [ $HAVE_PYSERIAL = 1 ]; then
	simhost "$WORK/ioctl" --board "$B/octopus-f446.board" -- $PROBE ioctl /dev/ttyACM0
	check "pyserial opens at 250000 (TCSETS2 through the ioctl handler)" "$WORK/ioctl" \
		grep -qx "BAUD 250000 CBAUD_IS_BOTHER True" "$WORK/ioctl"
	check "modem lines: DTR up after open, down after TIOCMBIC" "$WORK/ioctl" eval \
		"grep -qx 'DTR_AFTER_OPEN 1' '$WORK/ioctl' && grep -qx 'DTR_AFTER_CLEAR 0' '$WORK/ioctl'"
else
	skip "pyserial opens at 250000 (TCSETS2 through the ioctl handler)" "no pyserial"
	skip "modem lines: DTR up after open, down after TIOCMBIC" "no pyserial"
fi

# --- re-enumeration ---------------------------------------------------------
# events FILE BOARD WORD...: the event lines for BOARD, in this order
events_in_order() {
	local file=$1 board=$2
	shift 2
	awk -v b="$board" '$2 == "simboard" && $3 == b { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' "$file" >"$file.$board"
	local want got
	want=$(printf '%s\n' "$@")
	got=$(grep -xF -f <(printf '%s\n' "$@") "$file.$board")
	[ "$want" = "$got" ] || { echo "#   events for $board:"; sed 's/^/#     /' "$file.$board"; return 1; }
}

# events_from FILE BOARD N WORD...: BOARD's event lines N, N+1, ... are
# exactly WORD... (repeats count, unlike events_in_order)
events_from() {
	local file=$1 board=$2 n=$3
	shift 3
	awk -v b="$board" '$2 == "simboard" && $3 == b { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' "$file" >"$file.$board"
	[ "$(printf '%s\n' "$@")" = "$(tail -n +"$n" "$file.$board" | head -n $#)" ] ||
		{ echo "#   events for $board:"; sed 's/^/#     /' "$file.$board"; return 1; }
}

if [ $HAVE_PYSERIAL = 1 ]; then
	R=$WORK/reenum
	simhost "$R" --board "$B/octopus-f446.board" --board "$B/beacon.board" -- \
		$PROBE pyserial-1200 "usb-katapult_stm32f446xx_$F446" "usb-Klipper_stm32f446xx_$F446" 5
	check "pyserial 1200 baud: libudev monitor sees the Klipper tty removed" "$R" \
		grep -qx "EV remove tty /dev/ttyACM0 Klipper_stm32f446xx_$F446 614e" "$R"
	check "pyserial 1200 baud: ... and a katapult tty added (1d50:6177)" "$R" \
		grep -qx "EV add tty /dev/ttyACM0 katapult_stm32f446xx_$F446 6177" "$R"
	check "pyserial 1200 baud: by-id now has usb-katapult_..., the beacon stays" "$R" \
		grep -qx "LINKS usb-Beacon_Beacon_RevH_$BEACON-if00 usb-katapult_stm32f446xx_$F446-if00" "$R"
	check "events: enumerate klipper, bootloader-request, disconnect, enumerate katapult" "$R.events" \
		events_in_order "$R.events" octopus-f446 "enumerate klipper" bootloader-request \
		"disconnect klipper" "enumerate katapult"
	check "event lines are '<seconds.mmm> simboard <board> <event>'" "$R.events" \
		grep -qE "^[0-9]+\.[0-9]{3} simboard octopus-f446 enumerate katapult$" "$R.events"
else
	for t in "libudev monitor sees the Klipper tty removed" "katapult tty added" "by-id now usb-katapult" \
		"event order" "event line format"; do
		skip "pyserial 1200 baud: $t" "no pyserial"
	done
fi

R=$WORK/raw
simhost "$R" --board "$B/sb2040.board" -- \
	$PROBE raw-1200 "usb-katapult_rp2040_$RP2040" "usb-Klipper_rp2040_$RP2040" 5
check "flash_usb.py's request (DTR, B1200, DTR drop) re-enumerates sb2040" "$R" eval \
	"grep -q '^APPEARED' '$R' && grep -qx 'EV add tty /dev/ttyACM0 katapult_rp2040_$RP2040 6177' '$R'"
check "a client holding the old tty sees a hangup (EOF, then EIO)" "$R" eval \
	"grep -qx 'HOLDER_READ 0' '$R' && grep -qx 'HOLDER_IOCTL_ERRNO 5' '$R'"

R=$WORK/complete
simhost "$R" --board "$B/ebb36-g0b1.board" -- \
	$PROBE complete "usb-Klipper_stm32g0b1xx_$G0B1" "usb-katapult_stm32g0b1xx_$G0B1" 5
check "COMPLETE is answered (ack 0xa0) before the board resets" "$R" \
	grep -qE "^REPLY 0188a0" "$R"
check "COMPLETE boots the app: ebb36 comes back as usb-Klipper_..." "$R" eval \
	"grep -qx 'EV add tty /dev/ttyACM0 Klipper_stm32g0b1xx_$G0B1 614e' '$R' && grep -qx 'LINKS usb-Klipper_stm32g0b1xx_$G0B1-if00' '$R'"
check "events: boot-app, disconnect katapult, enumerate klipper" "$R.events" \
	events_in_order "$R.events" ebb36-g0b1 "enumerate katapult" boot-app "disconnect katapult" \
	"enumerate klipper"

# --- the control FIFO ----------------------------------------------------------
R=$WORK/control
simhost "$R" --control "$WORK/ctl" --board "$B/octopus-f446.board,reenumerate_ms=100" \
	--board "$B/beacon.board" -- \
	$PROBE control octopus-f446 "usb-Klipper_stm32f446xx_$F446" "usb-katapult_stm32f446xx_$F446"
check "control: unplug NAME sends the tty's remove uevent; its links go" "$R" eval \
	"grep -qx 'unplug: EV remove tty /dev/ttyACM0 Klipper_stm32f446xx_$F446 614e' '$R' && grep -q '^unplug: GONE' '$R' && grep -qx 'unplug: LINKS usb-Beacon_Beacon_RevH_$BEACON-if00' '$R'"
check "control: unplug hangs up a client's tty (EOF, then EIO) and the node goes" "$R" eval \
	"grep -qx 'unplug: HOLDER_READ 0' '$R' && grep -qx 'unplug: HOLDER_IOCTL_ERRNO 5' '$R' && grep -qx 'unplug: NODE_EXISTS False' '$R'"
check "control: plug NAME (written in two pieces) adds it back as Klipper" "$R" eval \
	"grep -qx 'plug: EV add tty /dev/ttyACM0 Klipper_stm32f446xx_$F446 614e' '$R' && grep -q '^plug: APPEARED' '$R'"
check "control: mode NAME katapult re-enumerates it as 1d50:6177" "$R" eval \
	"grep -qx 'mode: EV remove tty /dev/ttyACM0 Klipper_stm32f446xx_$F446 614e' '$R' && grep -qx 'mode: EV add tty /dev/ttyACM0 katapult_stm32f446xx_$F446 6177' '$R'"
check "control: unplugged in Katapult mode, it comes back in Katapult mode" "$R" eval \
	"grep -qx 'unplug2: EV remove tty /dev/ttyACM0 katapult_stm32f446xx_$F446 6177' '$R' && grep -qx 'plug2: EV add tty /dev/ttyACM0 katapult_stm32f446xx_$F446 6177' '$R'"
check "control: unknown commands, boards and modes are reported and ignored" "$R" eval \
	"grep -q \"control: unknown command 'bogus command'\" '$R' && grep -q \"no board named 'no-such-board'\" '$R' && grep -q \"unknown mode 'bootrom'\" '$R'"
check "events: unplug, plug, mode katapult, disconnect klipper, enumerate katapult" "$R.events" \
	events_in_order "$R.events" octopus-f446 "enumerate klipper" unplug plug "enumerate klipper" \
	"mode katapult" "disconnect klipper" "enumerate katapult" unplug plug "enumerate katapult"
check "control: the FIFO is removed when simhost exits" "$R" [ ! -e "$WORK/ctl" ]

mkdir -p "$WORK/state"
R=$WORK/ctl-default
KFLASH_SIM_STATE=$WORK/state simhost "$R" --board "$B/beacon.board" -- \
	sh -c 'test -p "$KFLASH_SIM_STATE/simhost.ctl" && echo "CONTROL=$KFLASH_SIM_CONTROL"'
check "control: defaults to \$KFLASH_SIM_STATE/simhost.ctl, named in \$KFLASH_SIM_CONTROL" "$R" eval \
	"grep -qx 'CONTROL=$WORK/state/simhost.ctl' '$R' && [ ! -e '$WORK/state/simhost.ctl' ]"

# --- after_complete= and command-line overrides ------------------------------
R=$WORK/ac-katapult
simhost "$R" --board "$B/ebb36-g0b1.board,after_complete=katapult,reenumerate_ms=200" -- \
	$PROBE settle "usb-katapult_stm32g0b1xx_$G0B1" 1.5
check "after_complete=katapult: after COMPLETE the board comes back in Katapult" "$R" eval \
	"grep -qE '^REPLY 0188a0' '$R' && grep -qx 'EV remove tty /dev/ttyACM0 katapult_stm32g0b1xx_$G0B1 6177' '$R' && grep -qx 'EV add tty /dev/ttyACM0 katapult_stm32g0b1xx_$G0B1 6177' '$R' && grep -qx 'LINKS usb-katapult_stm32g0b1xx_$G0B1-if00' '$R'"
check "after_complete=katapult events: boot-app, disconnect katapult, enumerate katapult" "$R.events" \
	events_in_order "$R.events" ebb36-g0b1 "enumerate katapult" boot-app "disconnect katapult" \
	"enumerate katapult"
R=$WORK/ac-gone
simhost "$R" --board "$B/ebb36-g0b1.board,after_complete=gone,reenumerate_ms=200" -- \
	$PROBE settle "usb-katapult_stm32g0b1xx_$G0B1" 1.5
check "after_complete=gone: after COMPLETE the board leaves and stays away" "$R" eval \
	"grep -qx 'EV remove tty /dev/ttyACM0 katapult_stm32g0b1xx_$G0B1 6177' '$R' && ! grep -q '^EV add' '$R' && grep -qxE 'LINKS ?' '$R'"
check "after_complete=gone events: boot-app, disconnect katapult, nothing after" "$R.events" eval \
	"events_in_order '$R.events' ebb36-g0b1 'enumerate katapult' boot-app 'disconnect katapult' && [ \"\$(tail -n1 '$R.events.ebb36-g0b1')\" = 'disconnect katapult' ]"

R=$WORK/override
simhost "$R" --board "$B/octopus-f446.board" \
	--board "$B/octopus-f446.board:katapult,name=second,serial=0123456789ABCDEF01234567,port=1.3,vendor_db=Acme, Inc." \
	-- $PROBE dump
D=$R
n=$(node "katapult_stm32f446xx_0123456789ABCDEF01234567")
check "--board FILE:katapult,key=value...: a second board from the same file" "$R" eval \
	"has '$n' E ID_MODEL_ID=6177 'ID_PATH=$BYPATH-usb-0:1.3:1.0' && link by-id/usb-Klipper_stm32f446xx_$F446-if00 \$(node Klipper_stm32f446xx_$F446)"
check "overrides: a piece without '=' continues the value (vendor_db=Acme, Inc.)" "$R" \
	has "$n" E "ID_VENDOR_FROM_DATABASE=Acme, Inc."
D=$WORK/dump
umockdev-wrapper "$SIMHOST" --board "$B/octopus-f446.board,after_complete=later" -- true >"$WORK/bad" 2>&1
rc=$?
check "a bad override value is a usage error (2)" "$WORK/bad" eval \
	"[ $rc -eq 2 ] && grep -q 'bad value for after_complete' '$WORK/bad'"

# --- Katapult's real flashtool.py through the whole USB flow -----------------
if [ -z "${KATAPULT_DIR:-}" ] || [ ! -f "${KATAPULT_DIR:-}/scripts/flashtool.py" ]; then
	skip "flashtool.py flashes octopus-f446 from Klipper mode" "set KATAPULT_DIR to a Katapult checkout"
elif [ $HAVE_PYSERIAL = 0 ]; then
	skip "flashtool.py flashes octopus-f446 from Klipper mode" "no pyserial"
else
	mkfw "$WORK/fw.bin" 0x8008000 30000
	cat >"$WORK/flash.sh" <<EOF
link=\$(ls /dev/serial/by-id/usb-Klipper_stm32f446xx_*)
node=\$(cd /dev/serial/by-id && realpath -s -m "\$(readlink "\$link")")
$PY "$KATAPULT_DIR/scripts/flashtool.py" -d "\$node" -f "$WORK/fw.bin" || exit 1
for i in \$(seq 100); do ls /dev/serial/by-id | grep -q '^usb-Klipper_stm32f446xx' && exit 0; sleep 0.05; done
exit 3
EOF
	R=$WORK/flashtool
	simhost "$R" --board "$B/octopus-f446.board" -- sh "$WORK/flash.sh"
	rc=$?
	tr -d '\0' <"$R" >"$R.txt"
	check "flashtool.py flashes octopus-f446 from Klipper mode (exit 0, Programming Complete)" "$R.txt" \
		eval "[ $rc -eq 0 ] && grep -q 'Programming Complete' '$R.txt'"
	check "the flashed image is DIR/NAME.bin and holds the firmware" "$R.txt" \
		eval "cmp -s '$WORK/fw.bin' <(head -c 30000 '$WORK/img/octopus-f446.bin')"
	check "events: bootloader-request ... flash-complete bytes=30016, boot-app, enumerate klipper" "$R.events" \
		events_in_order "$R.events" octopus-f446 "enumerate klipper" bootloader-request \
		"enumerate katapult" write-start "flash-complete bytes=30016" boot-app "enumerate klipper"
fi

# after_complete=, app_start= from the command line, and an unplug while
# flashtool writes, with the real flashtool.py
FT_TESTS=("flashtool + after_complete=gone: the board never comes back"
	"flashtool + after_complete=katapult: the board comes back in Katapult"
	"flashtool: unplug at write-start fails the flash (EIO or EOF)"
	"flashtool: plug after that brings the board back in Katapult"
	"flashtool + an image linked for 0x08020000 on octopus-f446: flashed, then the board hangs (hang reset ...)"
	"a hung board: plug and mode klipper bring nothing back, mode katapult resets it into Katapult"
	"flashtool + klipper.uf2 on sb2040: flashed, then the board hangs (hang stack 0x0a324655)")
if [ -z "${KATAPULT_DIR:-}" ] || [ ! -f "${KATAPULT_DIR:-}/scripts/flashtool.py" ]; then
	echo "SKIP: after_complete= and unplug-while-writing with flashtool.py (no KATAPULT_DIR)"
	for t in "${FT_TESTS[@]}"; do
		skip "$t" "set KATAPULT_DIR to a Katapult checkout"
	done
elif [ $HAVE_PYSERIAL = 0 ]; then
	echo "SKIP: after_complete= and unplug-while-writing with flashtool.py (no pyserial)"
	for t in "${FT_TESTS[@]}"; do
		skip "$t" "no pyserial"
	done
else
	mkfw "$WORK/fw.bin" 0x8008000 30000
	mkfw "$WORK/fw-10000.bin" 0x8010000 30000
	# flashtool.py on the Katapult tty (at most $2 s) writing $3 (fw.bin);
	# then wait $1 s and list by-id
	cat >"$WORK/ft.sh" <<EOF
link=\$(ls /dev/serial/by-id/usb-katapult_*)
node=\$(cd /dev/serial/by-id && realpath -s -m "\$(readlink "\$link")")
timeout \${2:-10} $PY "$KATAPULT_DIR/scripts/flashtool.py" -d "\$node" -f "$WORK/\${3:-fw.bin}"
echo "FLASHTOOL_RC=\$?"
sleep \$1
echo "LINKS \$(ls /dev/serial/by-id 2>/dev/null | tr '\n' ' ')"
EOF
	R=$WORK/ft-gone
	simhost "$R" --board "$B/octopus-f446.board:katapult,after_complete=gone,app_start=0x08010000,reenumerate_ms=200" \
		-- sh "$WORK/ft.sh" 1 10 fw-10000.bin
	tr -d '\0' <"$R" >"$R.txt"
	check "${FT_TESTS[0]}" "$R.txt" eval \
		"grep -q 'Application Start: 0x8010000' '$R.txt' && grep -q 'Programming Complete' '$R.txt' && grep -qx 'FLASHTOOL_RC=0' '$R.txt' && grep -qx 'LINKS ' '$R.txt' && events_in_order '$R.events' octopus-f446 'enumerate katapult' write-start 'flash-complete bytes=30016' boot-app 'disconnect katapult' && [ \"\$(tail -n1 '$R.events.octopus-f446')\" = 'disconnect katapult' ]"
	R=$WORK/ft-katapult
	simhost "$R" --board "$B/octopus-f446.board:katapult,after_complete=katapult,reenumerate_ms=200" \
		-- sh "$WORK/ft.sh" 1
	tr -d '\0' <"$R" >"$R.txt"
	check "${FT_TESTS[1]}" "$R.txt" eval \
		"grep -qx 'FLASHTOOL_RC=0' '$R.txt' && grep -qx 'LINKS usb-katapult_stm32f446xx_$F446-if00 ' '$R.txt' && events_in_order '$R.events' octopus-f446 'enumerate katapult' write-start 'flash-complete bytes=30016' boot-app 'disconnect katapult' 'enumerate katapult'"

	# a scenario's "unplug while flashtool writes": watch the events for
	# write-start, then unplug through the FIFO; plug again afterwards
	cat >"$WORK/ft-unplug.sh" <<EOF
( while ! grep -q ' octopus-f446 write-start\$' "$WORK/ft-unplug.events"; do sleep 0.01; done
  echo "unplug octopus-f446" >"\$KFLASH_SIM_CONTROL" ) &
sh "$WORK/ft.sh" 0 3	# flashtool retries COMPLETE for ~10 s after the EIO
wait
echo "plug octopus-f446" >"\$KFLASH_SIM_CONTROL"
for i in \$(seq 100); do ls /dev/serial/by-id 2>/dev/null | grep -q katapult && break; sleep 0.05; done
echo "AFTER_PLUG \$(ls /dev/serial/by-id 2>/dev/null | tr '\n' ' ')"
EOF
	R=$WORK/ft-unplug
	simhost "$R" --control "$WORK/ctl" --board "$B/octopus-f446.board:katapult" -- sh "$WORK/ft-unplug.sh"
	tr -d '\0' <"$R" >"$R.txt"
	check "${FT_TESTS[2]}" "$R.txt" eval \
		"! grep -q 'Programming Complete' '$R.txt' && ! grep -qx 'FLASHTOOL_RC=0' '$R.txt' && grep -qE 'Input/output error|device disconnected' '$R.txt' && grep -qx 'LINKS ' '$R.txt' && grep -q ' octopus-f446 unplug\$' '$R.events' && ! grep -q flash-complete '$R.events'"
	check "${FT_TESTS[3]}" "$R.txt" eval \
		"grep -qx 'AFTER_PLUG usb-katapult_stm32f446xx_$F446-if00 ' '$R.txt' && events_in_order '$R.events' octopus-f446 'enumerate katapult' write-start unplug plug 'enumerate katapult'"

	# images a Cortex-M cannot start: the board hangs after COMPLETE
	mkfw "$WORK/fw-20000.bin" 0x8020000 30000
	"$PY" - "$WORK/klipper.uf2" <<'EOF'
import os, struct, sys
img, out = os.urandom(30000), b''
n = (len(img) + 255) // 256
for i in range(n):
    out += struct.pack('<IIIIIIII', 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000 + i * 256,
                       256, i, n, 0xE48BFF56) + img[i * 256:(i + 1) * 256].ljust(476, b'\0') \
           + struct.pack('<I', 0x0AB16F30)
open(sys.argv[1], 'wb').write(out)
EOF
	cat >"$WORK/ft-hang.sh" <<EOF
sh "$WORK/ft.sh" 1 10 "\$1"
echo "plug \$2" >"\$KFLASH_SIM_CONTROL"; sleep 0.5
echo "AFTER_PLUG \$(ls /dev/serial/by-id 2>/dev/null | tr '\n' ' ')"
echo "mode \$2 klipper" >"\$KFLASH_SIM_CONTROL"; sleep 0.6
echo "AFTER_MODE_KLIPPER \$(ls /dev/serial/by-id 2>/dev/null | tr '\n' ' ')"
echo "mode \$2 katapult" >"\$KFLASH_SIM_CONTROL"
for i in \$(seq 100); do ls /dev/serial/by-id 2>/dev/null | grep -q katapult && break; sleep 0.05; done
echo "AFTER_MODE_KATAPULT \$(ls /dev/serial/by-id 2>/dev/null | tr '\n' ' ')"
EOF
	R=$WORK/ft-hang
	simhost "$R" --control "$WORK/ctl" --board "$B/octopus-f446.board:katapult,reenumerate_ms=200" -- \
		sh "$WORK/ft-hang.sh" fw-20000.bin octopus-f446
	tr -d '\0' <"$R" >"$R.txt"
	check "${FT_TESTS[4]}" "$R.txt" eval \
		"grep -q 'Programming Complete' '$R.txt' && grep -qx 'FLASHTOOL_RC=0' '$R.txt' && grep -qx 'LINKS ' '$R.txt' && events_from '$R.events' octopus-f446 1 'enumerate katapult' write-start 'flash-complete bytes=30016' boot-app 'disconnect katapult' 'hang reset 0x080201c1'"
	check "${FT_TESTS[5]}" "$R.txt" eval \
		"grep -qx 'AFTER_PLUG ' '$R.txt' && grep -qx 'AFTER_MODE_KLIPPER ' '$R.txt' && grep -qx 'AFTER_MODE_KATAPULT usb-katapult_stm32f446xx_$F446-if00 ' '$R.txt' && events_from '$R.events' octopus-f446 7 plug 'mode klipper' 'hang reset 0x080201c1' 'mode katapult' 'enumerate katapult'"
	R=$WORK/ft-uf2
	simhost "$R" --board "$B/sb2040.board:katapult" -- sh "$WORK/ft.sh" 1 10 klipper.uf2
	tr -d '\0' <"$R" >"$R.txt"
	check "${FT_TESTS[6]}" "$R.txt" eval \
		"grep -qx 'FLASHTOOL_RC=0' '$R.txt' && grep -qx 'LINKS ' '$R.txt' && events_in_order '$R.events' sb2040 'enumerate katapult' boot-app 'disconnect katapult' 'hang stack 0x0a324655' && [ \"\$(tail -n1 '$R.events.sb2040')\" = 'hang stack 0x0a324655' ]"
fi

# --- the command's status and signals ---------------------------------------
simhost "$WORK/st" --board "$B/beacon.board" -- sh -c 'exit 7'
check "exits with the command's status (7)" "$WORK/st" [ $? -eq 7 ]
simhost "$WORK/st" --board "$B/beacon.board" -- sh -c 'kill -TERM $$'
check "a command killed by SIGTERM gives 143" "$WORK/st" [ $? -eq 143 ]
simhost "$WORK/st" --board "$B/beacon.board" -- "$WORK/no-such-command"
check "a command that cannot run gives 127" "$WORK/st" [ $? -eq 127 ]

umockdev-wrapper "$SIMHOST" --board "$B/beacon.board" -- \
	sh -c "echo \$UMOCKDEV_DIR >'$WORK/tbdir'; sleep 30 & sleep 30" >"$WORK/term" 2>&1 &
sp=$!
for i in $(seq 100); do [ -s "$WORK/tbdir" ] && break; sleep 0.05; done
kill -TERM $sp
wait $sp
rc=$?
check "SIGTERM: simhost ends the command's group and exits 143" "$WORK/term" [ $rc -eq 143 ]
check "SIGTERM: the testbed directory is gone" "$WORK/term" eval "[ -s '$WORK/tbdir' ] && [ ! -e \"\$(cat '$WORK/tbdir')\" ]"

# --- bad input ----------------------------------------------------------------
umockdev-wrapper "$SIMHOST" --board "$WORK/missing.board" -- true >"$WORK/bad" 2>&1
check "a missing board file is a usage error (2)" "$WORK/bad" [ $? -eq 2 ]
umockdev-wrapper "$SIMHOST" --board "$B/octopus-f446.board" --board "$B/octopus-f446.board" -- true >"$WORK/bad" 2>&1
check "the same board twice is refused (2)" "$WORK/bad" [ $? -eq 2 ]
printf 'kind=klipper\nmcu=stm32f446xx\nserial=1\nport=1.4\n' >"$WORK/hub.board"
umockdev-wrapper "$SIMHOST" --board "$B/ebb36-g0b1.board" --board "$WORK/hub.board" -- true >"$WORK/bad" 2>&1
check "a port that is another board's hub is refused (2)" "$WORK/bad" [ $? -eq 2 ]
umockdev-wrapper "$SIMHOST" --board "$B/octopus-f446.board,block_size=128" -- true >"$WORK/bad" 2>&1
rc=$?
check "block_size=128 is refused (2): every Katapult build uses 64" "$WORK/bad" eval \
	"[ $rc -eq 2 ] && grep -q 'block size must be 64' '$WORK/bad'"
printf 'kind=klipper\nmcu=atmega2560\nserial=1\nport=1.2\n' >"$WORK/avr.board"
umockdev-wrapper "$SIMHOST" --board "$WORK/avr.board" -- true >"$WORK/bad" 2>&1
rc=$?
check "a kind=klipper board whose MCU Katapult does not run on is refused (2)" "$WORK/bad" eval \
	"[ $rc -eq 2 ] && grep -q 'not one Katapult runs on' '$WORK/bad'"

echo "test-simhost: $PASS passed, $FAIL failed, $SKIP skipped"
if [ $FAIL -gt 0 ]; then
	exit 1
fi
[ $PASS -gt 0 ] || exit 77
exit 0
