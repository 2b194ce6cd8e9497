#!/bin/sh
# run.sh: the node contract: every tests/contract script once per node kind (container, vm),
# one `ok - <script> [<kind>]` line each, then `N passed, N failed, N skipped`.
#   MOONRIG=build/moonrig SRCDIR=. sh tests/contract/run.sh [KIND...] [-- SCRIPT...]
# A script that logs `# SKIP <id>: <why>` passed the rest of the contract and counts as a skip.
# The VM kind needs the test guest of tests/vm/mkinitrd.sh (MOONRIG_VM_CACHE, default
# /var/cache/moonrig-vm); without it its scripts are skipped (id vm), visibly.
set -u
moonrig=${MOONRIG:-./moonrig}
srcdir=${SRCDIR:-.}
dir=$srcdir/tests/contract
cache=${MOONRIG_VM_CACHE:-/var/cache/moonrig-vm}
kinds=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do kinds="$kinds $1"; shift; done
[ $# -gt 0 ] && shift
scripts="$*"
kinds=${kinds:-container vm}
scripts=${scripts:-lifecycle commands waits files crash_mid_command}
case $moonrig in /*) ;; *) moonrig=$(pwd)/$moonrig ;; esac

pass=0; fail=0; skip=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for kind in $kinds; do
  for s in $scripts; do
    name="${s%.lua}.lua [$kind]"
    if [ "$kind" = vm ] && { [ ! -r "$cache/vmlinuz" ] || [ ! -r "$cache/initrd.img" ]; }; then
      skip=$((skip+1)); echo "ok - $name # SKIP vm: no test VM in $cache (tests/vm/mkinitrd.sh $cache)"
      continue
    fi
    out=$tmp/o-$kind-${s%.lua}
    mkdir -p "$out"
    (cd "$dir" && MOONRIG_CONTRACT_KIND=$kind NO_COLOR=1 "$moonrig" -o "$out" "${s%.lua}.lua") >"$tmp/log" 2>&1
    rc=$?
    skipped=$(sed -n 's/.*\(# SKIP [A-Za-z0-9_-]*: .*\)/\1/p' "$tmp/log" | head -n1)
    if [ "$rc" != 0 ]; then
      fail=$((fail+1)); echo "not ok - $name (exit $rc)"
      tail -n 40 "$tmp/log" | sed 's/^/#   /'
    elif [ -n "$skipped" ]; then
      skip=$((skip+1)); echo "ok - $name $skipped"
    else
      pass=$((pass+1)); echo "ok - $name"
    fi
  done
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ $((pass+skip)) -gt 0 ]
