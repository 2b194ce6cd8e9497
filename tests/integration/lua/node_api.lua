-- The README's node API that no other test used: globals for names with "-", nodes.x, vlan1,
-- bind and bind_ro, the declaration errors that need root, node:sleep/log/nested,
-- wait_for_open_unix_socket, copy_from_vm, wait_for_x/wait_for_window, and polling_condition
-- guarding node commands.
-- expect-output: my-node: a line from node:log
-- expect-output: my-node: a block from node:nested
-- expect-output: copy_from_vm is deprecated: use copy_from_machine
-- expect-output: Last chance to match Nope on the window list, which currently contains: Firefox, xterm
-- expect-output: Polling condition failed: marker file present

-- Host directories for the binds, in the run's own tmpfs (gone with the run, whatever happens).
local host = "/run/moonrig/node-api-test"
assert(os.execute("mkdir -p " .. host .. "/rw " .. host .. "/ro " .. host .. "/bin"))
local function write(path, text, mode)
  local f = assert(io.open(path, "w")); f:write(text); f:close()
  if mode then assert(os.execute("chmod " .. mode .. " " .. path)) end
end
local function read(path)
  local f = io.open(path, "rb"); if not f then return nil end
  local s = f:read("a"); f:close(); return s
end
write(host .. "/ro/from-host", "read-only bind\n")
-- a stand-in xwininfo: the window list an X server would give
write(host .. "/bin/xwininfo", [[#!/bin/sh
cat <<'X'
xwininfo: Window id: 0x1e3 (the root window) (has no name)
  Root window id: 0x1e3 (the root window) (has no name)
     0x1200003 "Firefox": ("Navigator" "firefox")  800x600+0+0  +0+0
     0x1400001 "xterm": ("xterm" "XTerm")  484x316+0+0  +0+0
X
]], "0755")

local n = container "my-node" {
  bind = { host .. "/rw:/mnt/rw", host .. "/bin:/usr/local/bin" },
  bind_ro = { host .. "/ro:/mnt/ro" },
}
local other = container "other" { vlans = { 1, 2 } }

