-- containers.lua: container figures beside raw baselines, all from one run (as root:
-- build/moonrig tests/bench/containers.lua, or tests/bench/containers.sh). Figures, no assertions.
-- (a) start() + wait_for_unit("multi-user.target") of a fresh host-image node, beside a raw
--     systemd-nspawn boot of the same kind of root to READY=1 (containers.sh --raw-once), the two
--     interleaved so that a busy host weighs on both alike; target: ratio <= 1.1
-- (b) median succeed("true") beside a shell loop of `nsenter -t LEADER -a true` on the same node;
--     target: <= 2 ms
-- (c) lag from a unit's ActiveEnterTimestampMonotonic to wait_for_unit returning; target: median
--     <= 20 ms
-- RUNS=n boots of each kind (default 7); RAW=0 skips the raw baseline (needs cc and unshare).
-- NixOS driver on these machines (../shared/reference/nixos-driver-measured.md): 0.658 s to ready
-- (raw READY=1 0.527 s), 6.5 ms a succeed("true") (nsenter -a true 3.2 ms), 0.51 s mean wait lag.
local fmt = string.format
local runs = tonumber(os.getenv("RUNS") or "") or 7
local want_raw = os.getenv("RAW") ~= "0"
local here = SCRIPT_PATH:match("^(.*)/[^/]*$") or "."

local function sorted(t)
  local s = { table.unpack(t) }
  table.sort(s)
  return s
