-- node.lua: the Node base every kind shares, over the one C handle (lua/l_machine.c): the node
-- list, declaration checks, lifecycle, commands, waits, console and files. A kind's module
-- (container.lua, vm.lua) makes its class with node.class and fills in what differs.
-- Messages follow the NixOS driver's, since users grep logs for them.
local internal = ...

local fmt, concat = string.format, table.concat
local fail_with, nested = internal.fail_with, internal.nested
local clog, opt_timeout = internal.log, internal.opt_timeout
local modules = internal.modules
local C = internal.node

local M = {}
modules.node = M

-- host_exec({argv...}) -> exit status: a command on the host, for the kinds' file copies.
M.host_exec = C.host_exec

local DEFAULT_TIMEOUT = 900
M.DEFAULT_TIMEOUT = DEFAULT_TIMEOUT

-- What a kind tells the base: its words in messages (kinds.container = { noun =, plural = }).
M.kinds = {}

local function node_tostring(self)
  return fmt("<%s %q>", self.kind, self.name)
end

-- Fields no class holds are the network's (ip, links, number, vlans: net.lua). The REPL
-- completes a node from its class tables, found through the upvalues of __index: only the
-- class may be a table there.
local function network_field(self, k) return modules.net.field(self, k) end

-- A node class: its own methods, then base's, then the network fields.
function M.class(base)
  local C = base and setmetatable({}, { __index = base }) or {}
  C.__name = "Node"
  C.__tostring = node_tostring
  C.__index = function(self, k)
    local m = C[k]
    if m ~= nil then return m end
    return network_field(self, k)
  end
  return C
end

local Node = M.class(nil)
M.Node = Node

local by_name = {}         -- name -> node
local sorted = {}          -- nodes by name, as NixOS numbers them
M.by_name, M.sorted = by_name, sorted

-- nodes: the nodes sorted by name; nodes.web works too.
nodes = setmetatable({}, {
  __index = function(_, k) return by_name[k] end,
  __len = function() return #sorted end,
  __pairs = function() return ipairs(sorted) end,
  __newindex = function() error("nodes is read-only: declare nodes with container \"name\" { ... }", 2) end,
})
-- ipairs(nodes) must see the array
setmetatable(nodes, getmetatable(nodes))
getmetatable(nodes).__index = function(_, k)
  if math.type(k) == "integer" then return sorted[k] end
  return by_name[k]
end

local function usage_error(msg)
  fail_with("UsageError", msg)
end
M.usage_error = usage_error

---------------------------------------------------------------------------------------------
-- Declaring

local run_dir            -- where state directories live
local function state_root()
  if run_dir then return run_dir end
  if KEEP_MACHINE_STATE then
    local base = os.getenv("XDG_RUNTIME_DIR") or os.getenv("TMPDIR") or "/tmp"
    run_dir = base .. "/moonrig-state"
  else
    -- inside the run's own mount namespace: a tmpfs that vanishes with the run
    run_dir = "/run/moonrig"
  end
  os.execute("mkdir -p -m 0700 '" .. run_dir .. "/shared-xchg'")
  return run_dir
end
M.state_root = state_root

-- What every node declaration checks: the name (it becomes a machine name and a global), the
-- options' types, and the VLAN list (VLAN 1 when unsaid). Returns the options and the VLANs.
function M.check_declaration(kind, name, opts, options)
  if type(name) ~= "string" or not name:match("^[%a%d][%w_%-]*$") or #name > 63 then
    usage_error(fmt("%s: bad node name %s: use letters, digits, '-' and '_' (at most 63, "
      .. "starting with a letter or digit)", kind, internal.repr(name)))
  end
  opts = opts or {}
  if type(opts) ~= "table" then usage_error(fmt("%s %q: options must be a table", kind, name)) end
  for k, v in pairs(opts) do
    local want = options[k]
    if not want then usage_error(fmt("%s %q: unknown option %s", kind, name, tostring(k))) end
    if type(v) ~= want then
      usage_error(fmt("%s %q: option %s must be a %s, got %s", kind, name, k, want, type(v)))
    end
  end
  local node_vlans = { 1 }
  if opts.vlans then
    node_vlans = {}
    for i, v in ipairs(opts.vlans) do
      if math.type(v) ~= "integer" or v < 0 or v > 255 then
        usage_error(fmt("%s %q: vlans[%d] must be a VLAN number from 0 to 255, got %s", kind, name, i,
          internal.repr(v)))
      end
      for j = 1, i - 1 do
        if node_vlans[j] == v then usage_error(fmt("%s %q: VLAN %d is listed twice", kind, name, v)) end
      end
      node_vlans[i] = v
    end
  end
  return opts, node_vlans
