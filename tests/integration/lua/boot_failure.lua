-- Boots that cannot succeed end promptly with a MachineError that names the node and shows its
-- last console lines: a bad nspawn option, a directory image without an init, and a service
-- that blocks the boot past boot_timeout (left uncaught: the run fails with exit status 1).
-- expect-exit: 1
-- expect-output: MachineError: node stuck: not ready within 10.0 s (no READY=1 from its systemd); last console and journal lines:
-- expect-output: stuck-blocks-the-boot
-- expect-output: Starting block.service
local function quick(node, what)
  local t0 = monotonic_time()
  local e = expect.raises(function() node:wait_for_unit("multi-user.target", { timeout = 60 }) end)
  local took = monotonic_time() - t0
  -- promptly: well before the 60 s timeout, whatever the load
  expect.truthy(took < 30, string.format("%s: the failure took %.1f s", what, took))
  expect.eq(e.kind, "MachineError", what)
  return e
end

-- systemd-nspawn refuses an option: its own message is in the error
local bogus = container "bogus" { nspawn_args = { "--bogus-flag" } }
local e = quick(bogus, "bad option")
expect.contains(e.message, "node bogus: systemd-nspawn exited with status 1 before the node was ready")
expect.contains(e.message, "last console lines:\n  systemd-nspawn: unrecognized option '--bogus-flag'")
expect.eq(bogus:is_up(), false)

-- a directory image with an os-release but no init
local tree = io.popen("mktemp -d /tmp/moonrig-noinit.XXXXXX"):read("l")
local ok, err = pcall(function()
  assert(os.execute("mkdir -p '" .. tree .. "/etc' && cp /etc/os-release '" .. tree .. "/etc/'"))
  local noinit = container "noinit" { image = tree }
  local e2 = quick(noinit, "no init")
  expect.contains(e2.message, "node noinit: systemd-nspawn exited with status 1 before the node was ready")
  expect.match(e2.message, "execv%(.*/sbin/init%) failed: No such file or directory")
end)
os.execute("rm -rf '" .. tree .. "'")
if not ok then error(err, 0) end

-- a service ordered before multi-user.target that never finishes: boot_timeout ends it
local stuck = container "stuck" {
  boot_timeout = 10,   -- long enough for a loaded host to reach block.service
  services = { "block" },
  files = {
    ["/etc/systemd/system/block.service"] = [[
[Unit]
Description=blocks the boot
Before=multi-user.target
[Service]
Type=oneshot
StandardOutput=journal+console
ExecStartPre=/bin/echo stuck-blocks-the-boot
ExecStart=/bin/sleep 600
[Install]
WantedBy=multi-user.target
]],
  },
}
stuck:wait_for_unit("multi-user.target")
error("not reached: the boot of stuck must fail")
