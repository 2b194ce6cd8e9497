-- hello.lua: a test with no nodes: subtests, parallel waits and assertions.
subtest("arithmetic", function()
  expect.eq(6 * 7, 42)
end)

subtest("waiting in parallel", function()
  local a, b = parallel(
    function() sleep(0.2); return "slow" end,
    function() sleep(0.1); return "fast" end)
  expect.eq({ a, b }, { "slow", "fast" })
end)

local tries = 0
retry(function() tries = tries + 1; return tries == 3 end, { timeout = 5 })
log.info("retry needed " .. tries .. " tries")