end

-- The node already declared under that name (the REPL may declare again), or nil once it is
-- sure this one may be made: a new name, and root.
function M.existing_node(kind, name)
  local existing = by_name[name]
  if existing then
    if internal.redeclare then return existing end
    usage_error(fmt("%s %q is declared twice", kind, name))
  end
  if not C.sandboxed() then
    fail_with("HostError", fmt("%s %q: %s need root (moonrig runs them in its own namespaces); "
      .. "run moonrig as root", kind, name, M.kinds[kind].plural))
  end
end

-- The run's state root and the node's state directory (emptied unless -K), and its console log.
function M.node_paths(name)
  local root = state_root()
  local state_dir = root .. "/vm-state-" .. name
  if not KEEP_MACHINE_STATE then os.execute("rm -rf '" .. state_dir .. "'") end
  local console_log = internal.output_dir and (internal.output_dir .. "/" .. name .. ".console.log") or nil
  return root, state_dir, console_log
end

-- Every node kind registers here, so that names, numbers and networks cover them all.
function M.add(node)
  local name = node.name
  by_name[name] = node
  sorted[#sorted + 1] = node
  table.sort(sorted, function(a, b) return a.name < b.name end)
  local ok, err = pcall(modules.net.node_added, node)
  if not ok then
    by_name[name] = nil
    for i, n in ipairs(sorted) do if n == node then table.remove(sorted, i) break end end
    error(err, 0)
  end
  _G[(name:gsub("[^%w_]", "_"))] = node
  modules.net.set_vlan_globals(node)
end

---------------------------------------------------------------------------------------------
-- Lifecycle

function Node:log(msg) clog.message(self.name, tostring(msg)) end

function Node:nested(msg, fn) return nested(msg, fn, self.name) end

-- A kind's host checks before its first start (self:_preflight()) come first, then the
-- node's networks.
function Node:start()
  internal.action()
  if self._h:is_up() or self._h:is_booting() then return end
  self:_preflight()
  modules.net.prepare(self)
  self._h:start()
  self._started = true
  clog.message(self.name, "starting " .. self.kind)
end

local function ensure_ready(self, timeout)
  if not self._h:is_ready() then
    self:start()
    self._h:wait_ready(timeout)
  end
end
M.ensure_ready = ensure_ready

function start_all()
  internal.action()
  nested("start all nodes", function()
    for _, n in ipairs(sorted) do n:start() end
  end)
end

function join_all()
  internal.action()
  nested("wait for all nodes to finish", function()
    for _, n in ipairs(sorted) do n:wait_for_shutdown() end
  end)
end

function Node:is_up() return self._h:is_up() end

function Node:shutdown()
  internal.action()
  if not self._h:is_up() then return end
  nested("shutting down", function() self._h:shutdown() end, self.name)
end

function Node:wait_for_shutdown(opts)
  internal.action()
  local timeout = opt_timeout(opts, nil)
  nested(fmt("waiting for the %s to power off", M.kinds[self.kind].noun), function()
    self._h:wait_exit(timeout)
  end, self.name)
end

function Node:crash()
  internal.action()
  nested("forced crash", function() self._h:crash() end, self.name)
end

function Node:reboot()
  internal.action()
  ensure_ready(self)
  nested("rebooting", function() self._h:reboot() end, self.name)
end

function Node:release()
  if self._h:is_up() then self._h:crash() end
end

---------------------------------------------------------------------------------------------
-- Commands

local function split_commands(...)
  local cmds, opts = { ... }, nil
  if type(cmds[#cmds]) == "table" then opts = table.remove(cmds) end
  for i, c in ipairs(cmds) do
    if type(c) ~= "string" then error(fmt("command %d must be a string, got %s", i, type(c)), 3) end
  end
  return cmds, opts
end

local function tail(s, n)
  if #s <= n then return s end
  return "..." .. s:sub(-n)
end

-- execute(cmd, {timeout=, check_return=, check_output=}) -> status, stdout, stderr.
-- As in NixOS: check_output = false starts the command and returns -2, "" at once;
-- check_return = false returns -1 as the status and does not fail when the command takes the
-- node down with it (poweroff, reboot, switch-root). Each kind runs those two forms its own
-- way (self:_execute_unchecked).
function Node:execute(cmd, opts)
  internal.action()
  if type(cmd) ~= "string" then error("execute: the command must be a string", 2) end
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  local check_return, check_output = true, true
  if type(opts) == "table" then
    check_return = opts.check_return ~= false
    check_output = opts.check_output ~= false
  end
  internal.check_polling_conditions()
  ensure_ready(self)
  if not (check_return and check_output) then
    return self:_execute_unchecked(cmd, timeout, check_return, check_output)
  end
  local status, out, err, timed_out, abandoned, problem = self:_exec(cmd, timeout)
  if problem then
    fail_with("MachineError", fmt("%s: command `%s`: %s", self.name, cmd, problem),
      { node = self.name, command = cmd, status = status, output = tail(out .. err, 2000) })
  end
  if abandoned then
    clog.warning(fmt("%s: command `%s` left a process holding its output open; stopped reading "
      .. "after the grace period (redirect the background process's output)", self.name, cmd))
  end
  if timed_out then
    fail_with("Timeout", fmt("command `%s` timed out after %g seconds", cmd, timeout),
      { node = self.name, command = cmd, timeout = timeout, output = tail(out .. err, 2000) })
  end
  if #err > 0 then
    for line in err:gmatch("[^\n]+") do clog.serial(self.name, line) end
  end
  return status, out, err
end

-- One command, as every kind answers: status, stdout, stderr, timed_out, abandoned, problem.
function Node:_exec(cmd, timeout) return self._h:exec(cmd, timeout) end

-- succeed and fail: each command in turn must exit with (or without) status 0.
local function run_each(self, want_success, ...)
  local cmds, opts = split_commands(...)
  local timeout = opt_timeout(opts, nil)
  local outs = {}
  for _, cmd in ipairs(cmds) do
    nested((want_success and "must succeed: " or "must fail: ") .. cmd, function()
      local status, out, err = self:execute(cmd, { timeout = timeout })
      if (status == 0) ~= want_success then
        local msg
        if want_success then
          clog.message(self.name, "output: " .. out)
          msg = fmt("command `%s` failed (exit code %d)", cmd, status)
        else
          msg = fmt("command `%s` unexpectedly succeeded", cmd)
        end
        fail_with("TestFailure", msg,
          { node = self.name, command = cmd, status = status, output = tail(out .. err, 2000) })
      end
      outs[#outs + 1] = out
    end, self.name)
  end
  return concat(outs)
end

function Node:succeed(...) return run_each(self, true, ...) end
function Node:fail(...) return run_each(self, false, ...) end

-- wait_until_succeeds and wait_until_fails: retry until the status is what is wanted.
local function wait_until(self, want_success, cmd, opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  local what = want_success and "waiting for success: " or "waiting for failure: "
  return nested(what .. cmd, function()
    local output
    retry(function()
      local status, out = self:execute(cmd, { timeout = timeout })
      output = out
      return (status == 0) == want_success
    end, { timeout = timeout })
    return output
  end, self.name)
end

function Node:wait_until_succeeds(cmd, opts) return wait_until(self, true, cmd, opts) end
function Node:wait_until_fails(cmd, opts) return wait_until(self, false, cmd, opts) end

function Node:sleep(seconds)
  self:succeed(fmt("sleep %g", seconds))
end

---------------------------------------------------------------------------------------------
-- systemd: wait_for_unit and the unit queries are each kind's (the manager over sd-bus, or
-- systemctl through the shell); what they share is here.

function M.unit_suffix(unit)
  if type(unit) ~= "string" or unit == "" then error("expected a unit name", 3) end
  if unit:match("%.[%a]+$") and (unit:match("%.service$") or unit:match("%.target$")
      or unit:match("%.socket$") or unit:match("%.timer$") or unit:match("%.mount$")
      or unit:match("%.path$") or unit:match("%.slice$") or unit:match("%.scope$")
      or unit:match("%.device$") or unit:match("%.swap$") or unit:match("%.automount$")) then
    return unit
  end
  return unit .. ".service"
end

function Node:systemctl(q, opts)
  local user = type(opts) == "table" and opts.user or nil
  if user then
    q = q:gsub("'", "\\'")
    return self:execute(fmt("su -l %s --shell /bin/sh -c $'XDG_RUNTIME_DIR=/run/user/`id -u` systemctl --user %s'",
      user, q))
  end
  return self:execute("systemctl " .. q)
end

function M.parse_show(text)
  local info = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then info[k] = v end
  end
  return info
end

function Node:require_unit_state(unit, state)
  state = state or "active"
  nested(fmt("checking if unit '%s' has reached state '%s'", unit, state), function()
    local actual = self:get_unit_property(unit, "ActiveState")
    if actual ~= state then
      fail_with("TestFailure", fmt("Expected unit '%s' to to be in state '%s' but it is in state '%s'",
        unit, state, actual), { node = self.name, unit = unit })
    end
  end, self.name)
end

function Node:start_job(job, opts) return self:systemctl("start " .. job, opts) end
function Node:stop_job(job, opts) return self:systemctl("stop " .. job, opts) end

---------------------------------------------------------------------------------------------
-- Waiting for files, ports and sockets

function Node:wait_for_file(filename, opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested(fmt("waiting for file '%s'", filename), function()
    retry(function() return self:execute("test -e " .. filename) == 0 end, { timeout = timeout })
  end, self.name)
end

-- A port or socket from inside the node: each kind's self:_probe.
local function probe(self, ...)
  internal.action()
  internal.check_polling_conditions()
  ensure_ready(self)
  return self:_probe(...)
end

function Node:wait_for_open_port(port, opts)
  local addr = type(opts) == "table" and opts.addr or "localhost"
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested(fmt("waiting for TCP port %d on %s", port, addr), function()
    retry(function() return probe(self, "tcp", addr, port) end, { timeout = timeout })
  end, self.name)
end

function Node:wait_for_closed_port(port, opts)
  local addr = type(opts) == "table" and opts.addr or "localhost"
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested(fmt("waiting for TCP port %d on %s to be closed", port, addr), function()
    retry(function() return not probe(self, "tcp", addr, port) end, { timeout = timeout })
  end, self.name)
end

function Node:wait_for_open_unix_socket(path, opts)
  local dgram = type(opts) == "table" and opts.is_datagram or false
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested(fmt("waiting for UNIX-domain %s on '%s'", dgram and "datagram" or "stream", path), function()
    retry(function() return probe(self, "unix", path, dgram) end, { timeout = timeout })
  end, self.name)
end

---------------------------------------------------------------------------------------------
-- Console

function Node:get_console_log()
  return (self._h:console())
end

-- Wait until a console line matches the Lua pattern; lines are consumed, as NixOS does.
function Node:wait_for_console_text(pattern, opts)
  internal.action()
  local timeout = opt_timeout(opts, nil)
  return nested(fmt("waiting for %s to appear on console", pattern), function()
    local deadline = timeout and (internal.now() + timeout)
    while true do
      local log, nlines = self._h:console()
      local i = 0
      for line in log:gmatch("([^\n]*)\n") do
        i = i + 1
        if i > self._console_seen then
          self._console_seen = i
          if line:find(pattern) then return line end
        end
      end
      local left = deadline and (deadline - internal.now()) or 0
      if deadline and left <= 0 then
        fail_with("Timeout", fmt("no console line matched %q within %g seconds", pattern, timeout),
          { node = self.name })
      end
      -- the wait's own deadline is this loop's: the check above raises, naming the node
      local ok, e = pcall(self._h.wait_console, self._h, nlines, deadline and left or 0)
      if not ok and not (internal.is_failure(e) and e.kind == "Timeout") then error(e, 0) end
    end
  end, self.name)
end

---------------------------------------------------------------------------------------------
-- Files: each kind copies its own way (copy_from_host, copy_from_machine); these help.

function M.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local copy_serial = 0
function M.shared_tmp()
  copy_serial = copy_serial + 1
  return fmt("copy-%d-%d", math.floor(internal.now() * 1000), copy_serial)
end
