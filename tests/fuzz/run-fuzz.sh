#!/bin/sh
# run-fuzz.sh: a short fuzzing pass over the config parser: the seed corpus, then random
# mutations of it. A crash or sanitizer report fails the suite.
set -eu
srcdir=${SRCDIR:-.}
fuzz=${FUZZ_CONFIG:-./tests/fuzz/fuzz_config}
"$fuzz" "$srcdir"/tests/fuzz/corpus/config/*
"$fuzz" --random ${FUZZ_RUNS:-20000} --seed ${FUZZ_SEED:-1} "$srcdir"/tests/fuzz/corpus/config/*
echo "1 passed, 0 failed"
