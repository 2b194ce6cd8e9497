-- Contract: a node crashing under a running command fails that command at once with a
-- MachineError naming the node and the command (not at the command's own timeout), and the
-- node can be started again.
local n = dofile((SCRIPT_PATH:match("^(.*)/") or ".") .. "/prelude.lua")
n:start()
expect.eq(n:succeed("echo up"), "up\n")

local t0 = monotonic_time()
local cmd_err
parallel(function()
  local ok, e = pcall(function() return n:execute("sleep 300") end)
  expect.falsy(ok, "execute must fail when the node dies under it")
  cmd_err = e
end, function()
  sleep(2)                  -- the command runs (a VM takes one command at a time: no probe)
  n:crash()
end)
-- at the crash, not at the command's end (300 s); loose for a busy host
expect.truthy(monotonic_time() - t0 < 120, "the command failed at the crash")
expect.eq({ cmd_err.kind, cmd_err.node, cmd_err.command }, { "MachineError", "n", "sleep 300" })
expect.match(cmd_err.message, "^n: command `sleep 300`: the %a+ .* while the command ran$")
expect.match(tostring(cmd_err), "^MachineError: n: command `sleep 300`")
expect.eq(n:is_up(), false)

-- back up: a fresh boot that runs commands
n:start()
expect.eq(n:succeed("echo back"), "back\n")
