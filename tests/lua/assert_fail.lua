-- expect-exit: 1
-- expect-output: assert_fail.lua", line 4, in main chunk
-- expect-output: assertion failed!
assert(1 == 2)
