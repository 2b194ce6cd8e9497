-- serial_stdout_off() / serial_stdout_on(): a node's console lines ("a # ...") stop showing on
-- the terminal between the two calls, yet the console log keeps them and waits still see them.
-- The markers are computed in the node, so the commands' own log lines do not contain them.
-- expect-output: a # shown-before-1
-- expect-output: a # shown-after-3
-- reject-output: hidden-while-off-2
local a = container "a" {}
a:wait_for_unit("multi-user.target")

a:succeed("echo shown-before-$((0+1)) > /dev/console")
a:wait_for_console_text("shown%-before%-1", { timeout = 30 })

serial_stdout_off()
a:succeed("echo hidden-while-off-$((1+1)) > /dev/console")
local line = a:wait_for_console_text("hidden%-while%-off%-2", { timeout = 30 })
expect.eq(line, "hidden-while-off-2")
serial_stdout_on()

a:succeed("echo shown-after-$((1+2)) > /dev/console")
a:wait_for_console_text("shown%-after%-3", { timeout = 30 })

-- every line is in the console log, in order
local log = a:get_console_log()
local p1 = log:find("shown-before-1\n", 1, true)
local p2 = log:find("hidden-while-off-2\n", 1, true)
local p3 = log:find("shown-after-3\n", 1, true)
expect.truthy(p1 and p2 and p3 and p1 < p2 and p2 < p3, "the console log keeps all three lines in order")
