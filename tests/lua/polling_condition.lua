-- expect-exit: 1
-- expect-output: Checking polling condition 'server alive'
-- expect-output: Polling condition failed: server alive
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
expect.raises(function() cond:check() end, "Polling condition failed: server alive")
cond:check()
