#!/bin/sh
# run-fuzz.sh: short fuzzing passes, each over its seeds and then random mutations of them: the
# config parser, then what qemu.c and qmp.c read from a guest and from QEMU (fuzz_qemu, built here
# with ASan and UBSan). A crash, a sanitizer report or a broken property fails the suite.
set -eu
srcdir=${SRCDIR:-.}
fuzz=${FUZZ_CONFIG:-./tests/fuzz/fuzz_config}
"$fuzz" "$srcdir"/tests/fuzz/corpus/config/*
"$fuzz" --random "${FUZZ_RUNS:-20000}" --seed "${FUZZ_SEED:-1}" "$srcdir"/tests/fuzz/corpus/config/*

# fuzz_qemu: qemu.c and qmp.c are compiled again with the sanitizers, so that a read past a buffer
# inside them is caught; what else they need (strv, outbuf) comes from the library as built.
# FUZZ_QEMU names a binary built elsewhere instead.
fuzz_qemu=${FUZZ_QEMU:-}
if [ -z "$fuzz_qemu" ]; then
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_qemu.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        trap 'exit 130' INT TERM
        cc=${CC:-cc}
        libs=$(${PKG_CONFIG:-pkg-config} --libs libsystemd jansson 2>/dev/null) || libs="-lsystemd -ljansson"
        cflags=$(${PKG_CONFIG:-pkg-config} --cflags libsystemd jansson 2>/dev/null) || cflags=
        san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
        # shellcheck disable=SC2086 # $san and $cc split into words on purpose
        if ! echo 'int main(void) { return 0; }' | $cc $san -x c - -o "$tmp/probe" 2>/dev/null; then
                echo "run-fuzz.sh: $cc cannot build with $san: fuzz_qemu runs without the sanitizers" >&2
                san=
        fi
        # shellcheck disable=SC2086 # so do the flags
        $cc -std=gnu11 -g -O1 $san $cflags -DFUZZ_STANDALONE \
                -iquote "$srcdir"/runner -iquote "$srcdir"/lua -iquote . \
                -o "$tmp"/fuzz_qemu "$srcdir"/tests/fuzz/fuzz_qemu.c "$srcdir"/runner/qemu.c "$srcdir"/runner/qmp.c \
                ./librunner.a $libs
        fuzz_qemu=$tmp/fuzz_qemu
fi
"$fuzz_qemu" --random "${FUZZ_RUNS:-20000}" --seed "${FUZZ_SEED:-1}"
echo "2 passed, 0 failed"
