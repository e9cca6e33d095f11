# kflash - build, test and install.
#
#   make                 build/kflash (+ the simulator's programs, the host
#                        only when libumockdev-dev is installed)
#   make check           install missing Debian packages, build, run every test
#   make check SANITIZE=1  the same under ASan+UBSan (in build/sanitize)
#   make check-product SANITIZE=1  unit tests, fuzz corpora and scenarios
#                        only, under ASan+UBSan (what CI runs after check)
#   make fuzz FUZZ_SECONDS=60  each libFuzzer target for that long (clang,
#                        in build/libfuzzer)
#   make demo            the full flash flow on a simulated printer
#   make soak            200 simulated flashes, each hit by a signal (SOAK_RUNS, SOAK_SEED)
#   make bench           speed and memory targets
#   make crash           kflash killed at every point of its saves (CRASH_RUNS=500)
#   make install PREFIX=/usr/local DESTDIR=   (make uninstall undoes it)

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
STRIP ?= strip
# systemd's own search path has /usr/local/lib/systemd/system (and
# /usr/lib/systemd/system for PREFIX=/usr)
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
PKG_CONFIG ?= pkg-config
SANITIZE ?=

ifeq ($(SANITIZE),1)
BUILD ?= build/sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# the simulator runs programs under umockdev's LD_PRELOAD, which ASan would
# otherwise refuse; leaks and errors still fail the run
export ASAN_OPTIONS ?= verify_asan_link_order=0:detect_leaks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
else ifeq ($(SANITIZE),fuzz)
# make fuzz: everything built by clang for libFuzzer, ASan and UBSan; the
# targets link libFuzzer's main, everything else only its coverage hooks
BUILD ?= build/libfuzzer
ifeq ($(origin CC),default)
CC := clang
endif
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
FUZZ_MAIN_FLAGS := -fsanitize=fuzzer
FUZZ_DEBS := clang libclang-rt-dev
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifeq ($(shell printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) \
	{ (void)d; (void)n; return 0; }\n' | $(CC) -x c -fsanitize=fuzzer -o /dev/null - \
	2>/dev/null && echo ok),)
$(error kflash: make fuzz needs $(FUZZ_DEBS) ($(CC) cannot link -fsanitize=fuzzer): \
	sudo apt-get install $(FUZZ_DEBS), or ci/deps fuzz)
endif
endif
else
BUILD ?= build
SAN_FLAGS :=
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
# -MMD -MP: each object's .d lists the headers it really includes
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN_FLAGS) -Iinclude -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)

# ---- libraries -------------------------------------------------------------
# Found by pkg-config. A missing one stops make, only when a target that needs
# it is to be built, with one line naming the Debian package that ships it:
# the product needs the first three, the unit tests cmocka, the simulator's
# host umockdev.

LIB_PC := libudev jansson libcurl
TEST_PC := cmocka
SIMHOST_PC := umockdev-1.0 gio-2.0
deb.libudev := libudev-dev
deb.jansson := libjansson-dev
deb.libcurl := libcurl4-openssl-dev
deb.cmocka := libcmocka-dev
deb.umockdev-1.0 := libumockdev-dev
deb.gio-2.0 := libglib2.0-dev

HAVE_PKG_CONFIG := $(shell command -v $(firstword $(PKG_CONFIG)) 2>/dev/null)
ifneq ($(HAVE_PKG_CONFIG),)
PC_MISSING := $(shell for m in $(LIB_PC) $(TEST_PC) $(SIMHOST_PC); do \
	$(PKG_CONFIG) --exists $$m || echo $$m; done)
pc = $(if $(filter $(1),$(PC_MISSING)),,$(shell $(PKG_CONFIG) $(2) $(1)))
else
PC_MISSING := $(LIB_PC) $(TEST_PC) $(SIMHOST_PC)
pc =
endif
LIB_CFLAGS := $(call pc,$(LIB_PC),--cflags)
LIB_LIBS := $(call pc,$(LIB_PC),--libs)
TEST_CFLAGS := $(call pc,$(TEST_PC),--cflags)
TEST_LIBS := $(call pc,$(TEST_PC),--libs)
SIMHOST_CFLAGS := $(call pc,$(SIMHOST_PC),--cflags)
SIMHOST_LIBS := $(call pc,$(SIMHOST_PC),--libs)

# $(call need,MODULES) at the start of a recipe: nothing when all are there
debs = $(strip $(if $(HAVE_PKG_CONFIG),,pkg-config) $(foreach m,$(1),$(deb.$(m))))
why = $(if $(HAVE_PKG_CONFIG),pkg-config finds no $(1),pkg-config is not installed)
need = $(if $(filter $(1),$(PC_MISSING)),$(call need_fail,$(filter $(1),$(PC_MISSING))))
need_fail = $(error kflash: $@ needs $(call debs,$(1)) ($(call why,$(1))): \
	sudo apt-get install $(call debs,$(1)), or make deps)

