-- expect-exit: 1
-- expect-output: !!! Traceback (most recent call last):
-- expect-output: expect_fail.lua", line 9, in main chunk
-- expect-output: !!!     expect.eq(answer(), 42, "the answer")
-- expect-output: TestFailure: the answer: expected values to be equal
-- expect-output: first:  41
-- reject-output: moonrig/core.lua
local function answer() return 41 end
expect.eq(answer(), 42, "the answer")
