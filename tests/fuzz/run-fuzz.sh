#!/bin/sh
# run-fuzz.sh: a short fuzzing pass over every target in tests/fuzz/targets, built standalone around
# tests/fuzz/driver.c with ASan and UBSan (the runner/ sources it exercises compiled again with
# them): its seeds in tests/fuzz/corpus/<target>/, then FUZZ_RUNS mutants with the fixed seed 1
# (the same inputs on every run), then FUZZ_RUNS more with a rotating seed (FUZZ_SEED, else drawn
# from the clock), printed so a finding can be reproduced. A crash, a sanitizer report or a broken
# property fails the suite and leaves the input in FUZZ_ARTIFACTS (the current directory).
#   FUZZ_RUNS=N FUZZ_SEED=S FUZZ_TARGETS="config qmp" sh tests/fuzz/run-fuzz.sh
set -u
srcdir=${SRCDIR:-.}
runs=${FUZZ_RUNS:-5000}
seed=${FUZZ_SEED:-$(( ($(date +%s) * 1000003 + $$ * 65537) % 1000000000 ))}
artifacts=${FUZZ_ARTIFACTS:-./}
passed=0 failed=0 skipped=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

cc=${CC:-cc}
libs=$(${PKG_CONFIG:-pkg-config} --libs libsystemd jansson 2>/dev/null) || libs="-lsystemd -ljansson"
cflags=$(${PKG_CONFIG:-pkg-config} --cflags libsystemd jansson 2>/dev/null) || cflags=
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# shellcheck disable=SC2086 # $san and $cc split into words on purpose
if ! echo 'int main(void) { return 0; }' | $cc $san -x c - -o "$tmp/probe" 2>/dev/null; then
        echo "# $cc cannot build with the sanitizers: the targets run as built by make, without them"
        san=
fi

echo "fuzz: seed $seed (FUZZ_SEED=$seed to reproduce)"
# One pass: "ok" or "not ok" with the end of what the program printed.
pass() {
        what=$1; shift
        if "$@" >"$tmp/out" 2>&1; then
                echo "ok - $what"
                passed=$((passed + 1))
        else
                echo "not ok - $what"
                grep -E 'ERROR|SUMMARY|property failed|runtime error|input written to|seed' "$tmp/out" |
                        head -n 20 | sed 's/^/#   /'
                echo "#   replay: tests/fuzz/<target> <the input written>, or rerun with the seed above"
                failed=$((failed + 1))
        fi
}

grep -v '^#' "$srcdir/tests/fuzz/targets" | while read -r name sources; do
        [ -n "$name" ] || continue
        case " ${FUZZ_TARGETS:-$name} " in *" $name "*) ;; *) continue ;; esac
        echo "$name $sources"
done >"$tmp/list"

while read -r name sources; do
        bin=./tests/fuzz/fuzz_$name
        if [ -n "$san" ]; then
                bin=$tmp/fuzz_$name
                set --
                for s in $sources; do set -- "$@" "$srcdir/$s"; done
                # shellcheck disable=SC2086 # the flags split into words on purpose
                if ! $cc -std=gnu11 -g -O1 $san $cflags -iquote "$srcdir"/runner -iquote "$srcdir"/lua -iquote . \
                        -o "$bin" "$srcdir/tests/fuzz/fuzz_$name.c" "$srcdir/tests/fuzz/driver.c" "$@" \
                        ./librunner.a $libs -lm >"$tmp/out" 2>&1; then
                        echo "not ok - fuzz_$name builds with the sanitizers"
                        sed 's/^/#   /' "$tmp/out" | tail -n 30
                        failed=$((failed + 1))
                        continue
                fi
        fi
        pass "fuzz_$name: $runs mutants, fixed seed 1" \
                "$bin" --runs "$runs" --seed 1 --artifact-prefix "$artifacts" "$srcdir/tests/fuzz/corpus/$name"
        pass "fuzz_$name: $runs mutants, seed $seed" \
                "$bin" --runs "$runs" --seed "$seed" --artifact-prefix "$artifacts" "$srcdir/tests/fuzz/corpus/$name"
        tail -n 1 "$tmp/out" | sed 's/^/# /'
done <"$tmp/list"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
