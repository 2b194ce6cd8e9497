-- parallel runs functions concurrently, returns their results, and the first error cancels
-- the others.
local t0 = os.time()
local start = require and nil
local order = {}
local a, b = parallel(
  function() sleep(0.3); order[#order + 1] = "slow"; return "a" end,
  function() sleep(0.1); order[#order + 1] = "fast"; return "b" end)
expect.eq({ a, b }, { "a", "b" })
expect.eq(order, { "fast", "slow" })

local finished_other = false
local e = expect.raises(function()
  parallel(
    function() sleep(0.1); error(failure("TestFailure", "first broke")) end,
    function() sleep(2); finished_other = true end)
end, "first broke")
sleep(0.1)
expect.eq(finished_other, false)

-- nested parallel
local x = parallel(function()
  local p, q = parallel(function() sleep(0.05); return 1 end, function() return 2 end)
  return p + q
end)
expect.eq(x, 3)
