-- Contract: wait_until_succeeds/fails, wait_for_file, wait_for_open_port/closed_port,
-- wait_for_console_text, each returning once the condition holds and raising a Timeout naming
-- the node when it never does; wait_for_unit where the node has systemd.
local n = dofile((SCRIPT_PATH:match("^(.*)/") or ".") .. "/prelude.lua")
n:start()

-- conditions that come true a moment later
n:succeed("(sleep 1; echo late > /tmp/contract-late) >/dev/null 2>&1 &")
expect.eq(n:wait_until_succeeds("cat /tmp/contract-late", { timeout = 60 }), "late\n")
n:wait_for_file("/tmp/contract-late", { timeout = 10 })
n:succeed("(sleep 1; rm /tmp/contract-late) >/dev/null 2>&1 &")
n:wait_until_fails("test -e /tmp/contract-late", { timeout = 60 })

-- and conditions that never do
local e = expect.raises(function() n:wait_until_succeeds("false", { timeout = 2 }) end)
expect.eq({ e.kind, e.timeout }, { "Timeout", 2 })
expect.match(e.message, "^action timed out after [%d.]+ seconds %(timeout=2%)$")
e = expect.raises(function() n:wait_until_fails("true", { timeout = 2 }) end)
expect.eq(e.kind, "Timeout")
e = expect.raises(function() n:wait_for_file("/tmp/contract-never", { timeout = 2 }) end)
expect.eq(e.kind, "Timeout")

-- ports: a listener inside the node (nc: busybox's and OpenBSD's both take -l -p); it takes
-- one connection (the probe's) and exits
n:wait_for_closed_port(7777, { timeout = 10 })
n:succeed("nc -l -p 7777 >/dev/null 2>&1 </dev/null &")
n:wait_for_open_port(7777, { timeout = 60 })
n:wait_for_closed_port(7777, { timeout = 60 })
e = expect.raises(function() n:wait_for_open_port(7778, { timeout = 2 }) end)
expect.eq(e.kind, "Timeout")

-- the console
n:succeed("echo contract-console-marker > /dev/console")
expect.eq(n:wait_for_console_text("contract%-console%-marker", { timeout = 60 }), "contract-console-marker")
e = expect.raises(function() n:wait_for_console_text("contract%-never%-printed", { timeout = 2 }) end)
expect.eq({ e.kind, e.node }, { "Timeout", "n" })

-- units: a unit that cannot be waited for fails at once, naming the node and the unit
e = expect.raises(function() n:wait_for_unit("contract-nope", { timeout = 120 }) end)
expect.eq({ e.kind, e.node, e.unit }, { "TestFailure", "n", "contract-nope.service" })
if n:execute("command -v systemctl") ~= 0 then
  log.warning("# SKIP systemd: the " .. n.kind .. " guest has no systemd (busybox init): "
    .. "wait_for_unit on a live unit not checked")
else
  n:succeed("systemd-run --unit=contract-late --no-block --service-type=oneshot --remain-after-exit sleep 1")
  n:wait_for_unit("contract-late", { timeout = 60 })
  expect.eq(n:get_unit_property("contract-late", "ActiveState"), "active")
  n:succeed("systemd-run --unit=contract-bad --service-type=oneshot false || true")
  e = expect.raises(function() n:wait_for_unit("contract-bad", { timeout = 60 }) end)
  expect.eq({ e.kind, e.node, e.unit }, { "TestFailure", "n", "contract-bad.service" })
  expect.eq(e.message, 'unit "contract-bad.service" reached state "failed"')
  expect.eq(e.state, "failed", "the failure names the unit's state in a field")
end
