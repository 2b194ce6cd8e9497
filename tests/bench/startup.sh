#!/bin/sh
# startup.sh: what a run costs before any node: the whole process for `moonrig --version` and
# for a script with no nodes (as root, so the run's namespaces are made too), and peak RSS.
# Prints figures and the ratio to the NixOS driver (0.77 s and about 50 MB for an empty script,
# ../shared/reference/nixos-driver-measured.md). Figures, not assertions: machines are noisy.
set -eu
moonrig=${MOONRIG:-./build/moonrig}
n=${N:-50}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo '-- empty' > "$tmp/empty.lua"

# median wall time in ms of n runs of "$@"
median_ms() {
  i=0
  while [ $i -lt "$n" ]; do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
    i=$((i+1))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}
peak_rss_kb() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1
  else
    echo "n/a"
  fi
}
v=$(median_ms "$moonrig" --version)
e=$(median_ms "$moonrig" "$tmp/empty.lua")
rss=$(peak_rss_kb "$moonrig" "$tmp/empty.lua")
echo "moonrig --version:          median ${v} ms (n=$n)"
echo "empty script, whole process: median ${e} ms (n=$n)   NixOS driver: 770 ms   ratio $(awk "BEGIN{printf \"%.3f\", $e/770}")"
echo "empty script, peak RSS:      ${rss} kB   NixOS driver: ~50000 kB   target <= 8192 kB"
