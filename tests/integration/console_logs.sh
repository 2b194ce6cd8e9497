#!/bin/sh
# console_logs.sh: a node's console log is kept as <out>/<name>.console.log only with an explicit
# -o; a run without it writes nothing into the directory it was started from.
set -u
. "$(dirname "$0")/lib.sh"
moonrig=$(realpath "${MOONRIG:-./moonrig}")
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: console_logs.sh boots a container"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/cwd" "$tmp/out"
printf 'local c = container "logged" {}\nc:succeed("echo hi >/dev/console")\n' > "$tmp/t.lua"

(cd "$tmp/cwd" && NO_COLOR=1 "$moonrig" "$tmp/t.lua") >"$tmp/log" 2>&1 || bail "a run without -o (exit $?)" "$tmp/log"
left=$(ls -A "$tmp/cwd")
[ -z "$left" ] && ok "without -o the run writes nothing where it started" ||
        not_ok "without -o the run left in its directory: $left"

(cd "$tmp/cwd" && NO_COLOR=1 "$moonrig" -o "$tmp/out" "$tmp/t.lua") >"$tmp/log" 2>&1 || bail "a run with -o (exit $?)" "$tmp/log"
grep -q "hi" "$tmp/out/logged.console.log" 2>/dev/null && ok "with -o the console is kept in <out>/logged.console.log" ||
        not_ok "with -o there is no <out>/logged.console.log holding the console"
summary
