-- Commands and unit waits at their edges: 200 MB of output, every byte value kept exactly on
-- stdout and stderr, four commands at once on one node, a background child that keeps stdout
-- open (returns after the grace period with a warning), and unknown or failed units failing
-- at once (the failed one with its journal lines).
-- expect-output: a: command `echo started; sleep 100 &` left a process holding its output open
-- reject-output: a: command `sleep 100 >/dev/null 2>&1 & echo quick` left a process
local a = container "a" {
  files = {
    ["/etc/systemd/system/broken.service"] = [[
[Unit]
Description=fails at once
[Service]
Type=oneshot
ExecStartPre=/bin/echo broken-is-about-to-fail
ExecStart=/bin/false
]],
  },
}
a:wait_for_unit("multi-user.target")

subtest("200 MB of output", function()
  local out = a:succeed("head -c 200000000 /dev/zero | tr '\\0' a")
  expect.eq(#out, 200000000)
  expect.eq(out:find("[^a]"), nil, "only 'a' bytes")
end)

subtest("binary output: NUL and invalid UTF-8 kept exactly", function()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  -- every byte value, then bytes that are not UTF-8: a lone continuation, an overlong NUL,
  -- a truncated sequence at the very end
  local tricky = "\128\192\128\226\130"
  local gen = "for i in $(seq 0 255); do printf \"\\\\$(printf %o $i)\"; done; printf '\\200\\300\\200\\342\\202'"
  local status, out, err = a:execute(gen .. "; { " .. gen .. "; } >&2")
  expect.eq(status, 0)
  expect.eq(#out, 261)
  expect.eq(out, all .. tricky)
  expect.eq(err, all .. tricky)
end)

subtest("four commands at once on one node", function()
  -- each command marks itself started, then waits (up to 60 s) until all four are: run one
  -- after another, the first would wait alone and fail
  a:succeed("mkdir -p /tmp/four")
  local function one(i)
    return a:succeed(string.format("touch /tmp/four/%d; for t in $(seq 600); do "
      .. "[ $(ls /tmp/four | wc -l) -ge 4 ] && echo %d && exit 0; sleep 0.1; done; "
      .. "echo %d saw only $(ls /tmp/four) >&2; exit 1", i, i, i), { timeout = 120 })
  end
  local r = { parallel(function() return one(1) end, function() return one(2) end,
                       function() return one(3) end, function() return one(4) end) }
  expect.eq(r, { "1\n", "2\n", "3\n", "4\n" })
end)

subtest("a background child holding stdout open", function()
  local t0 = monotonic_time()
  local out = a:succeed("echo started; sleep 100 &")
  local took = monotonic_time() - t0
  expect.eq(out, "started\n")
  -- returns after the grace period (5 s), not at once and not after 100 s
  expect.truthy(took >= 4 and took < 60, string.format("returned after %.2f s", took))
  -- redirecting the child's output needs no grace period: no warning for it (reject-output
  -- above), and it ends long before the child would (a wait for the child times out)
  expect.eq(a:succeed("sleep 100 >/dev/null 2>&1 & echo quick", { timeout = 60 }), "quick\n")
end)

subtest("an unknown unit fails at once", function()
  local t0 = monotonic_time()
  local e = expect.raises(function() a:wait_for_unit("nope", { timeout = 60 }) end,
    'unit "nope.service" not found')
  expect.eq({ e.kind, e.node, e.unit }, { "TestFailure", "a", "nope.service" })
  expect.truthy(monotonic_time() - t0 < 30, "not at the 60 s timeout")
end)

subtest("a failed unit fails at once, with its journal", function()
  a:fail("systemctl start broken")
  local t0 = monotonic_time()
  local e = expect.raises(function() a:wait_for_unit("broken", { timeout = 60 }) end,
    'unit "broken.service" reached state "failed"')
  expect.truthy(monotonic_time() - t0 < 30, "not at the 60 s timeout")
  expect.eq({ e.kind, e.node, e.unit }, { "TestFailure", "a", "broken.service" })
  expect.contains(e.output, "broken-is-about-to-fail")
  expect.contains(e.output, "broken.service: Main process exited, code=exited, status=1/FAILURE")
  expect.contains(tostring(e), "output (last lines):")
end)
