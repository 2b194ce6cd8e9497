-- nested(msg, fn) is a timed log block that returns fn's values; log.error and log.debug print
-- their message (debug only at --log-level debug, which the args line sets).
-- args: --log-level debug
-- expect-output: outer block
-- expect-output: inner block
-- expect-output: (finished: inner block, in
-- expect-output: (finished: outer block, in
-- expect-output: inside outer, before inner
-- expect-output: log.error says this
-- expect-output: log.debug says this at --log-level debug
-- expect-output: failing block
-- reject-output: (finished: failing block
local order = {}
local a, b = nested("outer block", function()
  order[#order + 1] = "outer"
  log.info("inside outer, before inner")
  return nested("inner block", function()
    order[#order + 1] = "inner"
    return "first", "second"
  end)
end)
expect.eq({ a, b }, { "first", "second" }, "nested returns the block's values")
expect.eq(order, { "outer", "inner" })
expect.eq(select("#", nested("empty block", function() end)), 0, "a block that returns nothing")

-- an error in the block reaches the caller unchanged, and the block is not logged as finished
local e = expect.raises(function()
  nested("failing block", function() error(failure("TestFailure", "inside the block")) end)
end, "inside the block")
expect.eq(e.kind, "TestFailure")

log.error("log.error says this")
log.debug("log.debug says this at --log-level debug")
