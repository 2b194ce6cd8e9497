-- retry calls fn(last_try) until it returns a true value, and times out with a failure.
local n = 0
local v = retry(function(last) n = n + 1; return n >= 3 and "done" end, { timeout = 5 })
expect.eq(v, "done")
expect.eq(n, 3)

local calls, last_seen = 0, nil
local e = expect.raises(function()
  retry(function(last) calls = calls + 1; last_seen = last; return false end, { timeout = 0.3 })
end, "action timed out after")
expect.eq(e.kind, "Timeout")
expect.eq(last_seen, true)
expect.truthy(calls >= 3)
