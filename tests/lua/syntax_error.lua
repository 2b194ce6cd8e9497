-- expect-exit: 2
-- expect-output: syntax_error.lua:4:
-- reject-output: Traceback
local x = = 1
