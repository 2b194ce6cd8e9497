-- parallel runs functions concurrently, returns their results, and the first error cancels
-- the others.
local order = {}
local a, b = parallel(
  function() sleep(0.5); order[#order + 1] = "slow"; return "a" end,
  function() sleep(0.05); order[#order + 1] = "fast"; return "b" end)
expect.eq({ a, b }, { "a", "b" })
-- run one after the other, the slow one would come first
expect.eq(order, { "fast", "slow" })

-- The first error cancels the sibling: it is asleep when the error comes, and must never
-- wake. Wait well past the moment it would have finished, then look.
local finished_other = false
expect.raises(function()
  parallel(
    function() sleep(0.05); error(failure("TestFailure", "first broke")) end,
    function() sleep(1); finished_other = true end)
end, "first broke")
sleep(2)
expect.eq(finished_other, false, "the sibling of a failed task was cancelled")

-- nested parallel
local x = parallel(function()
  local p, q = parallel(function() sleep(0.05); return 1 end, function() return 2 end)
  return p + q
end)
expect.eq(x, 3)
