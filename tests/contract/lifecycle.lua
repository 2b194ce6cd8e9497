-- Contract: start, is_up, reboot (a new boot), shutdown, start again, a node that powers itself
-- off (wait_for_shutdown), crash, and reboot of a stopped node.
local n = dofile((SCRIPT_PATH:match("^(.*)/") or ".") .. "/prelude.lua")

expect.eq(n:is_up(), false)
n:start()
expect.eq(n:succeed("echo up"), "up\n")
expect.eq(n:is_up(), true)
n:start()                                   -- starting a running node does nothing
expect.eq(n:succeed("echo still"), "still\n")

-- reboot: the node comes back ready, as a new boot (/run is fresh, the boot id differs)
local boot1 = n:succeed("cat /proc/sys/kernel/random/boot_id")
n:succeed("echo before > /run/contract-marker")
n:reboot()
expect.eq(n:is_up(), true)
expect.ne(n:succeed("cat /proc/sys/kernel/random/boot_id"), boot1)
expect.eq(n:execute("test -e /run/contract-marker"), 1)

-- shutdown, again (nothing to do), and start again
n:shutdown()
expect.eq(n:is_up(), false)
n:shutdown()
expect.eq(n:is_up(), false)
n:start()
expect.eq(n:succeed("echo again"), "again\n")
expect.eq(n:is_up(), true)

-- the node powers itself off: wait_for_shutdown returns once it is down
n:succeed("(sleep 1; poweroff) >/dev/null 2>&1 &")
n:wait_for_shutdown({ timeout = 120 })
expect.eq(n:is_up(), false)
n:wait_for_shutdown({ timeout = 1 })        -- already down: returns at once

-- reboot of a stopped node starts it (and reboots it): afterwards it answers
n:reboot()
expect.eq(n:is_up(), true)
expect.eq(n:succeed("echo rebooted"), "rebooted\n")

-- crash: down at once; crash again does nothing; start works
n:crash()
expect.eq(n:is_up(), false)
n:crash()
n:start()
expect.eq(n:succeed("echo after-crash"), "after-crash\n")
n:shutdown()
expect.eq(n:is_up(), false)
