#!/bin/sh
# cli.sh: the command line as a user meets it, no root needed: --junit-xml (validated against
# tests/junit.xsd, one case per subtest, failures with their messages), --log-level filtering,
# --test-script, and the declaration errors (exit 2, the message naming the node and the option,
# the script's file and line).
# Usage: MOONRIG=build/moonrig SRCDIR=. sh tests/cli.sh
set -u
moonrig=${MOONRIG:-./moonrig}
srcdir=${SRCDIR:-.}
pass=0; fail=0; skip=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
[ -x "$moonrig" ] || { echo "1..0 # SKIP moonrig: no binary at $moonrig"; exit 77; }

check() {   # check WHAT CMD...: one line, ok or not ok
  what=$1; shift
  if "$@"; then pass=$((pass+1)); echo "ok - $what"
  else fail=$((fail+1)); echo "not ok - $what"; fi
}
has() { grep -qF -- "$1" "$2"; }
hasnt() { ! grep -qF -- "$1" "$2"; }
# run NAME [ARGS...]: moonrig ARGS, output in $tmp/NAME.out, status in $tmp/NAME.rc
run() {
  name=$1; shift
  (cd "$tmp" && NO_COLOR=1 MOONRIG_NO_SANDBOX=1 "$moonrig" "$@") >"$tmp/$name.out" 2>&1
  echo $? >"$tmp/$name.rc"
}
rc_is() { [ "$(cat "$tmp/$1.rc")" = "$2" ] || { echo "#   $1: exit $(cat "$tmp/$1.rc"), wanted $2"; sed 's/^/#   /' "$tmp/$1.out" | tail -n 20; false; }; }

# ---- --junit-xml ----
cat >"$tmp/junit.lua" <<'EOF'
subtest("first passes", function() log.info("inside first") end)
pcall(subtest, "second <fails> & says why", function() expect.eq(1, 2, "one is not two") end)
subtest("third passes", function() end)
subtest("fourth fails", function() error(failure("TestFailure", "the fourth broke")) end)
subtest("never runs", function() end)
EOF
cat >"$tmp/junit-pass.lua" <<'EOF'
subtest("alpha", function() end)
subtest("beta", function() end)
EOF
mkdir -p "$tmp/out"
run junit -o "$tmp/out" --junit-xml report.xml junit.lua
run junit-pass -o "$tmp/out" --junit-xml "$tmp/pass.xml" junit-pass.lua
x=$tmp/out/report.xml
xp() { xmllint --xpath "$1" "$2" 2>/dev/null; }
eq() { [ "$1" = "$2" ] || { echo "#   got \"$1\", wanted \"$2\""; false; }; }
check "--junit-xml: a script whose subtests fail exits 1" rc_is junit 1
check "--junit-xml: a passing script exits 0" rc_is junit-pass 0
check "--junit-xml PATH is relative to -o" test -s "$x"
check "--junit-xml with an absolute PATH writes there" test -s "$tmp/pass.xml"
if ! command -v xmllint >/dev/null 2>&1; then
  skip=$((skip+1)); echo "ok - the JUnit reports validate against tests/junit.xsd # SKIP xmllint: no xmllint (libxml2-utils)"
else
  check "the report of a failing run validates against tests/junit.xsd" \
    xmllint --noout --schema "$srcdir/tests/junit.xsd" "$x" 2>"$tmp/xsd.err" || { sed 's/^/#   /' "$tmp/xsd.err"; false; }
  check "the report of a passing run validates against tests/junit.xsd" \
    xmllint --noout --schema "$srcdir/tests/junit.xsd" "$tmp/pass.xml" 2>"$tmp/xsd.err" || { sed 's/^/#   /' "$tmp/xsd.err"; false; }
  # One case per subtest, in order; a failed run adds "main", which carries the script's error.
  names=$(xp '//testcase/@name' "$x" | sed 's/^ *name="\(.*\)"$/\1/' | tr '\n' '|')
  check "one testcase per subtest, in order (a failing run adds main)" \
    eq "$names" 'main|first passes|second &lt;fails&gt; &amp; says why|third passes|fourth fails|'
  names=$(xp '//testcase/@name' "$tmp/pass.xml" | sed 's/^ *name="\(.*\)"$/\1/' | tr '\n' '|')
  check "a passing run has exactly its subtests as cases" eq "$names" 'alpha|beta|'
  check "testsuite tests= counts the cases" eq "$(xp 'string(//testsuite/@tests)' "$x")" 5
  check "testsuite failures= counts the failed cases (main, second, fourth)" \
    eq "$(xp 'string(//testsuite/@failures)' "$x")" 3
  check "the failed run's main case carries the script's error" \
    has "TestFailure: the fourth broke" /dev/stdin <<EOT
