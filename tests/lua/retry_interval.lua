-- retry(fn, { interval = s }) calls fn every s seconds, without the default backoff (0.05 s
-- doubling to 1 s). A loaded host only stretches the gaps, so: no gap is shorter than the
-- interval, and ten tries at 0.1 s take far less than backoff's 5.5 s.
local times = {}
local v = retry(function()
  times[#times + 1] = monotonic_time()
  return #times == 11 and "done"
end, { interval = 0.1, timeout = 60 })
expect.eq(v, "done")
local min_gap = math.huge
for i = 2, #times do min_gap = math.min(min_gap, times[i] - times[i - 1]) end
log.info(string.format("interval 0.1: 10 gaps in %.2f s, shortest %.3f s", times[#times] - times[1], min_gap))
expect.truthy(min_gap >= 0.095, "no try comes sooner than the interval, got a gap of " .. min_gap)
expect.truthy(times[#times] - times[1] < 4.0,
  string.format("ten gaps of 0.1 s take far less than backoff's 5.5 s, took %.2f s", times[#times] - times[1]))

-- a long interval: within a 2.5 s timeout, tries at 0, 1.2, 2.4 (and a last try at the end)
-- where backoff would have made 7 or more
local calls = 0
expect.raises(function()
  retry(function() calls = calls + 1; return false end, { interval = 1.2, timeout = 2.5 })
end, "action timed out after")
log.info("interval 1.2, timeout 2.5: " .. calls .. " calls")
expect.truthy(calls >= 2 and calls <= 4, "interval 1.2 in 2.5 s: 2 to 4 calls, got " .. calls)
