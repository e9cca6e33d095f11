#!/bin/sh
# tests/test-crash.sh - make check's short form of make crash: 50 kills with
# SIGKILL at the saves of 'kflash settings' (the registry) and 'kflash add'
# (the registry, the board's config, the session recording): every file
# stays the old or the new version and no temp file is left once the next
# save ran. make crash (tests/crash.py) does 500 and the builds.
cd "$(dirname "$0")/.." || exit 2
CRASH_RUNS=${CRASH_RUNS:-50} exec /usr/bin/python3 tests/crash.py settings add