# ---- sources ---------------------------------------------------------------

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/main.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPER_OBJ := $(patsubst tests/%.c,$(BUILD)/tests/obj/%.o,\
	$(filter-out $(TEST_SRC),$(wildcard tests/*.c)))
# the simulator: simboard.c + board.c is the standalone board; every other
# file in sim/ (board.c included) makes the host
SIMBOARD_OBJ := $(patsubst sim/%.c,$(BUILD)/sim/%.o,$(wildcard sim/simboard.c sim/board.c))
SIMHOST_OBJ := $(patsubst sim/%.c,$(BUILD)/sim/%.o,\
	$(filter-out sim/simboard.c sim/can%.c,$(wildcard sim/*.c)))
# the CAN bus (canbus.c, can_node.c + board.c) and the LD_PRELOAD library
# that gives any process a raw CAN socket on it (can_preload.c)
SIMCAN_OBJ := $(patsubst sim/%.c,$(BUILD)/sim/%.o,$(wildcard sim/canbus.c sim/can_node.c sim/board.c sim/simutil.c))
SIM_PROGS := $(if $(wildcard sim/simboard.c),$(BUILD)/kflash-simboard) \
	$(if $(wildcard sim/simhost.c),$(BUILD)/kflash-simhost) \
	$(if $(wildcard sim/canbus.c),$(BUILD)/kflash-simcanbus $(BUILD)/libkflash-simcan.so)

ALL_OBJ := $(LIB_OBJ) $(MAIN_OBJ) $(TEST_BIN:$(BUILD)/tests/%=$(BUILD)/tests/obj/%.o) \
	$(TEST_HELPER_OBJ) $(sort $(SIMBOARD_OBJ) $(SIMHOST_OBJ) $(SIMCAN_OBJ))

.PHONY: all check check-product unit door sim-tests scenarios soak soak-short recordings deps demo bench crash valgrind install \
	uninstall clean simhost-skipped FORCE fuzz fuzz-run fuzz-replay

# a printer host builds kflash without the simulator's host; say so
ifeq ($(filter $(SIMHOST_PC),$(PC_MISSING)),)
all: $(BUILD)/kflash $(SIM_PROGS)
else
all: $(BUILD)/kflash $(filter-out $(BUILD)/kflash-simhost,$(SIM_PROGS)) simhost-skipped
simhost-skipped:
	@echo "kflash: $(BUILD)/kflash-simhost (the simulator) not built: it needs \
	$(call debs,$(filter $(SIMHOST_PC),$(PC_MISSING))); make demo and make check install it"
endif

# ---- the version -----------------------------------------------------------
# $(BUILD)/version.h holds `git describe`, the commit and this checkout's
# path (so an installed kflash can tell that its checkout moved on), rewritten
# only when one changes (a commit, a tag, a checkout, an edit), and only the
# objects that use them include and depend on it. Where git cannot tell (a
# tarball, `sudo make install` refused by git's ownership check) an existing
# file is kept, else kflash.h's defaults stand.

VERSION_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(shell grep -l \
	'KFLASH_VERSION\|KFLASH_COMMIT\|KFLASH_SOURCE_DIR' src/*.c 2>/dev/null))
$(VERSION_OBJ): $(BUILD)/version.h
$(VERSION_OBJ): VERSION_FLAGS = -include $(BUILD)/version.h

$(BUILD)/version.h: FORCE
	@mkdir -p $(@D)
	@v=$$(test -e .git && GIT_OPTIONAL_LOCKS=0 git describe --always --tags --dirty 2>/dev/null) && \
	c=$$(GIT_OPTIONAL_LOCKS=0 git rev-parse HEAD 2>/dev/null) || \
		{ test -f $@ && exit 0; v=0.1.0; c=; }; \
	d=$$(printf '%s' "$(CURDIR)" | sed 's/[\\"]/\\&/g'); \
	printf '/* generated by the Makefile: git describe --always --tags --dirty, git rev-parse HEAD, the checkout */\n#define KFLASH_VERSION "%s"\n#define KFLASH_COMMIT "%s"\n#define KFLASH_SOURCE_DIR "%s"\n' \
		"$$v" "$$c" "$$d" > $@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

# ---- build -----------------------------------------------------------------

$(LIB_OBJ) $(MAIN_OBJ): $(BUILD)/obj/%.o: src/%.c
	$(call need,$(LIB_PC))@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS) $(VERSION_FLAGS) -c -o $@ $<

$(BUILD)/libkflash.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/kflash: $(MAIN_OBJ) $(BUILD)/libkflash.a
	$(call need,$(LIB_PC))$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIB_LIBS)

$(BUILD)/tests/obj/%.o: tests/%.c
	$(call need,$(LIB_PC) $(TEST_PC))@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS) $(TEST_CFLAGS) -Itests -c -o $@ $<

