#!/bin/sh
# run-all.sh: set up a fresh Debian 12 machine (as root) and run the whole test suite: unit, stdlib and
# fuzz tests, the root integration tests, then the same under ASan+UBSan with leak detection on.
# Every stage's output is shown and kept in build/run-all/. At the end every `# SKIP <id>:` found there
# must be declared in tests/expected-skips, and the checks of all suites are counted.
# run-all.sh --summary: run nothing; apply the skip gate and count again over the logs of the last run.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
logs=$top/build/run-all

# stage NAME COMMAND...: run COMMAND, its output shown and kept in $logs/NAME.log; fail as it fails.
stage() {
        name=$1
        shift
        { rc=0; "$@" 2>&1 || rc=$?; echo "$rc" >"$logs/$name.rc"; } | tee "$logs/$name.log"
        return "$(cat "$logs/$name.rc")"
}

# check_logs NAME BUILDDIR: `make check` shows a test's output only when it fails; keep every test's
# log in $logs/NAME-tests.log for the skip gate, and write the checks they ran to $logs/NAME.counts.
check_logs() {
        : >"$logs/$1-tests.log"
        : >"$logs/$1.counts"
        find "$2" -name '*.trs' | sort | while IFS= read -r trs; do
                log=${trs%.trs}.log
                cat "$log" >>"$logs/$1-tests.log"
                if grep -q '^:test-result: SKIP' "$trs"; then
                        echo "0 0 1"
                else
                        # The suite's own count: its `N passed, N failed, N skipped` line, or cmocka's
                        # summary; a program that prints neither counts as one check.
                        awk '
                          /^[0-9]+ passed, [0-9]+ failed/ { p = $1; f = $3; s = $5 + 0; own = 1 }
                          /^\[  PASSED  \] [0-9]+ test/ { cp = $4; cm = 1 }
                          /^\[  FAILED  \] [0-9]+ test/ { cf = $4; cm = 1 }
                          /^\[  SKIPPED \] [0-9]+ test/ { cs = $4; cm = 1 }
                          END {
                            if (own) print p, f, s
                            else if (cm) print cp + 0, cf + 0, cs + 0
                            else if (FILENAME != "") print 1, 0, 0
                          }' "$log"
                fi
        done >"$logs/$1.counts"
}

# stage_counts NAME: the checks a stage ran, from its suites' `N passed, N failed, N skipped` lines.
stage_counts() {
        awk '/^[0-9]+ passed, [0-9]+ failed/ { print $1, $3, $5 + 0 }' "$logs/$1.log" >"$logs/$1.counts"
}

run_stages() {
        sh tests/setup-debian.sh
        rm -rf "$logs"
        mkdir -p "$logs"
        stage check make -C build -s check VERBOSE=1 || { cat build/test-suite.log; exit 1; }
        check_logs check build
        # Coverage-guided fuzzing (libFuzzer), a bounded time per target; exit 77: no clang here.
        stage libfuzzer sh -c 'cd build && SRCDIR=.. FUZZ_TIME=${FUZZ_TIME:-6} sh ../tests/fuzz/run-libfuzzer.sh' ||
                [ "$(cat "$logs/libfuzzer.rc")" = 77 ] || exit 1
        stage_counts libfuzzer
        stage integration make -C build -s integration
        stage_counts integration
        # The tarball builds and passes make check; its fuzz pass is shorter (the full one ran above).
        FUZZ_RUNS=1000 make -C build -s distcheck >"$logs/distcheck.log" 2>&1 || { tail -n 60 "$logs/distcheck.log"; exit 1; }

        # Sanitizer build and its tests. Leak detection is on everywhere; tests/lsan.supp names the leaks that
        # are not ours to fix. A sanitizer report exits 86, which no test expects (some expect 1).
        mkdir -p build-asan
        ( cd build-asan && { [ -f Makefile ] || ../configure -q --enable-werror \
            CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
            LDFLAGS="-fsanitize=address,undefined"; } && make -s -j"$(nproc)" )
        export ASAN_OPTIONS=detect_leaks=1:exitcode=86
        export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
        export UBSAN_OPTIONS=print_stacktrace=1
        stage asan-check make -C build-asan -s check VERBOSE=1 || { cat build-asan/test-suite.log; exit 1; }
        check_logs asan-check build-asan
        stage asan-integration make -C build-asan -s integration
        stage_counts asan-integration
        unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
}
# Not `|| run_stages`: set -e would be off inside it.
if [ "${1:-}" != --summary ]; then
        run_stages
