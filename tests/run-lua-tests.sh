#!/bin/sh
# run-lua-tests.sh [DIR]: run every DIR/*.lua (default tests/lua) with the built moonrig. A test's header lines
# say what must happen:
#   -- expect-exit: N          the exit status (default 0)
#   -- expect-output: TEXT     TEXT must appear in stdout+stderr (may repeat)
#   -- reject-output: TEXT     TEXT must not appear
#   -- args: ARGS              extra moonrig arguments before the script
# A test that skips part of itself logs `# SKIP <id>: <why>`; each such line is reported as a skip of its own
# beside the test's result, and counted. A sanitizer report in a test's output fails the test whatever its
# exit status (a test that expects exit 1 would otherwise hide one).
set -u
moonrig=${MOONRIG:-./moonrig}
srcdir=${SRCDIR:-.}
dir=${1:-tests/lua}
pass=0; fail=0; skip=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for t in "$srcdir"/$dir/*.lua; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  want=$(sed -n 's/^-- expect-exit: *\([0-9]*\).*/\1/p' "$t" | head -n1)
  want=${want:-0}
  args=$(sed -n 's/^-- args: *//p' "$t" | head -n1)
  mkdir -p "$tmp/o-$name"
  (cd "$srcdir/$dir" && NO_COLOR=1 "$moonrig" -o "$tmp/o-$name" $args "$t") >"$tmp/out" 2>&1
  got=$?
  why=""
  [ "$got" = "$want" ] || why="exit $got, wanted $want"
  while IFS= read -r text; do
    grep -qF -- "$text" "$tmp/out" || why="${why:+$why; }missing output: $text"
  done <<EOT
$(sed -n 's/^-- expect-output: //p' "$t")
EOT
  while IFS= read -r text; do
    [ -n "$text" ] && grep -qF -- "$text" "$tmp/out" && why="${why:+$why; }unexpected output: $text"
  done <<EOT
$(sed -n 's/^-- reject-output: //p' "$t")
EOT
  grep -qE '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|:[0-9]+:[0-9]+: runtime error: ' "$tmp/out" &&
    why="${why:+$why; }a sanitizer report"
  if [ -z "$why" ]; then
    pass=$((pass+1)); echo "ok - $name"
  else
    fail=$((fail+1)); echo "not ok - $name ($why)"
    tail -n 40 "$tmp/out" | sed 's/^/#   /'
  fi
  # One line per skip, as `ok - NAME # SKIP <id>: <why>`, whatever prefix the log put before it.
  sed -n 's/.*\(# SKIP .*\)/ok - '"$name"' \1/p' "$tmp/out" >"$tmp/skips"
  cat "$tmp/skips"
  skip=$((skip + $(wc -l <"$tmp/skips")))
done
[ $((pass + fail)) -gt 0 ] || echo "run-lua-tests.sh: no test in $srcdir/$dir" >&2
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ $((pass + fail)) -gt 0 ]