$(xp 'string(//testcase[@name="main"]/failure/@message)' "$x") $(xp 'string(//testcase[@name="main"]/system-err)' "$x")
EOT
  check "a passing run: failures=0" eq "$(xp 'string(//testsuite/@failures)' "$tmp/pass.xml")" 0
  check "passing subtests carry no failure" \
    eq "$(xp 'count(//testcase[@name="first passes" or @name="third passes"]/failure)' "$x")" 0
  check "the passing run's cases carry no failure" eq "$(xp 'count(//failure)' "$tmp/pass.xml")" 0
  m=$(xp 'string(//testcase[@name="second <fails> & says why"]/failure/@message)' "$x")
  check "a failed expect's case has its message in <failure message=>" \
    eq "$m" '!!! Test "second <fails> & says why" failed with error: "one is not two: expected values to be equal'
  m=$(xp 'string(//testcase[@name="fourth fails"]/failure/@message)' "$x")
  check "a failure()'s case has its message in <failure message=>" \
    eq "$m" '!!! Test "fourth fails" failed with error: "the fourth broke"'
  check "a subtest's log lines land in its system-out" \
    eq "$(xp 'string(//testcase[@name="first passes"]/system-out)' "$x" | head -n1)" "inside first"
  check "every case has a classname and a time" \
    eq "$(xp 'count(//testcase[@classname!="" and @time>=0])' "$x")" 5
  # as in NixOS, log.error inside a subtest marks its case failed, with the message; a warning does not
  cat >"$tmp/logerr.lua" <<'LUA'
subtest("logs an error", function() log.error("something looked wrong") end)
subtest("logs a warning", function() log.warning("just a warning") end)
LUA
  run logerr -o "$tmp/out" --junit-xml logerr.xml logerr.lua
  check "log.error in a subtest: the run still exits 0" rc_is logerr 0
  check "log.error in a subtest: its case fails with the message" \
    eq "$(xp 'string(//testcase[@name="logs an error"]/failure/@message)' "$tmp/out/logerr.xml")" "something looked wrong"
  check "log.warning in a subtest: its case passes" \
    eq "$(xp 'count(//testcase[@name="logs a warning"]/failure)' "$tmp/out/logerr.xml")" 0
fi

# ---- --log-level ----
cat >"$tmp/levels.lua" <<'EOF'
log.debug("marker-debug")
log.info("marker-info")
log.warning("marker-warning")
log.error("marker-error")
EOF
for level in debug info warning error; do
  run "lvl-$level" --log-level "$level" levels.lua
done
# the levels in order; a level shows its own and later lines only
seen_ok() {   # seen_ok LEVEL SHOWN... : the run at LEVEL shows exactly the SHOWN markers
  f=$tmp/lvl-$1.out; shift
  for m in debug info warning error; do
    case " $* " in
      *" $m "*) has "marker-$m" "$f" || { echo "#   marker-$m missing"; return 1; } ;;
      *) hasnt "marker-$m" "$f" || { echo "#   marker-$m shown"; return 1; } ;;
    esac
  done
}
check "--log-level debug shows log.debug and everything above" seen_ok debug debug info warning error
check "--log-level info hides log.debug" seen_ok info info warning error
check "--log-level warning hides debug and info lines" seen_ok warning warning error
check "--log-level error shows only errors" seen_ok error error
run lvl-default levels.lua
check "the default level is info" seen_ok default info warning error
check "log.error does not fail the run" rc_is lvl-error 0
run lvl-bad --log-level loud levels.lua
check "--log-level loud: exit 2" rc_is lvl-bad 2
check "--log-level loud: the error names the option and the levels" \
  has "--log-level: unknown level 'loud' (use debug, info, warning or error)" "$tmp/lvl-bad.out"

