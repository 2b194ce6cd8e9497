-- containers.lua: container figures, printed (run as root: build/moonrig tests/bench/containers.lua).
-- (a) start() + wait_for_unit("multi-user.target") of a host-image container
-- (b) median succeed("true") latency over 200 calls
-- (c) lag from a unit's ActiveEnterTimestampMonotonic to wait_for_unit returning (10 trials)
-- NixOS driver on these machines (reference/nixos-driver-measured.md): 0.658 s to ready
-- (raw READY 0.527 s), 6.5 ms a command, 0.51 s mean wait lag.
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local c = container "bench" {}
local t0 = monotonic_time()
c:start()
c:wait_for_unit("multi-user.target")
local boot = monotonic_time() - t0

c:succeed("true")
local lat = {}
for i = 1, 200 do
  local s = monotonic_time()
  c:execute("true")
  lat[i] = monotonic_time() - s
end

local lags = {}
for i = 1, 10 do
  c:succeed(string.format("systemd-run --unit=late%d --no-block --service-type=oneshot "
    .. "--remain-after-exit /bin/sleep 0.%d", i, 2 + i % 5))
  c:wait_for_unit("late" .. i)
  local back = monotonic_time()
  local enter = tonumber(c:get_unit_property("late" .. i, "ActiveEnterTimestampMonotonic")) / 1e6
  lags[i] = back - enter
end

print(string.format("(a) start + wait_for_unit(multi-user.target): %.3f s   NixOS driver 0.658 s   ratio to raw READY (0.527 s): %.2f",
  boot, boot / 0.527))
print(string.format("(b) execute(\"true\") median: %.2f ms   NixOS driver 6.5 ms", median(lat) * 1000))
print(string.format("(c) wait_for_unit lag median: %.1f ms   NixOS driver 510 ms", median(lags) * 1000))
