-- network.lua: N host-image containers on VLAN 1 (run as root: N=24 build/moonrig tests/bench/network.lua;
-- tests/bench/network.sh runs it for several N beside a raw nspawn baseline and prints the ratios).
-- start_all, wait_for_unit("multi-user.target") on every node in parallel, `hello` on each,
-- then the first node pings every other one once by name. Prints the script time and its phases;
-- the whole-process time, teardown and peak RSS are measured around the process by network.sh.
local t0 = monotonic_time()
local n = tonumber(os.getenv("N") or "24")
assert(n and n >= 2 and n <= 250, "N must be a number from 2 to 250")

for i = 1, n do
  container(string.format("n%02d", i)) { vlans = { 1 } }
end

local function each(fn)
  local fns = {}
  for i, node in ipairs(nodes) do fns[i] = function() fn(node) end end
  parallel(table.unpack(fns))
end

start_all()
each(function(node) node:wait_for_unit("multi-user.target") end)
local t_ready = monotonic_time()

each(function(node) node:succeed("hello") end)
local t_hello = monotonic_time()

local first = nodes[1]
local targets = {}
for i = 2, #nodes do targets[#targets + 1] = nodes[i].name end
-- one shell command: a command per ping would measure process start, not the network
first:succeed("for h in " .. table.concat(targets, " ") .. "; do ping -c 1 -W 2 -q $h >/dev/null || "
  .. "{ echo \"no answer from $h\" >&2; exit 1; }; done")
local t_end = monotonic_time()

-- moonrig's own peak memory and CPU so far (this process: PID 1 of the run's namespaces, the script
-- and the loop; its CPU without the nodes', in USER_HZ = 100 ticks)
local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local hwm = tonumber(slurp("/proc/self/status"):match("VmHWM:%s*(%d+)")) or 0
local fields = {}
for w in slurp("/proc/self/stat"):gsub("^.*%) ", ""):gmatch("%S+") do fields[#fields + 1] = w end
local cpu = ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / 100
print(string.format("BENCH n=%d script=%.3f ready=%.3f hello=%.3f ping=%.3f hwm_kb=%d cpu_self=%.2f", n,
  t_end - t0, t_ready - t0, t_hello - t_ready, t_end - t_hello, hwm, cpu))
