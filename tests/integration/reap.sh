#!/bin/sh
# reap.sh: processes orphaned during a run (a daemon double-forked on the host or in a node) are
# reaped while the run goes on, and moonrig still gets the exit status of every command it runs.
set -u
moonrig=${MOONRIG:-./moonrig}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: reap.sh needs root (the run's sandbox)"; exit 77; fi
tmp=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -rf "$tmp"' EXIT
cat > "$tmp/t.lua" <<'LUA'
local dir = os.getenv("REAP_DIR")
local function mark(name) assert(io.open(dir .. "/" .. name, "w")):close() end
local function wait_mark(name)
  for _ = 1, 300 do
    local f = io.open(dir .. "/" .. name)
    if f then f:close() return end
    sleep(0.1)
  end
  error("the checking script never wrote " .. name)
end

local a = container "a" {}
a:wait_for_unit("multi-user.target")
-- A daemon double-forked on the host: its parent is gone at once, the run's init inherits it.
os.execute("sh -c 'sleep 1 </dev/null >/dev/null 2>&1 &'")
-- The same in the node: the node's init inherits that one.
a:succeed("sh -c 'sleep 1 </dev/null >/dev/null 2>&1 &'")
mark("orphaned")
wait_mark("seen")

-- Orphans die in bursts while moonrig's own children run and exit: each status reaches moonrig.
os.execute("for i in 1 2 3 4 5 6 7 8 9; do (sleep 0.$i &); (sleep 1.$i &); done")
a:succeed("for i in 1 2 3 4 5 6 7 8 9; do (sleep 0.$i &); done")
for i = 1, 12 do
  expect.eq(a:execute("exit " .. i), i)
  local ok, how, code = os.execute("exit " .. i)
  expect.eq({ ok == nil, how, code }, { true, "exit", i })
  sleep(0.1)
end
local s1, s2 = parallel(function() return a:execute("sleep 0.3; exit 3") end,
                        function() return a:execute("sleep 0.2; exit 4") end)
expect.eq({ s1, s2 }, { 3, 4 })
sleep(1)
mark("done")
wait_mark("checked")
LUA

# "pid state ppid (comm)" of every process below $1 in the process tree, nested PID namespaces
# (the nodes') included. A comm may hold ") ": the fields start after the last one.
tree() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
    { s = $0; i = index(s, ") "); while (j = index(substr(s, i + 2), ") ")) i += j + 1
      split(substr(s, i + 2), f, " "); state[$1] = f[1]; ppid[$1] = f[2]
      c = index(s, "("); comm[$1] = substr(s, c, i + 1 - c) }
    END { below[root] = 1
          do { n = 0; for (p in ppid) if (!(p in below) && (ppid[p] in below)) { below[p] = 1; n++ } } while (n)
          for (p in below) if (p != root) print p, state[p], ppid[p], comm[p] }'
}
zombies() { tree "$1" | awk '$2 == "Z" { print $1 }' | sort; }

REAP_DIR=$tmp "$moonrig" "$tmp/t.lua" >"$tmp/log" 2>&1 &
pid=$!
i=0
while [ $i -lt 600 ] && [ ! -e "$tmp/orphaned" ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i+1)); done
[ -e "$tmp/orphaned" ] || bail "the run never got to orphan its processes" "$tmp/log"
# The run's init: the only child of the process we started.
init=$(tr -d ' ' < /proc/$pid/task/$pid/children)
orphan=$(pgrep -x -P "$init" sleep)
if [ -n "$orphan" ]; then ok "the run's init inherits the host orphan ($orphan)"
else not_ok "no orphan under the run's init $init: the check would prove nothing"; fi
touch "$tmp/seen"

i=0
while [ $i -lt 300 ] && [ ! -e "$tmp/done" ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i+1)); done
# A zombie may be caught between its exit and its reaping: only one seen twice, 1 s apart, stays.
zombies $pid > "$tmp/z1"; sleep 1; zombies $pid > "$tmp/z2"
stay=$(comm -12 "$tmp/z1" "$tmp/z2" | tr '\n' ' ')
if [ -z "$stay" ] && [ -e "$tmp/done" ]; then ok "no zombie stays in the run"
else
  not_ok "zombies stay in the run: ${stay:-none, but the run did not get that far}"
  [ -n "$stay" ] && tree $pid | sed 's/^/#   /'
fi
if [ -n "$orphan" ] && [ -d /proc/$orphan ]; then not_ok "the orphan $orphan is still there"
else ok "the orphan is gone"; fi
touch "$tmp/checked"

wait $pid; rc=$?; pid=
if [ $rc = 0 ]; then ok "every command's exit status reached moonrig"
else not_ok "the run failed (status $rc)"; sed 's/^/#   /' "$tmp/log"; fi
summary
