-- A container crashing while commands and waits run on it: each fails promptly with a
-- MachineError naming the node (no hang until the command's own timeout), and after start()
-- the node works again.
local a = container "a" {}
a:wait_for_unit("multi-user.target")
-- a unit that stays "activating": waiting for it blocks until the crash
a:succeed("systemd-run --unit=slow --no-block --service-type=oneshot sleep 100")

local t0 = monotonic_time()
local cmd_err, unit_err, crashed_at
parallel(function()
  local ok, e = pcall(function() return a:execute("sleep 30") end)
  expect.falsy(ok, "execute must fail when the container dies under it")
  cmd_err = e
end, function()
  local ok, e = pcall(function() a:wait_for_unit("slow", { timeout = 60 }) end)
  expect.falsy(ok, "wait_for_unit must fail when the container dies under it")
  unit_err = e
end, function()
  sleep(0.5)
  crashed_at = monotonic_time()
  a:crash()
end)
local elapsed = monotonic_time() - t0
-- promptly: well before the command's 30 s and the wait's 60 s (loose for a busy host)
expect.truthy(elapsed < 10, string.format("the command failed %.2f s after the start, not promptly", elapsed))
expect.truthy(crashed_at - t0 >= 0.5, "the crash came after the command started")

expect.eq(cmd_err.kind, "MachineError")
expect.eq(cmd_err.node, "a")
expect.eq(cmd_err.command, "sleep 30")
expect.eq(cmd_err.message, "a: command `sleep 30`: the container died while the command ran")
expect.match(tostring(cmd_err), "^MachineError: a: command `sleep 30`")

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
