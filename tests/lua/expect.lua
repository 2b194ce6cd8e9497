-- The expect library: passing assertions return, failing ones raise TestFailure.
expect.eq(1, 1)
expect.eq({ a = { 1, 2 }, b = "x" }, { b = "x", a = { 1, 2 } })
expect.ne(1, 2)
expect.match("hello world", "^hello %w+$")
expect.contains("hello world", "o w")
expect.contains({ 1, { 2 } }, { 2 })
expect.truthy(0)
expect.falsy(nil)

local e = expect.raises(function() expect.eq({ 1, 2 }, { 1, 3 }) end, "expected values to be equal")
expect.eq(e.kind, "TestFailure")
expect.contains(e.message, "first:  { 1, 2 }")
expect.contains(e.message, "second: { 1, 3 }")
expect.contains(e.message, "they differ at [2]")

e = expect.raises(function() expect.match("abc", "^x", "custom") end)
expect.match(e.message, "^custom: expected \"abc\" to match pattern")
expect.raises(function() expect.contains("abc", "z") end, "to contain")
expect.raises(function() expect.truthy(false) end, "expected a true value, got false")
expect.raises(function() expect.raises(function() end) end, "returned normally")
expect.raises(function() error("boom") end, "boom")
-- a failure's text names kind and message
expect.match(tostring(e), "^TestFailure: custom")
