-- expect-exit: 1
-- expect-output: subtest: first
-- expect-output: (finished: subtest: first, in
-- expect-output: subtest: second
-- expect-output: !!! Test "second" failed with error: "it broke"
-- reject-output: never reached
local ran = {}
subtest("first", function() ran[#ran + 1] = "first" end)
expect.eq(ran, { "first" })
expect.eq(subtest("values", function() return 1, 2 end), 1)
subtest("second", function() error(failure("TestFailure", "it broke")) end)
log.info("never reached")
