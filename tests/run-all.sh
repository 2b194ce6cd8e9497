#!/bin/sh
# run-all.sh: set up a fresh Debian 12 machine (as root) and run the whole test suite:
# unit, stdlib and fuzz tests, the root integration tests, then the same under ASan+UBSan.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup-debian.sh
make -C build -s check VERBOSE=1 || { cat build/test-suite.log; exit 1; }
make -C build -s integration
make -C build -s distcheck >/dev/null
# Sanitizer build and its tests.
mkdir -p build-asan
( cd build-asan && { [ -f Makefile ] || ../configure -q --enable-werror \
    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    LDFLAGS="-fsanitize=address,undefined"; } && make -s -j"$(nproc)" )
ASAN_OPTIONS=detect_leaks=1 make -C build-asan -s check VERBOSE=1 || { cat build-asan/test-suite.log; exit 1; }
ASAN_OPTIONS=detect_leaks=0 make -C build-asan -s integration
echo "all test suites passed"
