#!/bin/sh
# startup.sh: what a run costs before any node: the whole process for `moonrig --version` and for
# a script with no nodes (as root, so the run's namespaces are made too), and peak RSS. Each
# figure is printed beside floors measured in the same run, and the ratio to them:
#   /bin/true           starting any process at all
#   lua-floor           a C program that makes a Lua 5.4 state, opens its libraries, runs an
#                       empty chunk and exits (built here against the same liblua as moonrig)
#   unshare -mpn true   making a mount, PID and network namespace and a child in them, as the
#                       run's sandbox does (root only)
# The NixOS driver's figure (0.77 s and about 50 MB for an empty script, measured once on these
# machines: ../shared/reference/nixos-driver-measured.md) is printed as a historical reference
# only: it was not measured in this run. Figures, not assertions: machines are noisy.
set -eu
moonrig=${MOONRIG:-./build/moonrig}
n=${N:-50}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo '-- empty' > "$tmp/empty.lua"

cat > "$tmp/lua-floor.c" <<'C'
#include <lauxlib.h>
#include <lualib.h>
int main(void) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        int r = luaL_dostring(L, "-- empty");
        lua_close(L);
        return r;
}
C
# shellcheck disable=SC2046 # pkg-config's words
${CC:-cc} -O2 -o "$tmp/lua-floor" "$tmp/lua-floor.c" $(pkg-config --cflags --libs lua5.4)

# time_us NAME CMD...: one run of CMD, its wall time in microseconds appended to $tmp/NAME
time_us() {
  f=$tmp/$1; shift
  s=$(date +%s%N); "$@" >/dev/null 2>&1 || :; e=$(date +%s%N)
  echo $(( (e - s) / 1000 )) >> "$f"
}
# median in ms of the times in $tmp/NAME
median_ms() { sort -n "$tmp/$1" | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'; }
peak_rss_kb() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1
  else
    echo "n/a"
  fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

root=0; [ "$(id -u)" = 0 ] && unshare --mount --pid --net --fork /bin/true 2>/dev/null && root=1
# interleaved, so that a busy moment of the machine weighs on each alike
i=0
while [ $i -lt "$n" ]; do
  time_us true /bin/true
  time_us lua "$tmp/lua-floor"
  time_us version "$moonrig" --version
  time_us empty "$moonrig" "$tmp/empty.lua"
  [ $root = 0 ] || time_us ns unshare --mount --pid --net --fork /bin/true
  i=$((i+1))
done
t_true=$(median_ms true) t_lua=$(median_ms lua) v=$(median_ms version) e=$(median_ms empty)
[ $root = 0 ] || t_ns=$(median_ms ns)

rss_true=$(peak_rss_kb /bin/true)
rss_lua=$(peak_rss_kb "$tmp/lua-floor")
rss=$(peak_rss_kb "$moonrig" "$tmp/empty.lua")

echo "floors, measured in this run (median of n=$n):"
echo "  /bin/true:                   ${t_true} ms   peak RSS ${rss_true} kB"
echo "  lua-floor (bare Lua state):  ${t_lua} ms   peak RSS ${rss_lua} kB"
if [ $root = 1 ]; then
  echo "  unshare -mpn --fork true:    ${t_ns} ms"
else
  echo "  unshare -mpn --fork true:    not measured (needs root; moonrig makes no namespaces either)"
fi
echo "moonrig --version:             median ${v} ms   ratio $(ratio "$v" "$t_true") of /bin/true," \
  "$(ratio "$v" "$t_lua") of lua-floor"
if [ $root = 1 ]; then
  echo "empty script, whole process:   median ${e} ms   ratio $(ratio "$e" "$t_lua") of lua-floor," \
    "$(ratio "$e" "$t_ns") of unshare -mpn;" \
    "beyond both floors $(awk -v e="$e" -v l="$t_lua" -v s="$t_ns" -v t="$t_true" 'BEGIN { printf "%.2f", e - l - s + t }') ms"
else
  echo "empty script, whole process:   median ${e} ms   ratio $(ratio "$e" "$t_lua") of lua-floor"
fi
echo "empty script, peak RSS:        ${rss} kB   ratio $(ratio "$rss" "$rss_lua") of lua-floor; target <= 8192 kB"
echo "historical reference, not measured here: NixOS driver 770 ms and ~50000 kB for an empty script" \
  "(ratio $(ratio "$e" 770) of its time)"
