-- User coroutines keep working when the runner waits inside them.
local gen = coroutine.wrap(function()
  for i = 1, 3 do
    sleep(0.01)
    coroutine.yield(i)
  end
end)
expect.eq({ gen(), gen(), gen() }, { 1, 2, 3 })

local co = coroutine.create(function(a)
  sleep(0.01)
  local b = coroutine.yield(a + 1)
  sleep(0.01)
  return b * 2
end)
local ok, v = coroutine.resume(co, 1)
expect.eq({ ok, v }, { true, 2 })
ok, v = coroutine.resume(co, 5)
expect.eq({ ok, v }, { true, 10 })
expect.eq(coroutine.status(co), "dead")

-- errors inside a coroutine come back from resume
local bad = coroutine.create(function() sleep(0.01); error("inner") end)
ok, v = coroutine.resume(bad)
expect.eq(ok, false)
expect.match(tostring(v), "inner")