$(TEST_BIN): $(BUILD)/tests/%: $(BUILD)/tests/obj/%.o $(TEST_HELPER_OBJ) $(BUILD)/libkflash.a
	$(call need,$(LIB_PC) $(TEST_PC))$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIB_LIBS) $(TEST_LIBS)

# the host's own files need umockdev's headers; the board's and the bus's
# (simutil.c too) need nothing
$(filter-out $(SIMBOARD_OBJ) $(SIMCAN_OBJ),$(SIMHOST_OBJ)): SIM_PC = $(SIMHOST_PC)
$(filter-out $(SIMBOARD_OBJ) $(SIMCAN_OBJ),$(SIMHOST_OBJ)): SIM_CFLAGS = $(SIMHOST_CFLAGS)
$(BUILD)/sim/%.o: sim/%.c
	$(call need,$(SIM_PC))@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SIM_CFLAGS) -Isim -c -o $@ $<

$(BUILD)/kflash-simboard: $(SIMBOARD_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS)

$(BUILD)/kflash-simhost: $(SIMHOST_OBJ)
	$(call need,$(SIMHOST_PC))$(CC) -o $@ $^ $(ALL_LDFLAGS) $(SIMHOST_LIBS)

$(BUILD)/kflash-simcanbus: $(SIMCAN_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS)

# never sanitized: it is preloaded into python3 and flashtool.py
$(BUILD)/libkflash-simcan.so: sim/can_preload.c sim/can_wire.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# ---- fuzz targets ------------------------------------------------------------
# fuzz/fuzz_NAME.c is one libFuzzer target over the parser its first line
# names, its seeds in fixtures/fuzz/NAME/. Built with the product's
# compiler and fuzz/replay.c's main, a target replays its corpus once
# (make check); with SANITIZE=fuzz (make fuzz) clang builds it for libFuzzer.

FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
FUZZ_HELPER_OBJ := $(patsubst fuzz/%.c,$(BUILD)/fuzz/obj/%.o,\
	$(filter-out fuzz/fuzz_%.c fuzz/replay.c,$(wildcard fuzz/*.c))) \
	$(BUILD)/tests/obj/fake_ops.o $(BUILD)/sim/board.o $(BUILD)/sim/can_node.o
FUZZ_MAIN := $(if $(FUZZ_MAIN_FLAGS),,$(BUILD)/fuzz/obj/replay.o)
ALL_OBJ += $(patsubst fuzz/%.c,$(BUILD)/fuzz/obj/%.o,$(wildcard fuzz/*.c))

$(BUILD)/fuzz/obj/%.o: fuzz/%.c
	$(call need,$(LIB_PC))@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS) -Itests -Isim -c -o $@ $<

$(FUZZ_BIN): $(BUILD)/fuzz/fuzz-%: $(BUILD)/fuzz/obj/fuzz_%.o $(FUZZ_HELPER_OBJ) $(FUZZ_MAIN) \
		$(BUILD)/libkflash.a
	$(call need,$(LIB_PC))$(CC) -o $@ $^ $(ALL_LDFLAGS) $(FUZZ_MAIN_FLAGS) $(LIB_LIBS)

# every corpus file through its target once: seconds, in make check
fuzz-replay: $(FUZZ_BIN)
	@ci/fuzz --replay $(BUILD)/fuzz $(FUZZ_TARGETS)

# each target FUZZ_SECONDS long (not split: 10 targets x 60 s is 10
# minutes); new inputs go to build/libfuzzer/fuzz/corpus/NAME, crashes and hangs to
# build/libfuzzer/fuzz/artifacts/NAME, and any of them fails the run
FUZZ_SECONDS ?= 60
fuzz:
	@ci/deps fuzz
	@$(MAKE) --no-print-directory SANITIZE=fuzz fuzz-run

fuzz-run: $(FUZZ_BIN)
	@ci/fuzz --seconds $(FUZZ_SECONDS) $(BUILD)/fuzz $(FUZZ_TARGETS)

# ---- tests -----------------------------------------------------------------

check: deps
	$(MAKE) all $(TEST_BIN) $(FUZZ_BIN)
	$(MAKE) unit door fuzz-replay sim-tests scenarios soak-short

# what tests the product itself: the unit tests, the fuzz corpora and every
# scenario's kflash (CI runs it under SANITIZE=1 after make check; the
# simulator's own tests and the soak run once, in make check)
check-product: deps
	$(MAKE) all $(TEST_BIN) $(FUZZ_BIN)
	$(MAKE) unit fuzz-replay scenarios

unit: $(TEST_BIN)
	@ci/run-unit $(TEST_BIN)

door:
	@ci/check-door
	@ci/check-quotes

sim-tests: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) ci/run-sim-tests

scenarios: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) ci/run-scenarios

# simulated flashes, each hit by a signal at a random moment (sim/soak):
# make soak SOAK_RUNS=200 SOAK_SEED=N; make check runs 20 of them
SOAK_RUNS ?= 200
SOAK_SEED ?=
soak: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) SOAK_RUNS=$(SOAK_RUNS) SOAK_SEED=$(SOAK_SEED) /usr/bin/python3 sim/soak

soak-short: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) SOAK_RUNS=20 SOAK_SEED=$(SOAK_SEED) /usr/bin/python3 sim/soak

# fixtures/recordings/ made again in the simulator (replayed by sim-tests)
recordings: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) tests/make-recordings.sh

deps:
	@ci/deps

# the unit tests under valgrind, then the product binary in scenarios
# (KFLASH_VALGRIND: every kflash the simulated host runs is under
# memcheck): any leak or invalid access fails. The scenarios are those
# that need no guardian: valgrind cannot exec /proc/self/exe, which is how
# kflash starts it (the flash window is the unit tests' fault loop's)
VALGRIND_SCENARIOS := list-boards list-versions list-fits-80-columns probes-listed-by-name \
	add-then-list add-device-path-that-is-no-device add-config-says-adopted \
	flash-sudo-needs-password build-first-then-up-to-date build-failure-shows-log-tail \
	build-ctrl-c-leaves-nothing build-without-config doctor-finds-problems flash-dry-run \
	flash-refused-while-printing flash-mcu-mismatch flash-klipper-inactive-stays-inactive \
	flash-outdated-none-behind settings-checks-directories cli-did-you-mean \
	rollback-nothing-kept-refused can-add-by-uuid
valgrind: $(TEST_BIN) $(BUILD)/kflash $(SIM_PROGS)
	@for t in $(TEST_BIN); do \
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--error-exitcode=9 $$t > $(BUILD)/valgrind.log 2>&1 || \
			{ cat $(BUILD)/valgrind.log; echo "valgrind: $$t failed"; exit 1; }; \
	done; echo "valgrind: $(words $(TEST_BIN)) test binaries clean"
	@KFLASH_BUILD=$(BUILD) KFLASH_VALGRIND=1 /usr/bin/python3 sim/scenario -j2 \
		$(VALGRIND_SCENARIOS:%=fixtures/scenarios/%.scenario)

demo: deps
	$(MAKE) $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) sim/demo

bench: $(BUILD)/kflash $(SIM_PROGS)
	@KFLASH_BUILD=$(BUILD) ci/bench

# SIGKILL at every syscall of kflash's saves (strace's inject), CRASH_RUNS
# kills (500); make check runs 50 of them (tests/test-crash.sh)
CRASH_RUNS ?= 500
crash: $(BUILD)/kflash $(SIM_PROGS)
	@CRASH_RUNS=$(CRASH_RUNS) KFLASH_BUILD=$(BUILD) /usr/bin/python3 tests/crash.py

# ---- install ---------------------------------------------------------------

# kflash (stripped), its man page, bash completion and the systemd units of
# the kflash-outdated timer (never enabled here; see the README). Needs only
# $(BUILD)/kflash: nothing of the simulator or the tests.

UNIT_FILES := kflash-outdated@.service kflash-outdated@.timer
INSTALLED := $(PREFIX)/bin/kflash $(PREFIX)/share/man/man1/kflash.1 \
	$(PREFIX)/share/bash-completion/completions/kflash \
	$(addprefix $(SYSTEMD_UNIT_DIR)/,$(UNIT_FILES))

install: $(BUILD)/kflash
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -s --strip-program=$(STRIP) -m 755 $(BUILD)/kflash $(DESTDIR)$(PREFIX)/bin/kflash
	install -m 644 doc/kflash.1 $(DESTDIR)$(PREFIX)/share/man/man1/kflash.1
	install -m 644 doc/kflash.bash-completion \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/kflash
	sed 's|@bindir@|$(PREFIX)/bin|g' scripts/systemd/kflash-outdated@.service.in \
		> $(DESTDIR)$(SYSTEMD_UNIT_DIR)/kflash-outdated@.service
	chmod 644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/kflash-outdated@.service
	install -m 644 scripts/systemd/kflash-outdated@.timer $(DESTDIR)$(SYSTEMD_UNIT_DIR)/
	@$(reload_systemd)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@$(reload_systemd)

# a changed unit file takes effect on systemd's next reload: do it when it
# is this machine's systemd (no DESTDIR, booted with systemd, as root)
reload_systemd = if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && \
	[ "$$(id -u)" -eq 0 ]; then systemctl daemon-reload; fi

clean:
	rm -rf build

# what each object includes, as the compiler saw it (-MMD)
-include $(ALL_OBJ:.o=.d)
