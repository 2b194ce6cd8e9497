-- A container crashing while commands and waits run on it: each fails promptly with a
-- MachineError naming the node (no hang until the command's own timeout), and after start()
-- the node works again.
local a = container "a" {}
a:wait_for_unit("multi-user.target")
-- a unit that stays "activating": waiting for it blocks until the crash
a:succeed("systemd-run --unit=slow --no-block --service-type=oneshot sleep 100")

local cmd = "touch /tmp/running; sleep 300"
local t0 = monotonic_time()
local cmd_err, unit_err
parallel(function()
  local ok, e = pcall(function() return a:execute(cmd) end)
  expect.falsy(ok, "execute must fail when the container dies under it")
  cmd_err = e
end, function()
  local ok, e = pcall(function() a:wait_for_unit("slow", { timeout = 300 }) end)
  expect.falsy(ok, "wait_for_unit must fail when the container dies under it")
  unit_err = e
end, function()
  -- the crash comes once the command runs
  a:wait_for_file("/tmp/running", { timeout = 60 })
  a:crash()
end)
local elapsed = monotonic_time() - t0
-- promptly: at the crash, not when the 300 s command or the 300 s wait would have ended
expect.truthy(elapsed < 150, string.format("the command failed %.2f s after the start, not promptly", elapsed))

expect.eq(cmd_err.kind, "MachineError")
expect.eq(cmd_err.node, "a")
expect.eq(cmd_err.command, cmd)
expect.eq(cmd_err.message, "a: command `" .. cmd .. "`: the container died while the command ran")
expect.match(tostring(cmd_err), "^MachineError: a: command `touch /tmp/running; sleep 300`")

expect.eq(unit_err.kind, "MachineError")
expect.eq(unit_err.node, "a")
expect.contains(unit_err.message, "a: the container stopped while waiting for unit \"slow.service\"")

expect.eq(a:is_up(), false)

-- back up: a fresh boot (the transient unit is gone) that runs commands and waits for units
a:start()
a:wait_for_unit("multi-user.target")
expect.eq(a:succeed("echo back"), "back\n")
expect.eq(a:get_unit_property("slow", "LoadState"), "not-found")
a:succeed("systemd-run --unit=quick --service-type=oneshot --remain-after-exit true")
a:wait_for_unit("quick")
