-- expect-exit: 1
-- expect-output: Checking polling condition 'server alive'
-- expect-output: check() raised PollingConditionError
-- expect-output: PollingConditionError: Polling condition failed: server alive
-- expect-output: polling_condition.lua", line 26, in main chunk
-- reject-output: returned normally
-- reject-output: not reached
-- The condition is checked by check(): a failing one raises PollingConditionError. The last
-- line lets it escape, so the run must end with that error raised from line 26, which only
-- a check() that raises can produce (a check() that returns would end the run at
-- expect.raises, with a TestFailure, or reach the last log line).
local healthy = true
local cond = polling_condition(function() return healthy end,
  { interval = 0, description = "server alive" })
-- a passing condition lets the block run
local r = cond:guard(function() return "ran" end)
expect.eq(r, "ran")
cond:check()
-- wait() succeeds once the condition holds
expect.truthy(cond:wait({ timeout = 1 }))
healthy = false
local e = expect.raises(function() cond:check() end, "Polling condition failed: server alive")
expect.eq(e.kind, "PollingConditionError")
log("check() raised " .. tostring(e.kind))
-- uncaught: this ends the run with exit 1
cond:check()
log("not reached")
