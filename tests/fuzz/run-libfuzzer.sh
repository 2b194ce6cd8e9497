#!/bin/sh
# run-libfuzzer.sh: coverage-guided fuzzing for a bounded time. Each target in tests/fuzz/targets is
# built with clang -fsanitize=fuzzer,address,undefined (its runner/ sources too; the rest comes
# from librunner.a) and run for FUZZ_TIME seconds (default 15) over its seed corpus
# tests/fuzz/corpus/<target>/, read only: what libFuzzer finds goes to a temporary directory,
# so a CI run leaves the tree clean. A crash, a leak, a sanitizer report or a broken property
# fails the run and prints where the reproducer is (kept in FUZZ_ARTIFACTS, default
# ./fuzz-artifacts). Run from the build directory (make fuzz does).
#   FUZZ_TIME=60 FUZZ_TARGETS="config qmp" CLANG=clang-14 sh tests/fuzz/run-libfuzzer.sh
#   FUZZ_KEEP=1: keep the new inputs (the run prints where) to add the good ones to the corpus.
set -u
srcdir=${SRCDIR:-.}
time_per=${FUZZ_TIME:-15}
clang=${CLANG:-clang}
artifacts=${FUZZ_ARTIFACTS:-./fuzz-artifacts}
passed=0 failed=0 skipped=0

skip() {
        echo "1..0 # SKIP libfuzzer: $*"
        exit 77
}
command -v "$clang" >/dev/null 2>&1 || skip "no $clang (set CLANG)"
[ -f ./librunner.a ] || skip "run it from the build directory, after make (no ./librunner.a)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-libfuzzer.XXXXXX")
[ -n "${FUZZ_KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

flags="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
# shellcheck disable=SC2086 # the flags split into words on purpose
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void) d; (void) n; return 0; }\n' |
        "$clang" $flags -x c - -o "$tmp/probe" >"$tmp/out" 2>&1 ||
        skip "$clang cannot link -fsanitize=fuzzer: $(head -n 1 "$tmp/out")"

libs=$(${PKG_CONFIG:-pkg-config} --libs libsystemd jansson 2>/dev/null) || libs="-lsystemd -ljansson"
cflags=$(${PKG_CONFIG:-pkg-config} --cflags libsystemd jansson 2>/dev/null) || cflags=
mkdir -p "$artifacts"

grep -v '^#' "$srcdir/tests/fuzz/targets" | while read -r name sources; do
        [ -n "$name" ] || continue
        case " ${FUZZ_TARGETS:-$name} " in *" $name "*) ;; *) continue ;; esac
        echo "$name $sources"
done >"$tmp/list"

while read -r name sources; do
        set --
        for s in $sources; do set -- "$@" "$srcdir/$s"; done
        # shellcheck disable=SC2086 # the flags split into words on purpose
        if ! "$clang" -std=gnu11 $flags $cflags -iquote "$srcdir"/runner -iquote "$srcdir"/lua -iquote . \
                -o "$tmp/fuzz_$name" "$srcdir/tests/fuzz/fuzz_$name.c" "$@" ./librunner.a $libs -lm \
                >"$tmp/out" 2>&1; then
                echo "not ok - libfuzzer fuzz_$name builds"
                sed 's/^/#   /' "$tmp/out" | tail -n 30
                failed=$((failed + 1))
                continue
        fi
        # New inputs into $tmp/new-<name>; the corpus in the tree is only read.
        mkdir -p "$tmp/new-$name"
        if "$tmp/fuzz_$name" -max_total_time="$time_per" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
                -print_final_stats=1 -artifact_prefix="$artifacts/" \
                "$tmp/new-$name" "$srcdir/tests/fuzz/corpus/$name" >"$tmp/out" 2>&1; then
                stats=$(grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$tmp/out" |
                        sed 's/^stat:://; s/: */=/' | tr '\n' ' ')
                cov=$(grep -oE 'cov: [0-9]+' "$tmp/out" | tail -n 1)
                echo "ok - libfuzzer fuzz_$name: ${time_per}s, $cov, $stats"
                passed=$((passed + 1))
        else
                echo "not ok - libfuzzer fuzz_$name"
                grep -E 'ERROR|SUMMARY|property failed|runtime error|Test unit written to' "$tmp/out" | head -n 20 |
                        sed 's/^/#   /'
                for f in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
                        [ -f "$f" ] && echo "#   reproducer: $f (replay: tests/fuzz/fuzz_$name $f)"
                done
                failed=$((failed + 1))
        fi
done <"$tmp/list"

[ -n "${FUZZ_KEEP:-}" ] && echo "# new inputs kept in $tmp/new-*"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