fi

# The skip gate: every skip names an id (`# SKIP <id>: <why>`) declared in tests/expected-skips; a cmocka
# skip() is named by a `# SKIP <id>: <why>` line its test prints first.
expected=$(sed 's/#.*//' tests/expected-skips | awk 'NF { print $1 }')
gate=0
seen=
for f in "$logs"/check-tests.log "$logs"/libfuzzer.log "$logs"/integration.log "$logs"/asan-check-tests.log "$logs"/asan-integration.log; do
        while IFS= read -r line; do
                [ -n "$line" ] || continue
                id=$(printf '%s\n' "$line" | sed -n 's/.*# SKIP \([A-Za-z0-9_.-]\{1,\}\): .*/\1/p')
                if [ -z "$id" ]; then
                        echo "not ok - a skip without an id (\`# SKIP <id>: <why>\`) in $f: $line"
                        gate=1
                elif ! printf '%s\n' "$expected" | grep -qxF -- "$id"; then
                        echo "not ok - skip '$id' is not declared in tests/expected-skips: $line"
                        gate=1
                else
                        case " $seen " in *" $id "*) ;; *) seen="${seen:+$seen }$id" ;; esac
                fi
        done <<EOT
$(grep -h '# SKIP ' "$f")
EOT
done
for f in "$logs"/check-tests.log "$logs"/asan-check-tests.log; do
        unnamed=$(awk '/^\[ RUN      \] / { running = $4; named = 0; next }
                       /# SKIP [A-Za-z0-9_.-]+: / { named = 1 }
                       /^\[  SKIPPED \] / && $4 == running && !named { print running }
                       /^\[ +[A-Z]+ +\] / { running = "" }' "$f")
        for t in $unnamed; do
                echo "not ok - cmocka test $t skipped without a \`# SKIP <id>: <why>\` line ($f)"
                gate=1
        done
done

# A sanitizer report fails the run even where a test let it pass (exit 86 is the other net).
for f in "$logs"/check-tests.log "$logs"/integration.log "$logs"/asan-check-tests.log "$logs"/asan-integration.log; do
        if grep -qE '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|:[0-9]+:[0-9]+: runtime error: ' "$f"; then
                echo "not ok - a sanitizer report in $f:"
                grep -E '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|:[0-9]+:[0-9]+: runtime error: |^SUMMARY: ' "$f" | sed 's/^/#   /'
                gate=1
        fi
done

total=$(cat "$logs"/check.counts "$logs"/libfuzzer.counts "$logs"/integration.counts "$logs"/asan-check.counts "$logs"/asan-integration.counts |
        awk '{ p += $1; f += $2; s += $3 } END { print p + 0, f + 0, s + 0 }')
# shellcheck disable=SC2086 # three numbers, split on purpose
set -- $total
[ "$1" -gt 0 ] || { echo "not ok - no check ran at all"; gate=1; }
why=
[ -n "$seen" ] && why=" ($(echo "$seen" | sed 's/ /, /g'): expected on this machine)"
[ "$gate" = 0 ] || set -- "$1" "$(($2 + 1))" "$3"
echo "$1 passed, $2 failed, $3 skipped"
echo "all test suites: $1 passed, $2 failed, $3 skipped$why"
[ "$gate" = 0 ] && [ "$2" = 0 ]
