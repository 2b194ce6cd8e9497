#!/bin/sh
# binding_errors.sh: every binding's error path (lua/binding_errors.lua) run by an ASan build of
# moonrig with leak detection on: a binding that leaks when it raises fails here. LeakSanitizer's
# report comes from moonrig inside its sandbox (PID 2 there) on the same stderr.
# MOONRIG: the moonrig to run (default build-asan/moonrig); a build without ASan runs the script
# and skips the leak check.
set -u
. "$(dirname "$0")/lib.sh"
moonrig=$(realpath "${MOONRIG:-build-asan/moonrig}")
dir=$(cd "$(dirname "$0")/lua" && pwd)
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP root: the script boots a container"; exit 77; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT

asan=no
if strings "$moonrig" 2>/dev/null | grep -q '^LeakSanitizer' || ldd "$moonrig" 2>/dev/null | grep -q libasan; then
        asan=yes
fi
(cd "$dir" && ASAN_OPTIONS=detect_leaks=1:${ASAN_OPTIONS:-} NO_COLOR=1 "$moonrig" -o "$out" binding_errors.lua) \
        >"$out/log" 2>&1
rc=$?
checks=$(grep -c '^ok - ' "$out/log")
if [ "$rc" = 0 ] && [ "$checks" -gt 0 ] && ! grep -q '^!!!' "$out/log"; then
        ok "binding_errors.lua: $checks error paths raise their clear error"
else
        not_ok "binding_errors.lua: exit $rc, $checks checks"
        grep -v '^a # ' "$out/log" | tail -n 30 | sed 's/^/#   /'
fi
if [ "$checks" = 0 ]; then
        not_ok "no leak or memory error on any binding's error path (the script did not run)"
elif [ "$asan" = no ]; then
        skip "no leak on any binding's error path" asan "$moonrig is not an ASan build"
elif grep -q 'ERROR: LeakSanitizer\|ERROR: AddressSanitizer\|runtime error:' "$out/log"; then
        not_ok "no leak or memory error on any binding's error path"
        grep -A12 'ERROR: LeakSanitizer\|ERROR: AddressSanitizer\|runtime error:' "$out/log" | head -n 40 | sed 's/^/#   /'
else
        ok "no leak or memory error on any binding's error path (ASan, detect_leaks=1)"
fi
summary