# ---- --test-script ----
printf 'log.info("ran-from-" .. "test-script")\n' >"$tmp/ts.lua"
printf 'error(failure("TestFailure", "second script ran"))\n' >"$tmp/other.lua"
run ts --test-script ts.lua
check "--test-script FILE runs FILE" has "ran-from-test-script" "$tmp/ts.out"
check "--test-script FILE: exit 0" rc_is ts 0
run ts-both --test-script ts.lua other.lua
check "--test-script and a positional script: exit 2" rc_is ts-both 2
check "--test-script and a positional script: says so, naming both" \
  has "the script is given twice, as 'other.lua' and with --test-script 'ts.lua': give only one" "$tmp/ts-both.out"
check "--test-script and a positional script: neither runs" hasnt "ran-from-test-script" "$tmp/ts-both.out"
run ts-missing --test-script nonexistent.lua
check "--test-script with a missing file: exit 2" rc_is ts-missing 2

# ---- declaration errors: exit 2, the node, the option, the script's line ----
decl() {   # decl WHAT 'LUA' 'MESSAGE'
  printf 'local ok = true\n%s\nlog.info("after the bad declaration")\n' "$2" >"$tmp/decl.lua"
  run decl decl.lua
  if rc_is decl 2 && has "$3" "$tmp/decl.out" && has 'File "decl.lua", line 2, in main chunk' "$tmp/decl.out" \
     && hasnt "after the bad declaration" "$tmp/decl.out"; then
    pass=$((pass+1)); echo "ok - declaration error: $1"
  else
    fail=$((fail+1)); echo "not ok - declaration error: $1"
    sed 's/^/#   /' "$tmp/decl.out" | tail -n 8
  fi
}
decl "a bad node name" 'container "bad name" {}' \
  "UsageError: container: bad node name \"bad name\": use letters, digits, '-' and '_' (at most 63, starting with a letter or digit)"
decl "a name starting with -" 'vm "-v" { kernel = "/dev/null" }' "UsageError: vm: bad node name \"-v\""
decl "a name over 63 characters" "container \"$(printf 'a%.0s' $(seq 64))\" {}" "UsageError: container: bad node name"
decl "an unknown option" 'container "web" { colour = "red" }' 'UsageError: container "web": unknown option colour'
decl "an unknown VM option" 'vm "v" { kernel = "/dev/null", services = {} }' 'UsageError: vm "v": unknown option services'
decl "an option of the wrong type" 'container "web" { hostname = 3 }' \
  'UsageError: container "web": option hostname must be a string, got number'
decl "options that are not a table" 'container("web", "x")' 'UsageError: container "web": options must be a table'
decl "a VLAN over 255" 'container "web" { vlans = { 1, 256 } }' \
  'UsageError: container "web": vlans[2] must be a VLAN number from 0 to 255, got 256'
decl "a VLAN that is not a number" 'container "web" { vlans = { "a" } }' \
  'UsageError: container "web": vlans[1] must be a VLAN number from 0 to 255, got "a"'
decl "a negative VLAN" 'vm "v" { kernel = "/dev/null", vlans = { -1 } }' \
  'UsageError: vm "v": vlans[1] must be a VLAN number from 0 to 255, got -1'
decl "a VLAN listed twice" 'container "web" { vlans = { 2, 2 } }' 'UsageError: container "web": VLAN 2 is listed twice'
decl "an image that is not a directory" 'container "web" { image = "/nonexistent" }' \
  'UsageError: container "web": image /nonexistent is not a directory'
decl "a system without init" 'container "web" { system = "/nonexistent" }' \
  'UsageError: container "web": system /nonexistent has no init'
decl "a VM without kernel or drives" 'vm "v" {}' \
  'UsageError: vm "v": give kernel = "/path/vmlinuz" (and initrd =) or drives = { ... }'
decl "a VM kernel that cannot be read" 'vm "v" { kernel = "/nonexistent" }' \
  'UsageError: vm "v": kernel /nonexistent cannot be read'
decl "an unknown accel" 'vm "v" { kernel = "/dev/null", accel = "xen" }' \
  'UsageError: vm "v": accel must be "tcg", "kvm" or "auto" (KVM, else TCG)'

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ $((pass + skip)) -gt 0 ]