end
local function median(t)
  local s = sorted(t)
  if #s == 0 then return 0 / 0 end
  if #s % 2 == 1 then return s[(#s + 1) // 2] end
  return (s[#s // 2] + s[#s // 2 + 1]) / 2
end
local function spread(t, scale, unit, digits)
  local s = sorted(t)
  local f = "%." .. digits .. "f"
  return fmt(f .. " %s (" .. f .. "-" .. f .. ", n=%d)", median(t) * scale, unit, s[1] * scale,
    s[#s] * scale, #s)
end
local function host(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then error(fmt("%s failed (exit %s): %s", cmd, tostring(code), out), 2) end
  return out
end

-- Every node is declared first: addresses are numbered by name before any node starts.
local lean, linked = {}, {}
for i = 1, runs do
  lean[i] = container(fmt("lean%02d", i)) { vlans = {} }      -- no link, as the raw boot
  linked[i] = container(fmt("link%02d", i)) {}                 -- a link on VLAN 1, the default
end

-- (a) boots, interleaved: raw, lean, linked, raw, lean, linked...
local raw_dir = want_raw and host("mktemp -d /tmp/moonrig-bench-raw.XXXXXX"):gsub("\n$", "")
local raw_missing
if raw_dir then
  local built, why = pcall(host, fmt("sh '%s/containers.sh' --raw-prepare '%s' 2>&1", here, raw_dir))
  if not built then
    raw_missing = tostring(why)
    os.execute(fmt("rm -rf '%s'", raw_dir))
    raw_dir = nil
  end
end
local ok, err = pcall(function()
  local raw, t_lean, t_linked = {}, {}, {}
  for i = 1, runs do
    if raw_dir then
      local out = host(fmt("sh '%s/containers.sh' --raw-once '%s'", here, raw_dir))
      raw[i] = tonumber(out:match("raw_ready ([%d.]+)"))
    end
    for _, pair in ipairs({ { lean[i], t_lean }, { linked[i], t_linked } }) do
      local node, times = pair[1], pair[2]
      local t0 = monotonic_time()
      node:start()
      node:wait_for_unit("multi-user.target")
      times[i] = monotonic_time() - t0
      if i < runs or node ~= lean[i] then node:crash() end   -- the last lean node serves (b), (c)
    end
  end
  _G.BOOT = { raw = raw, lean = t_lean, linked = t_linked }
end)
if raw_dir then os.execute(fmt("rm -rf '%s'", raw_dir)) end
if not ok then error(err, 0) end

-- (b) command latency on one node
local c = lean[runs]
c:succeed("true")
local lat = {}
for i = 1, 200 do
  local s = monotonic_time()
  c:succeed("true")
  lat[i] = monotonic_time() - s
end
-- The same node's namespaces entered by nsenter from a shell loop (the leader's pid as this
-- run's PID namespace sees it, the one the shell runs in).
local leader = c._h:leader()
local loop = host(fmt([[bash -c 'for ((i = 0; i < 200; i++)); do s=$EPOCHREALTIME; ]]
  .. [[nsenter -t %d -a true || exit 1; e=$EPOCHREALTIME; echo "$s $e"; done' ]], leader))
local ns = {}
for s, e in loop:gmatch("([%d.]+) ([%d.]+)") do ns[#ns + 1] = tonumber(e) - tonumber(s) end
local empty = host([[bash -c 'for ((i = 0; i < 200; i++)); do s=$EPOCHREALTIME; e=$EPOCHREALTIME; ]]
  .. [[echo "$s $e"; done']])
local floor = {}
for s, e in empty:gmatch("([%d.]+) ([%d.]+)") do floor[#floor + 1] = tonumber(e) - tonumber(s) end

-- (c) wait_for_unit lag
local lags = {}
for i = 1, 20 do
  c:succeed(fmt("systemd-run --unit=late%d --no-block --service-type=oneshot "
    .. "--remain-after-exit /bin/sleep 0.%d", i, 2 + i % 5))
  c:wait_for_unit("late" .. i)
  local back = monotonic_time()
  local enter = tonumber(c:get_unit_property("late" .. i, "ActiveEnterTimestampMonotonic")) / 1e6
  lags[i] = back - enter
end
-- baseline, same run: the best a poll can do, `systemctl is-active` in a tight loop in the node
local polled = {}
for i = 1, 10 do
  c:succeed(fmt("systemd-run --unit=polled%d --no-block --service-type=oneshot "
    .. "--remain-after-exit /bin/sleep 0.%d", i, 2 + i % 5))
  c:succeed(fmt("until systemctl is-active -q polled%d; do :; done", i))
  local back = monotonic_time()
  local enter = tonumber(c:get_unit_property("polled" .. i, "ActiveEnterTimestampMonotonic")) / 1e6
  polled[i] = back - enter
end

local B = BOOT
print("==== container figures")
print("(a) boot to ready")
if #B.raw > 0 then
  print("    raw systemd-nspawn, start to READY=1:                  " .. spread(B.raw, 1, "s", 3))
end
if raw_missing then print("    raw baseline unavailable: " .. raw_missing) end
print("    moonrig start() + wait_for_unit, no link (as raw):      " .. spread(B.lean, 1, "s", 3))
print("    moonrig start() + wait_for_unit, a link on VLAN 1:      " .. spread(B.linked, 1, "s", 3))
if #B.raw > 0 then
  print(fmt("    ratio to raw (medians): %.2f without a link, %.2f with one   target <= 1.1",
    median(B.lean) / median(B.raw), median(B.linked) / median(B.raw)))
end
print("    historical reference, not measured here: NixOS driver 0.658 s, raw READY=1 0.527 s (ratio 1.25)")
print("(b) command latency")
print("    succeed(\"true\"):                                        " .. spread(lat, 1000, "ms", 2))
print("    shell loop of nsenter -t LEADER -a true:                " .. spread(ns, 1000, "ms", 2))
print(fmt("    ratio %.2f of nsenter   target: succeed <= 2 ms   (loop's own timing floor %.3f ms)",
  median(lat) / median(ns), median(floor) * 1000))
print("    historical reference, not measured here: NixOS driver 6.5 ms (nsenter -a true 3.2 ms, ratio 2.0)")
print("(c) wait_for_unit lag, ActiveEnterTimestamp to the return")
print("    moonrig:                                                " .. spread(lags, 1000, "ms", 1))
print("    baseline, a tight systemctl is-active loop in the node:     " .. spread(polled, 1000, "ms", 1))
print(fmt("    ratio to the poll (medians): %.2f", median(lags) / median(polled)))
print("    target: median <= 20 ms   historical reference, not measured here: NixOS driver 510 ms mean (a 1 s poll)")
print("==== end")
