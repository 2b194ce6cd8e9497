-- Every C binding's error paths, each with the clear error it raises: wrong argument types, a
-- node in the wrong state, a start that fails, waits that time out, a wait outside a task, a host
-- command that cannot run, a bad network plan. Run under ASan with detect_leaks=1 (see
-- tests/integration/binding_errors.sh), a binding that leaks on its error path fails the run.
local internal = debug.getregistry()["moonrig.internal"]
expect.truthy(internal, "the bindings' internal table")

local function raises(what, pattern, fn, ...)
  local args = table.pack(...)
  expect.raises(function() fn(table.unpack(args, 1, args.n)) end, pattern, what)
  log.info("ok - " .. what)
end

local function returns_error(what, text, fn, ...)
  local r = table.pack(fn(...))
  expect.eq(r[1], nil, what)
  expect.contains(r[2], text, what)
  log.info("ok - " .. what)
end

subtest("internal.container.new: arguments checked before anything is made", function()
  raises("container_new without a state directory", "bad argument #2", internal.container.new, "x")
  raises("container_new with options that are no table", "bad argument #4",
    internal.container.new, "x", "/nonexistent", nil, "opts")
  raises("container_new with services not a list", "option services must be a list of strings",
    internal.container.new, "x", "/nonexistent", nil, { services = "nginx" })
  raises("container_new with a bind entry not a string", "option bind: entry 2 must be a string",
    internal.container.new, "x", "/nonexistent", nil, { services = { "a" }, bind = { "/a", {} } })
  raises("container_new with a file that is no table", "x: files: entry 1 must be a table",
    internal.container.new, "x", "/nonexistent", nil, { env = { "A=1" }, files = { "/etc/x" } })
  local many = {}
  for i = 1, 257 do many[i] = { path = "/f" .. i, content = "x" } end
  raises("container_new with too many files", "x: too many files (at most 256)",
    internal.container.new, "x", "/nonexistent", nil, { bind_ro = { "/a" }, files = many })
  raises("container_new with an unwritable console log",
    "x: cannot open its console log /nonexistent/dir/x.console.log",
    internal.container.new, "x", "/nonexistent", nil, { devices = { "/dev/null" },
      console_log = "/nonexistent/dir/x.console.log" })
end)

subtest("internal.node.host_exec: a command that cannot run", function()
  raises("host_exec of an empty command", "host_exec: empty command", internal.node.host_exec, {})
  raises("host_exec of no table", "bad argument #1", internal.node.host_exec, "true")
  raises("host_exec with an argument not a string", "host_exec: argument 2 must be a string",
    internal.node.host_exec, { "echo", {} })
  raises("host_exec of a missing program",
    "cannot run /nonexistent/program: No such file or directory",
    internal.node.host_exec, { "/nonexistent/program", "arg" })
  expect.eq(internal.node.host_exec({ "sh", "-c", "exit 3" }), 3, "host_exec's exit status")
  log.info("ok - host_exec returns the exit status")
end)

subtest("internal.net.*: a bad plan, bad links", function()
  raises("net_plan of no table", "bad argument #1", internal.net.plan, 5)
  returns_error("net_plan with a VLAN out of range",
    "node a: vlans: entry 2 must be a VLAN number from 0 to", internal.net.plan,
    { { name = "a", vlans = { 1, -1 } } })
  returns_error("net_plan with a VLAN not a number", "node a: vlans: entry 1 must be a VLAN number",
    internal.net.plan, { { name = "a", vlans = { "one" } } })
  raises("net_plan with a node without a name", "bad argument", internal.net.plan, { { vlans = { 1 } } })
  returns_error("net_link_up of a missing link", "setting moonrig-nosuch0 up: looking up moonrig-nosuch0: No such device", internal.net.link_up, "moonrig-nosuch0", true)
  returns_error("net_netem with a negative rate", "rate -1.0 is not a number of kbit/s from 0 to 2^64",
    internal.net.netem, "moonrig-nosuch0", { rate = -1 })
  raises("net_bridge without a name", "bad argument #2", internal.net.bridge, 1)
end)

