# kflash - build, test and install.
#
#   make                 build/kflash (+ the simulator's programs)
#   make check           install missing Debian packages, build, run every test
#   make check SANITIZE=1  the same under ASan+UBSan (in build/sanitize)
#   make demo            the full flash flow on a simulated printer
#   make bench           speed and memory targets
#   make install PREFIX=/usr/local DESTDIR=

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
PKG_CONFIG ?= pkg-config
SANITIZE ?=

ifeq ($(SANITIZE),1)
BUILD ?= build/sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# the simulator runs programs under umockdev's LD_PRELOAD, which ASan would
# otherwise refuse; leaks and errors still fail the run
export ASAN_OPTIONS ?= verify_asan_link_order=0:detect_leaks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
else
BUILD ?= build
SAN_FLAGS :=
endif

VERSION := $(shell git describe --always --tags --dirty 2>/dev/null || echo 0.1.0)

LIBS_PKG := libudev jansson libcurl
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN_FLAGS) -Iinclude \
	-DKFLASH_VERSION='"$(VERSION)"' $(shell $(PKG_CONFIG) --cflags $(LIBS_PKG) 2>/dev/null)
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)
LIBS := $(shell $(PKG_CONFIG) --libs $(LIBS_PKG) 2>/dev/null)

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
SIM_PROGS :=
ifneq ($(wildcard sim/simboard.c),)
SIM_PROGS += $(BUILD)/kflash-simboard
endif
ifneq ($(wildcard sim/simhost.c),)
SIM_PROGS += $(BUILD)/kflash-simhost
endif

.PHONY: all check unit door sim-tests scenarios deps demo bench valgrind install uninstall clean

all: $(BUILD)/kflash $(SIM_PROGS)

$(BUILD)/obj/%.o: src/%.c $(wildcard include/kflash/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libkflash.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/kflash: src/main.c $(BUILD)/libkflash.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkflash.a $(ALL_LDFLAGS) $(LIBS)

$(BUILD)/kflash-simboard: sim/simboard.c sim/board.c sim/board.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Isim -o $@ sim/simboard.c sim/board.c $(ALL_LDFLAGS)

SIMHOST_PKG := umockdev-1.0 gio-2.0
$(BUILD)/kflash-simhost: sim/simhost.c sim/board.c sim/board.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Isim $(shell $(PKG_CONFIG) --cflags $(SIMHOST_PKG)) \
		-o $@ sim/simhost.c sim/board.c $(ALL_LDFLAGS) \
		$(shell $(PKG_CONFIG) --libs $(SIMHOST_PKG))

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(wildcard tests/*.h) $(BUILD)/libkflash.a | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(TEST_HELPERS) $(BUILD)/libkflash.a \
		$(ALL_LDFLAGS) $(LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

$(BUILD) $(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# ---- tests -----------------------------------------------------------------

check: deps
	$(MAKE) all $(TEST_BIN)
	$(MAKE) unit door sim-tests scenarios

unit: $(TEST_BIN)
	@ci/run-unit $(TEST_BIN)

door:
	@ci/check-door

sim-tests: all
	@KFLASH_BUILD=$(BUILD) ci/run-sim-tests

scenarios: all
	@KFLASH_BUILD=$(BUILD) ci/run-scenarios

deps:
	@ci/deps

# the unit tests under valgrind: any leak or invalid access fails
valgrind: $(TEST_BIN)
	@for t in $(TEST_BIN); do \
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--error-exitcode=9 $$t > $(BUILD)/valgrind.log 2>&1 || \
			{ cat $(BUILD)/valgrind.log; echo "valgrind: $$t failed"; exit 1; }; \
	done; echo "valgrind: $(words $(TEST_BIN)) test binaries clean"

demo: deps
	$(MAKE) all
	@KFLASH_BUILD=$(BUILD) sim/demo

bench: all
	@KFLASH_BUILD=$(BUILD) ci/bench

# ---- install ---------------------------------------------------------------

install: $(BUILD)/kflash
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(BUILD)/kflash $(DESTDIR)$(PREFIX)/bin/kflash
	install -m 644 doc/kflash.1 $(DESTDIR)$(PREFIX)/share/man/man1/kflash.1
	install -m 644 doc/kflash.bash-completion \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/kflash

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/kflash $(DESTDIR)$(PREFIX)/share/man/man1/kflash.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/kflash

clean:
	rm -rf build