subtest("names: globals, nodes.x, vlanN", function()
  expect.eq(my_node, n, 'node "my-node" is the global my_node')
  expect.eq(rawget(_G, "my-node"), nil)
  expect.eq(nodes["my-node"], n)
  expect.eq(nodes.other, other)
  expect.eq(#nodes, 2)
  expect.eq({ nodes[1].name, nodes[2].name }, { "my-node", "other" })
  expect.eq(machines, nodes)
  expect.eq(tostring(vlan1), "<Vlan Nr. 1>")
  expect.eq(vlan1, vlans[1])
  expect.eq(vlan1.bridge, "mrbr1")
  expect.eq({ vlan1.nodes[1], vlan1.nodes[2] }, { n, other })
  expect.eq(#vlan2.nodes, 1)
  expect.eq(vlan2.nodes[1], other)
  expect.eq(rawget(_G, "vlan3"), nil)
  expect.eq(other.links[2].ip, "192.168.2.2")
end)

subtest("declaration errors that need root", function()
  expect.raises(function() container "other" {} end, 'container "other" is declared twice')
  expect.raises(function() vm "other" { kernel = "/dev/null" } end, 'vm "other" is declared twice')
  expect.raises(function() container "e1" { env = { ["1A"] = "x" } } end,
    'e1: env: bad variable name "1A" (letters, digits and _, not first a digit)')
  expect.raises(function() container "e2" { env = { "NOEQUALS" } } end,
    'e2: env[1]: expected "NAME=value", got "NOEQUALS"')
  expect.raises(function() container "e3" { files = { ["etc/x"] = "x" } } end,
    "e3: files: the key etc/x must be an absolute path")
  expect.raises(function() container "e4" { files = { ["/etc/x"] = { mode = "0600" } } } end,
    'e4: files["/etc/x"]: give content = "..." or source = "host/path"')
  local e = expect.raises(function() container "other" {} end)
  expect.eq(e.kind, "UsageError")
  expect.eq(#nodes, 2, "a failed declaration adds no node")
end)

start_all()

subtest("bind and bind_ro", function()
  n:succeed("echo from-node > /mnt/rw/from-node")
  expect.eq(read(host .. "/rw/from-node"), "from-node\n", "a write through bind reaches the host")
  write(host .. "/rw/from-host", "host wrote this\n")
  expect.eq(n:succeed("cat /mnt/rw/from-host"), "host wrote this\n")
  expect.eq(n:succeed("cat /mnt/ro/from-host"), "read-only bind\n")
  local status, _, err = n:execute("echo x > /mnt/ro/new")
  expect.ne(status, 0, "bind_ro is read-only")
  expect.contains(err, "Read-only file system")
  expect.eq(read(host .. "/ro/new"), nil)
end)

subtest("node:sleep, node:log, node:nested", function()
  local t0 = monotonic_time()
  n:sleep(1.5)
  expect.truthy(monotonic_time() - t0 >= 1.5, "node:sleep(1.5) waits at least 1.5 s")
  n:succeed("touch /tmp/a; sleep 0.3; touch /tmp/b")
  n:log("a line from node:log")
  local a, b = n:nested("a block from node:nested", function() return "x", "y" end)
  expect.eq({ a, b }, { "x", "y" })
end)

subtest("wait_for_open_unix_socket", function()
  n:succeed("(socat UNIX-LISTEN:/tmp/stream.sock,fork OPEN:/dev/null </dev/null >/dev/null 2>&1 &)")
  n:wait_for_open_unix_socket("/tmp/stream.sock", { timeout = 60 })
  n:succeed("(socat UNIX-RECV:/tmp/dgram.sock OPEN:/dev/null </dev/null >/dev/null 2>&1 &)")
  n:wait_for_open_unix_socket("/tmp/dgram.sock", { is_datagram = true, timeout = 60 })
  -- the kind matters: a stream socket is not a datagram socket, and a missing one times out
  local e = expect.raises(function()
    n:wait_for_open_unix_socket("/tmp/stream.sock", { is_datagram = true, timeout = 2 })
  end, "action timed out")
  expect.eq(e.kind, "Timeout")
  expect.raises(function() n:wait_for_open_unix_socket("/tmp/dgram.sock", { timeout = 2 }) end, "action timed out")
  expect.raises(function() n:wait_for_open_unix_socket("/tmp/none.sock", { timeout = 2 }) end, "action timed out")
end)

subtest("copy_from_vm copies into the output directory", function()
  n:succeed("mkdir -p /tmp/tree/sub && echo payload > /tmp/tree/sub/file")
  n:copy_from_vm("/tmp/tree", "copied")
  expect.eq(read(OUTPUT_DIR .. "/copied/tree/sub/file"), "payload\n")
  os.execute("rm -rf '" .. OUTPUT_DIR .. "/copied'")
end)

subtest("wait_for_x and wait_for_window on a container", function()
  -- no X server yet: wait_for_x times out
  expect.raises(function() n:wait_for_x({ timeout = 2 }) end, "action timed out")
  -- what wait_for_x waits for: systemd's "Reached target Current graphical" and the X0 socket
  n:succeed("logger -t systemd 'Reached target Current graphical session.'",
            "mkdir -p /tmp/.X11-unix && touch /tmp/.X11-unix/X0")
  n:wait_for_x({ timeout = 60 })
  expect.eq(n:get_window_names(), { "Firefox", "xterm" })
  n:wait_for_window("Fire", { timeout = 30 })
  expect.raises(function() n:wait_for_window("Nope", { timeout = 2 }) end, "action timed out")
end)

subtest("polling_condition guards node commands", function()
  local checks = 0
  local cond = polling_condition(function()
    checks = checks + 1
    return n:execute("test -e /tmp/marker") == 0
  end, { interval = 0, description = "marker file present" })
  n:succeed("touch /tmp/marker")
  local ran = {}
  cond:guard(function()
    n:succeed("true"); ran[#ran + 1] = 1
    n:succeed("true"); ran[#ran + 1] = 2
  end)
  expect.eq(#ran, 2)
  expect.eq(checks, 2, "the condition is checked before each node command in the block")
  -- the condition's own command is not guarded (no recursion), and outside a guard nothing is checked
  n:succeed("true")
  expect.eq(checks, 2)
  local e = expect.raises(function()
    cond:guard(function()
      n:succeed("rm /tmp/marker"); ran[#ran + 1] = 3
      n:succeed("touch /tmp/after-failure"); ran[#ran + 1] = 4
    end)
  end, "Polling condition failed: marker file present")
  expect.eq(e.kind, "PollingConditionError")
  expect.eq(ran, { 1, 2, 3 }, "a failing condition stops the block before its next command")
  n:fail("test -e /tmp/after-failure")
end)