local a = container "a" {
  files = {
    ["/etc/systemd/system/slow.service"] = "[Service]\nType=oneshot\nExecStart=/bin/sleep 1000\n",
  },
}
local h = a._h

subtest("the node handle before its start", function()
  raises("a method on no handle", "bad argument #1", h.exec, 5, "true")
  raises("a command before the start", "a: the container is not running", h.exec, h, "true")
  raises("wait_ready before the start", "a: the container is not running", h.wait_ready, h, 1)
  raises("reboot before the start", "a: cannot reboot: the container is not up and ready", h.reboot, h)
  raises("wait_unit before the start", "a: the container is not running", h.wait_unit, h, "x.service")
  raises("unit_show before the start", "a: the container is not running", h.unit_show, h, "x.service")
  raises("set_links with no table", "bad argument #2", h.set_links, h, "eth1")
  raises("set_links with a link that is no table", "a: links: entry 1 must be a table", h.set_links, h, { "eth1" })
  raises("a VM's method on a container", "a: not available on a container node", h.hmp, h, "info status")
  raises("exec without a command", "bad argument #2", h.exec, h)
  raises("wait_console with no line count", "bad argument #2", h.wait_console, h)
end)

subtest("a start that fails", function()
  local dir = io.popen("mktemp -d /tmp/moonrig-binding-errors.XXXXXX"):read("l")
  local bad = internal.container.new("badimage", dir, nil, { image = "/nonexistent-image" })
  local ok, err = pcall(function()
    local started = pcall(bad.start, bad)
    if started then bad:wait_ready(60) end
    error("the start did not fail")
  end)
  bad:wait_exit(60)
  os.execute("rm -rf '" .. dir .. "'")
  expect.falsy(ok, "the start of a container with a missing image")
  local text = type(err) == "table" and tostring(err.message) or tostring(err)
  expect.contains(text, "badimage")
  log.info("ok - a start that fails raises, naming the node")
end)

a:wait_for_unit("multi-user.target")

subtest("waits that time out, waits outside a task", function()
  local e = expect.raises(function() h:wait_exit(1) end)
  expect.eq(e.kind, "Timeout")
  expect.eq(e.message, "timed out: a: waiting for the container to power off")
  log.info("ok - wait_exit times out with its Timeout failure")
  a:succeed("systemctl start --no-block slow.service")
  e = expect.raises(function() h:wait_unit("slow.service", nil, 1) end)
  expect.eq(e.kind, "Timeout")
  expect.eq(e.message, 'timed out waiting for unit "slow.service"')
  log.info("ok - wait_unit times out with its Timeout failure")
  raises("a wait from C (not a task)", "this call waits, and can only be made from a test script",
    string.gsub, "x", "x", function() h:exec("true") end)
  raises("a unit wait from C (not a task)", "this call waits, and can only be made from a test script",
    string.gsub, "x", "x", function() h:wait_unit("slow.service") end)
  raises("a host command from C (not a task)", "this call waits, and can only be made from a test script",
    string.gsub, "x", "x", function() internal.node.host_exec({ "true" }) end)
  raises("wait_unit of an unknown user", 'a: cannot reach systemd of user nosuchuser',
    h.wait_unit, h, "default.target", "nosuchuser", 30)
end)

subtest("a VM's handle in bad states", function()
  local dir = io.popen("mktemp -d /tmp/moonrig-binding-errors.XXXXXX"):read("l")
  local v = internal.vm.new("v", dir, nil, { kernel = "/nonexistent/vmlinuz", accel = "tcg" })
  raises("a QMP call to a VM that does not run", "v: monitor command: the VM is not running", v.hmp, v, "info status")
  raises("wait_event of a VM that does not run", "v: QMP API is not ready yet", v.wait_event, v, 1)
  raises("send_console to a VM that does not run", "v: cannot write to the console", v.send_console, v, "x")
  raises("a container's method on a VM", "v: not available on a VM node", v.wait_unit, v, "x.service")
  raises("vm_new with a memory that is no number", "bad argument", internal.vm.new, "w", dir, nil, { memory = "lots" })
  os.execute("rm -rf '" .. dir .. "'")
end)
