-- repl-test.lua: the script that repl_pty drives through `moonrig -I`. What comes before the
-- first action is declared at the prompt; what comes after runs only with test_script().

declared_before_action = "declared"

widget = setmetatable({ name = "w" }, {
  __index = { frobnicate = function(self) return "frobbed " .. self.name end, size = 3 },
})

config = { net = { address = "10.0.0.1", prefix = 24 } }

sleep(0)   -- the first action: the declaration pass stops here

ran_after_action = "ran"
