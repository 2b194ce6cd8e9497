-- node.lua: node objects and their NixOS-named methods, on top of the C container handle
-- (lua/l_node.c). Messages follow the NixOS driver's, since users grep logs for them.
local internal = ...

local fmt, concat = string.format, table.concat
local failure, fail_with, nested = internal.failure, internal.fail_with, internal.nested
local clog, opt_timeout = internal.log, internal.opt_timeout

local Node = {}
Node.__name = "Node"
local network_field     -- defined with the networks below
Node.__index = function(self, k)
  local m = Node[k]
  if m ~= nil then return m end
  return network_field(self, k)
end

local by_name = {}         -- name -> node
local sorted = {}          -- nodes by name, as NixOS numbers them

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

function Node:__tostring()
  return fmt("<%s %q>", self.kind, self.name)
end

local function usage_error(msg)
  fail_with("UsageError", msg)
end

---------------------------------------------------------------------------------------------
-- Declaring

local CONTAINER_OPTIONS = {
  image = "string", services = "table", files = "table", bind = "table", bind_ro = "table",
  devices = "table", gpu = "boolean", env = "table", hostname = "string", vlans = "table",
  boot_timeout = "number", persistent = "boolean", system = "string", nspawn_args = "table",
}

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

local function normalize_files(name, files)
  local list = {}
  for path, spec in pairs(files) do
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
      usage_error(fmt("%s: files: the key %s must be an absolute path", name, tostring(path)))
    end
    local e = { path = path }
    if type(spec) == "string" then
      e.content = spec
    elseif type(spec) == "table" then
      e.content = spec.content or spec.text
      e.source = spec.source
      if not e.content and not e.source then
        usage_error(fmt("%s: files[%q]: give content = \"...\" or source = \"host/path\"", name, path))
      end
      if e.source then
        local f = io.open(e.source, "rb")
        if not f then usage_error(fmt("%s: files[%q]: cannot read the source %s", name, path, e.source)) end
        f:close()
      end
      if spec.mode then
        local m = type(spec.mode) == "string" and tonumber(spec.mode, 8) or spec.mode
        if type(m) ~= "number" then usage_error(fmt("%s: files[%q]: bad mode %s", name, path, tostring(spec.mode))) end
        e.mode = m
      end
    else
      usage_error(fmt("%s: files[%q] must be a string or a table", name, path))
    end
    list[#list + 1] = e
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  return list
end

-- env = { NAME = "value" } or { "NAME=value", ... }: a list of assignments, names sorted.
local function normalize_env(name, env)
  local list, seen = {}, {}
  local function add(k, v)
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      usage_error(fmt("%s: env: bad variable name %s (letters, digits and _, not first a digit)", name,
        internal.repr(k)))
    end
    if type(v) ~= "string" and type(v) ~= "number" then
      usage_error(fmt("%s: env: the value of %s must be a string, got %s", name, k, type(v)))
    end
    if tostring(v):find("[\n\r]") then
      usage_error(fmt("%s: env: the value of %s must be one line", name, k))
    end
    if seen[k] then usage_error(fmt("%s: env: %s is set twice", name, k)) end
    seen[k] = true
    list[#list + 1] = k .. "=" .. tostring(v)
  end
  for i, a in ipairs(env) do
    local k, v
    if type(a) == "string" then k, v = a:match("^([^=]*)=(.*)$") end
    if not k then
      usage_error(fmt("%s: env[%d]: expected \"NAME=value\", got %s", name, i, internal.repr(a)))
    end
    add(k, v)
  end
  local keys = {}
  for k in pairs(env) do
    if not (math.type(k) == "integer" and k >= 1 and k <= #env) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do add(k, env[k]) end
  return list
end

-- --setenv reaches the node's PID 1 only: its services get env from the manager's
-- DefaultEnvironment (quoted, C escapes for " and \, %% for a specifier's %).
local function env_manager_file(env)
  local words = {}
  for i, a in ipairs(env) do
    words[i] = '"' .. a:gsub('[\\"]', "\\%0"):gsub("%%", "%%%%") .. '"'
  end
  return { path = "/etc/systemd/system.conf.d/50-moonrig-env.conf",
           content = "[Manager]\nDefaultEnvironment=" .. concat(words, " ") .. "\n" }
end

-- gpu = true: the NVIDIA device nodes (and DRI render nodes) the host has. A host-image node sees
-- the driver's libraries and tools already, since the host's /usr and /etc (ld.so.cache) are its.
local function gpu_devices(name)
  local devs, has_nvidia = {}, false
  local p = io.popen("ls -d /dev/nvidia* /dev/nvidia-caps/* /dev/dri/card* /dev/dri/renderD* 2>/dev/null")
  for d in p:read("a"):gmatch("[^\n]+") do
    if d ~= "/dev/nvidia-caps" then
      devs[#devs + 1] = d
      if d:match("^/dev/nvidia") then has_nvidia = true end
    end
  end
  p:close()
  if not has_nvidia then
    fail_with("HostError", fmt("%s: gpu = true, but this host has no NVIDIA device nodes "
      .. "(/dev/nvidia*): load the NVIDIA driver on the host or drop gpu = true", name))
  end
  return devs
end

-- What every node declaration checks: the name (it becomes a machine name and a global), the
-- options' types, and the VLAN list (VLAN 1 when unsaid). Returns the options and the VLANs.
local function check_declaration(kind, name, opts, options)
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

local KIND_PLURAL = { container = "containers", vm = "VMs" }

-- The node already declared under that name (the REPL may declare again), or nil once it is
-- sure this one may be made: a new name, and root.
local function existing_node(kind, name)
  local existing = by_name[name]
  if existing then
    if internal.redeclare then return existing end
    usage_error(fmt("%s %q is declared twice", kind, name))
  end
  if not internal.sandboxed() then
    fail_with("HostError", fmt("%s %q: %s need root (moonrig runs them in its own namespaces); "
      .. "run moonrig as root", kind, name, KIND_PLURAL[kind]))
  end
end

-- The run's state root and the node's state directory (emptied unless -K), and its console log.
local function node_paths(name)
  local root = state_root()
  local state_dir = root .. "/vm-state-" .. name
  if not KEEP_MACHINE_STATE then os.execute("rm -rf '" .. state_dir .. "'") end
  local console_log = internal.output_dir and (internal.output_dir .. "/" .. name .. ".console.log") or nil
  return root, state_dir, console_log
end

local function declare_container(name, opts, start_script)
  local node_vlans
  opts, node_vlans = check_declaration("container", name, opts, CONTAINER_OPTIONS)
  if opts.system then
    local f = io.open(opts.system .. "/init", "rb")
    if not f then
      usage_error(fmt("container %q: system %s has no init: give a NixOS system's toplevel "
        .. "(/nix/store/...-nixos-system-...)", name, opts.system))
    end
    f:close()
    if opts.image then usage_error(fmt("container %q: give image or system, not both", name)) end
  end
  if opts.image and opts.image ~= "host" then
    local f = io.open(opts.image .. "/.", "rb")
    if not f then usage_error(fmt("container %q: image %s is not a directory", name, opts.image)) end
    f:close()
  end

  local existing = existing_node("container", name)
  if existing then return existing end

  local devices = opts.devices and { table.unpack(opts.devices) } or {}
  if opts.gpu then
    for _, d in ipairs(gpu_devices(name)) do devices[#devices + 1] = d end
  end
  local root, state_dir, console_log = node_paths(name)
  local env = opts.env and normalize_env(name, opts.env)
  local files = normalize_files(name, opts.files or {})
  if env and #env > 0 and not start_script then files[#files + 1] = env_manager_file(env) end
  local c_opts = {
    image = opts.image, services = opts.services, bind = opts.bind, bind_ro = opts.bind_ro,
    devices = devices, env = env, hostname = opts.hostname or name,
    boot_timeout = opts.boot_timeout, persistent = opts.persistent, nspawn_args = opts.nspawn_args,
    files = files, console_log = console_log,
    system = opts.system, start_script = start_script,
  }
  local h = internal.container_new(name, state_dir, root .. "/shared-xchg", c_opts)
  local node = setmetatable({
    name = name, kind = "container", _h = h, _started = false, _console_seen = 0,
    -- as the NixOS driver's machine attributes: the host side of /tmp/shared, the node's state
    shared_dir = root .. "/shared-xchg", state_dir = state_dir,
    _vlans = node_vlans, _script = start_script, _hostname = opts.hostname,
  }, Node)
  internal.add_node(node)
  return node
end

-- A container of a --config file: its run-<name>-nspawn script boots it and wires its network
-- (the NixOS launcher makes its own namespace, bridges and veths).
function internal.config_container(name, start_script)
  return declare_container(name, { vlans = {} }, start_script)
end

-- NixOS's `machine`: with exactly one machine from the config, not called machine, the global
-- machine is that node, with a warning on each use.
function internal.config_done()
  if #sorted ~= 1 or sorted[1].name == "machine" or rawget(_G, "machine") then return end
  local only = sorted[1]
  machine = setmetatable({}, {
    __index = function(_, k)
      clog.warning(fmt("using `machine` is deprecated: the only machine is called %s", only.name))
      local v = only[k]
      if type(v) == "function" then
        return function(self, ...) if self == machine then self = only end return v(self, ...) end
      end
      return v
    end,
    __tostring = function() return tostring(only) end,
  })
end

-- container "name" { ... }  or  container("name", { ... })
-- Every node kind registers here, so that names, numbers and networks cover them all.
function internal.add_node(node)
  local name = node.name
  by_name[name] = node
  sorted[#sorted + 1] = node
  table.sort(sorted, function(a, b) return a.name < b.name end)
  local ok, err = pcall(internal.network_added, node)
  if not ok then
    by_name[name] = nil
    for i, n in ipairs(sorted) do if n == node then table.remove(sorted, i) break end end
    error(err, 0)
  end
  _G[(name:gsub("[^%w_]", "_"))] = node
end

function container(name, opts)
  if opts ~= nil then return declare_container(name, opts) end
  return function(o) return declare_container(name, o or {}) end
end


---------------------------------------------------------------------------------------------
-- Lifecycle

function Node:log(msg) clog.message(self.name, tostring(msg)) end

function Node:nested(msg, fn) return nested(msg, fn, self.name) end

local function preflight_all()
  if internal.preflight_done then return end
  local ok, err = internal.container_preflight(#sorted)
  if not ok then fail_with("HostError", err) end
  internal.preflight_done = true
end

function Node:start()
  internal.action()
  if self._h:is_up() or self._h:is_booting() then return end
  preflight_all()
  internal.network_prepare(self)
  self._h:start()
  self._started = true
  clog.message(self.name, "starting container")
end

local function ensure_ready(self, timeout)
  if not self._h:is_ready() then
    self:start()
    self._h:wait_ready(timeout)
  end
end
internal.ensure_ready = ensure_ready

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
  nested("waiting for the container to power off", function()
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

local DEFAULT_TIMEOUT = 900

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
-- node down with it (poweroff, reboot, switch-root).
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
  if self.kind == "vm" and not (check_return and check_output) then
    -- the backdoor protocol's own forms: nothing read back, or no status asked for
    local status, out = self._h:exec(cmd, timeout, check_return, check_output)
    return status, out, ""
  end
  if not check_output then
    self._h:exec("( " .. cmd .. "\n) </dev/null >/dev/null 2>&1 &", timeout)
    return -2, "", ""
  end
  local status, out, err, timed_out, abandoned, problem = self:_exec(cmd, timeout)
  if not check_return then return -1, out, err end
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
-- systemd

local function unit_suffix(unit)
  if type(unit) ~= "string" or unit == "" then error("expected a unit name", 3) end
  if unit:match("%.[%a]+$") and (unit:match("%.service$") or unit:match("%.target$")
      or unit:match("%.socket$") or unit:match("%.timer$") or unit:match("%.mount$")
      or unit:match("%.path$") or unit:match("%.slice$") or unit:match("%.scope$")
      or unit:match("%.device$") or unit:match("%.swap$") or unit:match("%.automount$")) then
    return unit
  end
  return unit .. ".service"
end

function Node:wait_for_unit(unit, opts)
  internal.action()
  opts = opts or {}
  local user = type(opts) == "table" and opts.user or nil
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  local name = unit_suffix(unit)
  nested(fmt("waiting for unit %s%s", name, user and (" with user " .. user) or ""), function()
    ensure_ready(self, timeout)
    local ok, e = pcall(self._h.wait_unit, self._h, name, user, timeout)
    if not ok then
      if internal.is_failure(e) then
        e.node = self.name
        e.unit = name
        if e.message:match('reached state "failed"') then
          -- As root, journalctl --user-unit matches uid 0's units: name the user's uid instead.
          local cmd = user and fmt("u=$(id -u %q) && journalctl --no-pager -n 20 _UID=$u "
              .. "_SYSTEMD_USER_UNIT=%q + _UID=$u USER_UNIT=%q 2>&1 || true", tostring(user), name, name)
            or fmt("journalctl --no-pager -n 20 -u %q 2>&1 || true", name)
          local _, journal = self:execute(cmd)
          e.output = journal
        end
      end
      error(e, 0)
    end
  end, self.name)
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

local function parse_show(text)
  local info = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then info[k] = v end
  end
  return info
end

function Node:get_unit_info(unit, opts)
  internal.action()
  local user = type(opts) == "table" and opts.user or nil
  ensure_ready(self)
  local ok, text = pcall(self._h.unit_show, self._h, unit_suffix(unit), user)
  if not ok then
    fail_with("TestFailure", fmt('retrieving systemctl info for unit "%s"%s failed: %s', unit,
      user and fmt(' under user "%s"', user) or "", internal.error_message(text)), { node = self.name })
  end
  return parse_show(text)
end

function Node:get_unit_property(unit, property, opts)
  internal.action()
  local user = type(opts) == "table" and opts.user or nil
  ensure_ready(self)
  local ok, text = pcall(self._h.unit_show, self._h, unit_suffix(unit), user, property)
  if not ok then
    fail_with("TestFailure", fmt('retrieving systemctl property "%s" for unit "%s"%s failed: %s',
      property, unit, user and fmt(' under user "%s"', user) or "", internal.error_message(text)),
      { node = self.name })
  end
  local v = text:match("^" .. property:gsub("%p", "%%%0") .. "=(.-)\n?$")
  if v == nil then
    fail_with("TestFailure", fmt('systemctl show for unit "%s" produced invalid output: %s', unit, text))
  end
  return v
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

local function probe(self, ...)
  internal.action()
  internal.check_polling_conditions()
  ensure_ready(self)
  return self:_probe(...)
end

-- connect() from inside the container's namespaces: no tool needed in the node
function Node:_probe(...) return self._h:probe(...) end

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
-- Files

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
internal.shell_quote = shell_quote

local copy_serial = 0
local function shared_tmp()
  copy_serial = copy_serial + 1
  return fmt("copy-%d-%d", math.floor(internal.now() * 1000), copy_serial)
end

function Node:copy_from_host(source, target)
  internal.action()
  local tmp = shared_tmp()
  local host_dir = state_root() .. "/shared-xchg/" .. tmp
  local base = source:match("([^/]+)/*$") or source
  if internal.host_exec({ "mkdir", "-p", host_dir }) ~= 0
    or internal.host_exec({ "cp", "-r", "--preserve=mode,timestamps", source, host_dir .. "/" .. base }) ~= 0 then
    fail_with("TestFailure", fmt("%s: copy_from_host: cannot copy %s", self.name, source))
  end
  local dir = target:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then self:succeed("mkdir -p " .. shell_quote(dir)) end
  self:succeed(fmt("cp -r --preserve=mode,timestamps %s %s", shell_quote("/tmp/shared/" .. tmp .. "/" .. base),
    shell_quote(target)))
  internal.host_exec({ "rm", "-rf", host_dir })
end

function Node:copy_from_machine(source, opts)
  internal.action()
  local target_dir = type(opts) == "table" and opts.target_dir or (type(opts) == "string" and opts) or ""
  local tmp = shared_tmp()
  local base = source:match("([^/]+)/*$") or source
  self:succeed(fmt("mkdir -p %s && cp -r --preserve=mode,timestamps %s %s",
    shell_quote("/tmp/shared/" .. tmp), shell_quote(source), shell_quote("/tmp/shared/" .. tmp .. "/" .. base)))
  local out = (OUTPUT_DIR or ".") .. (target_dir ~= "" and ("/" .. target_dir) or "")
  local host_src = state_root() .. "/shared-xchg/" .. tmp
  if internal.host_exec({ "mkdir", "-p", out }) ~= 0
    or internal.host_exec({ "cp", "-r", "--preserve=mode,timestamps", host_src .. "/" .. base, out .. "/" }) ~= 0 then
    fail_with("TestFailure", fmt("%s: copy_from_machine: cannot copy %s to %s", self.name, source, out))
  end
  internal.host_exec({ "rm", "-rf", host_src })
end


---------------------------------------------------------------------------------------------
-- Networks: VLAN n is a bridge in the run's own network namespace; each node gets a veth per
-- VLAN (eth1, eth2, ... in the order of its vlans), 192.168.<vlan>.<number>/24 and
-- 2001:db8:<vlan>::<number>/64, numbers in name order as NixOS numbers them.

local LINKS_UNIT = [[
# Written by moonrig: wait until the runner has attached this node's network links.
[Unit]
DefaultDependencies=no
Before=network.target network-online.target
[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=60
ExecStart=/bin/sh -c 'until grep -q "^%s .* %s$" /proc/net/if_inet6; do sleep 0.01; done'
]]

-- "2001:db8:1::2" as /proc/net/if_inet6 writes it: 32 hex digits, no colons.
local function ipv6_hex(text)
  local head, tail = text:match("^(.-)::(.*)$")
  local function groups(t)
    local g = {}
    for x in t:gmatch("[^:]+") do g[#g + 1] = ("0000" .. x):sub(-4) end
    return g
  end
  local h, t = groups(head or text), groups(tail or "")
  local out = table.concat(h) .. string.rep("0000", 8 - #h - #t) .. table.concat(t)
  return out:lower()
end

local plan            -- the addressing plan (internal.net_plan), frozen once a node uses it
local plan_frozen = false
local bridges_made = {}
local net_checked = false

local function compute_plan()
  local specs = {}
  for i, n in ipairs(sorted) do specs[i] = { name = n.name, vlans = n._vlans } end
  local p, err = internal.net_plan(specs)
  if not p then usage_error(err) end
  return p
end

local function current_plan()
  if not plan then plan = compute_plan() end
  return plan
end

-- A declaration after addresses were handed out may not renumber the nodes that have them.
function internal.network_added(node)
  if not plan_frozen then
    plan = nil
    return
  end
  local new = compute_plan()
  for name, old in pairs(plan.nodes) do
    if new.nodes[name].number ~= old.number then
      usage_error(fmt("node %q sorts before nodes whose addresses are in use already (%q would become "
        .. "number %d): declare every node before starting one or reading its address", node.name, name,
        new.nodes[name].number))
    end
  end
  plan = new
end

local function links_of(node)
  plan_frozen = true
  local p = current_plan().nodes[node.name]
  return p and p.links or {}
end

network_field = function(self, k)
  if k == "ip" or k == "ipv6" then
    local l = links_of(self)[1]
    return l and l[k] or nil
  elseif k == "links" then
    local t = {}
    for _, l in ipairs(links_of(self)) do
      t[l.vlan] = { vlan = l.vlan, ifname = l.ifname, mac = l.mac, ip = l.ip, ipv6 = l.ipv6,
                    host_ifname = l.host_ifname }
    end
    return t
  elseif k == "number" then
    plan_frozen = true
    return current_plan().nodes[self.name].number
  elseif k == "vlans" then
    return { table.unpack(self._vlans) }
  end
  return nil
end

-- The plan's /etc/hosts, with a node's own hostname (hostname = "x") before its name, as NixOS
-- lists "<hostname> <hostname>" for each machine.
local function hosts_text()
  local own = {}
  for _, n in ipairs(sorted) do
    if n._hostname and n._hostname ~= n.name then own[n.name] = n._hostname end
  end
  local lines = {}
  for line in current_plan().hosts:gmatch("[^\n]+") do
    local addr, name = line:match("^(%S+) (%S+)$")
    if name and own[name] then line = addr .. " " .. own[name] .. " " .. name end
    lines[#lines + 1] = line
  end
  return concat(lines, "\n") .. "\n"
end

-- Before a node's first boot: the bridges of its VLANs, its links and /etc/hosts.
function internal.network_prepare(node)
  local links = links_of(node)
  if not net_checked and #current_plan().vlans > 0 then
    local ok, err = internal.net_preflight(false, false)
    if not ok then fail_with("HostError", err) end
    net_checked = true
  end
  for _, l in ipairs(links) do
    if not bridges_made[l.vlan] then
      local ok, err = internal.net_bridge(l.vlan, l.bridge)
      if not ok then fail_with("HostError", fmt("VLAN %d: %s", l.vlan, err)) end
      bridges_made[l.vlan] = true
    end
  end
  -- a start script's node (a NixOS container) makes its own network and /etc/hosts
  if node._links_set or node._script then return end
  internal.network_prepare_links(node)
  if #current_plan().vlans > 0 then node._h:add_file("/etc/hosts", hosts_text()) end
  if #links > 0 then
    -- The links are attached as the node's init starts (internal: on_leader); this unit makes
    -- units ordered after network.target wait for them even on a loaded host.
    local last = links[#links]
    node._h:add_file("/etc/systemd/system/moonrig-links.service", fmt(LINKS_UNIT, ipv6_hex(last.ipv6), last.ifname))
    node._h:add_file("/etc/systemd/system/moonrig-network.target.d/links.conf",
      "[Unit]\nWants=moonrig-links.service\nAfter=moonrig-links.service\n")
  end
  node._links_set = true
end

-- The node's links, handed to its handle once (block() before the first start needs them too).
function internal.network_prepare_links(node)
  if node._links_handed or node._script then return end
  node._h:set_links(links_of(node))
  node._links_handed = true
end

local function links_on(node, opts, what)
  local vlan = type(opts) == "table" and opts.vlan or nil
  local out = {}
  for _, l in ipairs(links_of(node)) do
    if vlan == nil or l.vlan == vlan then out[#out + 1] = l end
  end
  if vlan ~= nil and #out == 0 then
    fail_with("TestFailure", fmt("%s: %s: the node is not on VLAN %s", node.name, what, tostring(vlan)))
  end
  return out
end

local function set_links_up(node, opts, up, what)
  internal.action()
  internal.network_prepare_links(node)
  for _, l in ipairs(links_on(node, opts, what)) do
    node._h:set_link_blocked(l.host_ifname, not up)
    if bridges_made[l.vlan] then
      local ok, err = internal.net_link_up(l.host_ifname, up)
      -- a node that is not running has no host end: nothing to cut, and its next boot is fresh
      if not ok and node._h:is_up() then fail_with("TestFailure", fmt("%s: %s: %s", node.name, what, err)) end
    end
  end
end

-- block/unblock: the host side of the node's links down/up (every VLAN unless one is named).
function Node:block(opts)
  nested("blocking network links", function() set_links_up(self, opts, false, "block") end, self.name)
end

function Node:unblock(opts)
  nested("unblocking network links", function() set_links_up(self, opts, true, "unblock") end, self.name)
end

local IMPAIR_KEYS = { delay = true, jitter = true, loss = true, rate = true, vlan = true }

local function impair_links(links, spec, who)
  local netem
  if spec ~= nil then
    if type(spec) ~= "table" then usage_error(fmt("%s: impair takes a table or nil", who)) end
    for k, v in pairs(spec) do
      if not IMPAIR_KEYS[k] then
        usage_error(fmt("%s: impair: unknown key %s (delay, jitter, loss, rate, vlan)", who, tostring(k)))
      end
      if type(v) ~= "number" then usage_error(fmt("%s: impair: %s must be a number", who, k)) end
      if k ~= "vlan" and not (v >= 0 and v < math.huge) then
        usage_error(fmt("%s: impair: %s must be a finite number, not negative (got %s)", who, k, tostring(v)))
      end
    end
    netem = { delay = spec.delay, jitter = spec.jitter, loss = spec.loss, rate = spec.rate }
    if next(netem) == nil then netem = nil end
  end
  for _, l in ipairs(links) do
    local ok, err, why = internal.net_netem(l.host_ifname, netem)
    if not ok then
      if why == "unsupported" then fail_with("HostError", fmt("%s: impair: %s", who, err)) end
      fail_with("TestFailure", fmt("%s: impair: %s", who, err))
    end
  end
end

-- impair({vlan=, delay=ms, jitter=ms, loss=percent, rate=kbit}) delays, drops or limits the
-- traffic delivered to the node (so a round trip through it sees the delay once); nil clears.
function Node:impair(spec)
  internal.action()
  local opts = type(spec) == "table" and spec or nil
  local links = {}
  for _, l in ipairs(links_on(self, opts, "impair")) do
    if bridges_made[l.vlan] then links[#links + 1] = l end
  end
  nested(spec and "impairing network links" or "clearing network impairments", function()
    impair_links(links, spec and (function()
      local t = {}
      for k, v in pairs(spec) do if k ~= "vlan" then t[k] = v end end
      return t
    end)() or nil, self.name)
  end, self.name)
end

-- vlans[n]: the VLAN's nodes (by name order) and a whole-VLAN impair.
local Vlan = {}
Vlan.__index = Vlan
function Vlan:__tostring() return fmt("<Vlan Nr. %d>", self.nr) end

local function vlan_nodes(nr)
  local out = {}
  for _, n in ipairs(sorted) do
    for _, v in ipairs(n._vlans) do
      if v == nr then out[#out + 1] = n break end
    end
  end
  return out
end

function Vlan:impair(spec)
  internal.action()
  local links = {}
  for _, n in ipairs(vlan_nodes(self.nr)) do
    for _, l in ipairs(links_of(n)) do
      if l.vlan == self.nr and bridges_made[l.vlan] then links[#links + 1] = l end
    end
  end
  nested(fmt("vlan%d: %s", self.nr, spec and "impairing" or "clearing impairments"), function()
    impair_links(links, spec, fmt("vlan%d", self.nr))
  end)
end

local vlan_objects = {}
local function vlan_object(nr)
  local v = vlan_objects[nr]
  if not v then
    v = setmetatable({ nr = nr }, Vlan)
    vlan_objects[nr] = v
  end
  return v
end
getmetatable(vlan_object(1)).__index = function(self, k)
  if k == "nodes" then return vlan_nodes(self.nr) end
  if k == "bridge" then return fmt("mrbr%d", self.nr) end
  return Vlan[k]
end

-- vlans: every VLAN some node is on; vlans[1], and globals vlan1, vlan2, ... as in NixOS.
vlans = setmetatable({}, {
  __index = function(_, k)
    if math.type(k) ~= "integer" then return nil end
    for _, n in ipairs(sorted) do
      for _, v in ipairs(n._vlans) do
        if v == k then return vlan_object(k) end
      end
    end
    return nil
  end,
  __pairs = function()
    local seen, list = {}, {}
    for _, n in ipairs(sorted) do
      for _, v in ipairs(n._vlans) do
        if not seen[v] then seen[v] = true; list[#list + 1] = v end
      end
    end
    table.sort(list)
    local i = 0
    return function()
      i = i + 1
      if list[i] then return list[i], vlan_object(list[i]) end
    end
  end,
  __newindex = function() error("vlans is read-only: nodes join VLANs with vlans = { ... }", 2) end,
})

local add_node = internal.add_node
function internal.add_node(node)
  add_node(node)
  for _, v in ipairs(node._vlans) do _G["vlan" .. v] = vlan_object(v) end
end



---------------------------------------------------------------------------------------------
-- Virtual machines (lua/l_vm.c over runner/qemu.c): the NixOS backdoor shell on a virtio
-- console, QMP, the serial console; a tap per VLAN in the same bridges as the containers.

local VmNode = setmetatable({}, { __index = Node })
VmNode.__name = "Node"
VmNode.__tostring = Node.__tostring
VmNode.__index = function(self, k)
  local m = VmNode[k]
  if m ~= nil then return m end
  return network_field(self, k)
end

local VM_OPTIONS = {
  kernel = "string", initrd = "string", append = "string", drives = "table", qemu = "string",
  memory = "number", cpus = "number", accel = "string", boot_timeout = "number",
  qemu_args = "table", vlans = "table",
}

local function declare_vm(name, opts, start_script)
  local node_vlans
  opts, node_vlans = check_declaration("vm", name, opts, VM_OPTIONS)
  if not opts.kernel and not opts.drives and not start_script then
    usage_error(fmt("vm %q: give kernel = \"/path/vmlinuz\" (and initrd =) or drives = { ... }", name))
  end
  for _, k in ipairs({ "kernel", "initrd" }) do
    if opts[k] then
      local f = io.open(opts[k], "rb")
      if not f then usage_error(fmt("vm %q: %s %s cannot be read", name, k, opts[k])) end
      f:close()
    end
  end
  if opts.accel and opts.accel ~= "tcg" and opts.accel ~= "kvm" and opts.accel ~= "auto" then
    usage_error(fmt("vm %q: accel must be \"tcg\", \"kvm\" or \"auto\" (KVM, else TCG)", name))
  end
  local existing = existing_node("vm", name)
  if existing then return existing end
  local root, state_dir, console_log = node_paths(name)
  os.execute("mkdir -p -m 0700 '" .. state_dir .. "'")
  local h = internal.vm_new(name, state_dir, root .. "/shared-xchg", {
    kernel = opts.kernel, initrd = opts.initrd, append = opts.append, drives = opts.drives,
    qemu = opts.qemu, memory = opts.memory, cpus = opts.cpus, accel = opts.accel,
    boot_timeout = opts.boot_timeout, qemu_args = opts.qemu_args, start_script = start_script,
    console_log = console_log,
  })
  local node = setmetatable({
    name = name, kind = "vm", _h = h, _started = false, _console_seen = 0, _vlans = node_vlans,
    shared_dir = root .. "/shared-xchg", state_dir = state_dir,
  }, VmNode)
  internal.add_node(node)
  return node
end

-- A VM of a --config file: its run-<name>-vm script brings kernel, disk and memory; it gets our
-- backdoor, QMP and serial options appended. (NixOS's VLAN NICs want QEMU_VDE_SOCKET_<n>, which
-- moonrig does not provide: such a VM has no VLAN links here.)
function internal.config_vm(name, start_script)
  return declare_vm(name, { vlans = {} }, start_script)
end

-- vm "name" { kernel = K, initrd = I, vlans = { 1 } }  or  vm("name", { ... })
function vm(name, opts)
  if opts ~= nil then return declare_vm(name, opts) end
  return function(o) return declare_vm(name, o or {}) end
end

function VmNode:start()
  internal.action()
  if self._h:is_up() or self._h:is_booting() then return end
  if not internal.vm_preflight_done then
    local ok, err = internal.net_preflight(#links_of(self) > 0, false)
    if not ok then fail_with("HostError", err) end
    internal.vm_preflight_done = true
  end
  internal.network_prepare(self)
  self._h:start()
  clog.message(self.name, "starting vm")
end

-- The NixOS driver's way, through commands: the guest's systemd is not reachable from outside.
function VmNode:get_unit_info(unit, opts)
  local user = type(opts) == "table" and opts.user or nil
  local status, out = self:systemctl(fmt("--no-pager show %s", shell_quote(unit_suffix(unit))), opts)
  if status ~= 0 then
    fail_with("TestFailure", fmt('retrieving systemctl info for unit "%s"%s failed with exit code %d', unit,
      user and fmt(' under user "%s"', user) or "", status), { node = self.name, unit = unit_suffix(unit) })
  end
  return parse_show(out)
end

function VmNode:get_unit_property(unit, property, opts)
  local user = type(opts) == "table" and opts.user or nil
  local status, out = self:systemctl(fmt("--no-pager show %s --property=%s", shell_quote(unit_suffix(unit)),
    shell_quote(property)), opts)
  if status ~= 0 then
    fail_with("TestFailure", fmt('retrieving systemctl property "%s" for unit "%s"%s failed with exit code %d',
      property, unit, user and fmt(' under user "%s"', user) or "", status),
      { node = self.name, unit = unit_suffix(unit) })
  end
  local v = out:match("^" .. property:gsub("%p", "%%%0") .. "=(.-)\n?$")
  if v == nil then
    fail_with("TestFailure", fmt('systemctl show for unit "%s" produced invalid output: %s', unit, out))
  end
  return v
end

function VmNode:wait_for_unit(unit, opts)
  internal.action()
  local user = type(opts) == "table" and opts.user or nil
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  local name = unit_suffix(unit)
  nested(fmt("waiting for unit %s%s", name, user and (" with user " .. user) or ""), function()
    retry(function()
      local state = self:get_unit_property(name, "ActiveState", opts)
      if state == "failed" then
        fail_with("TestFailure", fmt('unit "%s" reached state "failed"', name), { node = self.name, unit = name })
      elseif state == "inactive" then
        local _, jobs = self:systemctl("list-jobs --full 2>&1", opts)
        if jobs:find("No jobs") and self:get_unit_property(name, "ActiveState", opts) == "inactive" then
          fail_with("TestFailure", fmt('unit "%s" is inactive and there are no pending jobs', name),
            { node = self.name, unit = name })
        end
      end
      return state == "active"
    end, { timeout = timeout })
  end, self.name)
end

-- The backdoor carries stdout alone (stderr goes to the serial console, as NixOS frames it). To
-- answer as a container does, the backdoor's bash sends its stderr to a guest file, and an EXIT
-- trap prints it after stdout behind a marker no output holds (a fresh random word each time),
-- however the command ends (its end, exit, set -e). Under TCG every fork or exec in the guest
-- costs tens of milliseconds, so the common case makes none: printf and [ are builtins, and cat
-- runs only when there was stderr. The backdoor runs one command at a time, so one file per
-- guest will do; the next command's redirection empties it.
function VmNode:_exec(cmd, timeout)
  local marker = fmt("\0moonrig-stderr-%08x%08x:", math.random(0, 0xffffffff), math.random(0, 0xffffffff))
  local wrapped = fmt("e=/tmp/.moonrig-stderr; trap 's=$?; exec 2>&-; printf \"%s\"; if [ -s \"$e\" ]; then "
    .. "cat \"$e\"; fi; exit $s' EXIT; exec 2>\"$e\"; set -euo pipefail; %s", marker:gsub("%z", "\\000"), cmd)
  local status, out, _, timed_out, abandoned, problem = self._h:exec(wrapped, timeout)
  local at, past = out:find(marker, 1, true)
  if not at then return status, out, "", timed_out, abandoned, problem end
  return status, out:sub(1, at - 1), out:sub(past + 1), timed_out, abandoned, problem
end

-- Ports and sockets from inside the guest, with its own bash (as the backdoor needs bash anyway).
function VmNode:_probe(kind, addr, arg)
  local cmd
  if kind == "tcp" then
    local hosts = addr == "localhost" and { "::1", "127.0.0.1" } or { addr }
    local tries = {}
    for i, h in ipairs(hosts) do
      tries[i] = fmt("timeout 2 bash -c %s", shell_quote(fmt("exec 3<>/dev/tcp/%s/%d", h, arg)))
    end
    cmd = concat(tries, " 2>/dev/null || ") .. " 2>/dev/null"
  else
    cmd = fmt("nc -z %s %s", arg and "-uU" or "-U", shell_quote(addr))
  end
  return self:execute(cmd) == 0
end

function VmNode:shutdown()
  internal.action()
  if not self._h:is_up() then return end
  nested("shutting down", function() self._h:shutdown() end, self.name)
end

function VmNode:wait_for_shutdown(opts)
  internal.action()
  local timeout = opt_timeout(opts, nil)
  nested("waiting for the VM to power off", function() self._h:wait_exit(timeout) end, self.name)
end

-- A VM has no /tmp/shared (no 9p or virtiofs share here): files travel through the backdoor
-- shell as a tar archive (modes and timestamps kept): in base64 pieces on the way in, as a
-- command's output on the way out.
local VM_COPY_PIECE = 64 * 1024
local function split_path(path)
  local parent, base = path:match("^(.*)/([^/]+)/*$")
  if not parent then return ".", path end
  return parent == "" and "/" or parent, base
end

function VmNode:copy_from_host(source, target)
  internal.action()
  local parent, base = split_path(source)
  local p = io.popen(fmt("tar -C %s -cf - %s | base64 -w 0", shell_quote(parent), shell_quote(base)))
  local b64 = p:read("a")
  if not p:close() or b64 == "" then
    fail_with("TestFailure", fmt("%s: copy_from_host: cannot copy %s", self.name, source), { node = self.name })
  end
  local tmp = "/tmp/.moonrig-" .. shared_tmp()
  local function run(cmd)
    local status, _, err = self:execute(cmd)
    if status ~= 0 then
      fail_with("TestFailure", fmt("%s: copy_from_host: cannot copy %s to %s: %s", self.name, source, target, err),
        { node = self.name, status = status })
    end
  end
  for i = 1, #b64, VM_COPY_PIECE do
    run(fmt("printf %%s %s >> %s", b64:sub(i, i + VM_COPY_PIECE - 1), tmp))
  end
  -- unpacked beside, then moved: target names the copy, as cp -r's target does
  run(fmt("mkdir -p %s.d && base64 -d < %s | tar -C %s.d -xf - && mkdir -p \"$(dirname %s)\" "
    .. "&& mv %s.d/%s %s; s=$?; rm -rf %s %s.d; exit $s", tmp, tmp, tmp, shell_quote(target), tmp,
    shell_quote(base), shell_quote(target), tmp, tmp))
end

function VmNode:copy_from_machine(source, opts)
  internal.action()
  local target_dir = type(opts) == "table" and opts.target_dir or (type(opts) == "string" and opts) or ""
  local parent, base = split_path(source)
  local status, archive, err = self:execute(fmt("tar -C %s -cf - %s", shell_quote(parent), shell_quote(base)))
  local out = (OUTPUT_DIR or ".") .. (target_dir ~= "" and ("/" .. target_dir) or "")
  local host_tmp = state_root() .. "/copy-" .. shared_tmp() .. ".tar"
  local f = status == 0 and io.open(host_tmp, "wb")
  local ok = f and f:write(archive) and f:close()
  ok = ok and internal.host_exec({ "mkdir", "-p", out }) == 0
    and internal.host_exec({ "tar", "-C", out, "-xf", host_tmp }) == 0
  os.remove(host_tmp)
  if not ok then
    fail_with("TestFailure", fmt("%s: copy_from_machine: cannot copy %s to %s%s", self.name, source, out,
      status ~= 0 and (": " .. err) or ""), { node = self.name })
  end
end

function VmNode:send_monitor_command(command)
  internal.action()
  internal.check_polling_conditions()
  return self._h:hmp(command)
end

-- Characters as NixOS maps them to QEMU key names.
local KEYS = {
  ["-"] = "0x0C", ["_"] = "shift-0x0C", ["="] = "0x0D", ["+"] = "shift-0x0D", ["["] = "0x1A",
  ["{"] = "shift-0x1A", ["]"] = "0x1B", ["}"] = "shift-0x1B", [";"] = "0x27", [":"] = "shift-0x27",
  ["'"] = "0x28", ['"'] = "shift-0x28", ["`"] = "0x29", ["~"] = "shift-0x29", ["\\"] = "0x2B",
  ["|"] = "shift-0x2B", [","] = "0x33", ["<"] = "shift-0x33", ["."] = "0x34", [">"] = "shift-0x34",
  ["/"] = "0x35", ["?"] = "shift-0x35", [" "] = "spc", ["\n"] = "ret", ["!"] = "shift-0x02",
  ["@"] = "shift-0x03", ["#"] = "shift-0x04", ["$"] = "shift-0x05", ["%"] = "shift-0x06",
  ["^"] = "shift-0x07", ["&"] = "shift-0x08", ["*"] = "shift-0x09", ["("] = "shift-0x0A",
  [")"] = "shift-0x0B",
}

function VmNode:send_key(key, opts)
  internal.action()
  local delay = type(opts) == "table" and opts.delay or 0.01
  local log_it = not (type(opts) == "table" and opts.log == false)
  local k = KEYS[key] or (key:match("^%u$") and ("shift-" .. key:lower())) or key
  local function send() self._h:send_key(k) end
  if log_it then nested(fmt("sending key '%s'", key), send, self.name) else send() end
  if delay > 0 then sleep(delay) end
end

function VmNode:send_chars(chars, opts)
  internal.action()
  local delay = type(opts) == "table" and opts.delay or 0.01
  nested(fmt("sending keys %s", internal.repr(chars)), function()
    for ch in chars:gmatch(".") do self:send_key(ch, { delay = delay, log = false }) end
  end, self.name)
end

function VmNode:send_console(chars)
  self._h:send_console(chars)
end

function VmNode:screenshot(filename)
  internal.action()
  if not filename:find("%.") then filename = filename .. ".png" end
  if not filename:find("/") then filename = (OUTPUT_DIR or ".") .. "/" .. filename end
  nested(fmt("making screenshot %s", filename), function() self._h:screendump(filename) end, self.name)
  return filename
end

-- wait_for_qmp_event(filter, {timeout=}): the first event (a table: event, data, timestamp)
-- for which filter returns true; the others are dropped, as in NixOS.
function VmNode:wait_for_qmp_event(filter, opts)
  internal.action()
  local timeout = opt_timeout(opts, 600)
  local deadline = internal.now() + timeout
  while true do
    for _, e in ipairs(self._h:take_events()) do
      if filter(e) then return e end
    end
    local left = deadline - internal.now()
    if left <= 0 then
      fail_with("Timeout", fmt("%s: no QMP event matched within %g seconds", self.name, timeout), { node = self.name })
    end
    self._h:wait_event(left)
  end
end

function VmNode:forward_port()
  fail_with("TestFailure", fmt("%s: forward_port needs QEMU user networking, which moonrig's VMs do not have",
    self.name))
end

---------------------------------------------------------------------------------------------
-- NixOS names kept for ported tests

function Node:copy_from_vm(source, opts)
  clog.warning("copy_from_vm is deprecated: use copy_from_machine")
  return self:copy_from_machine(source, opts)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function internal.base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local q = { (n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63 }
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1)
      .. (b and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return concat(out)
end

-- For nodes without /tmp/shared: the file travels base64-encoded in the command (small files).
function Node:copy_from_host_via_shell(source, target)
  local f = io.open(source, "rb")
  if not f then fail_with("TestFailure", fmt("%s: copy_from_host_via_shell: cannot read %s", self.name, source)) end
  local data = f:read("a")
  f:close()
  local b64 = internal.base64(data)
  self:succeed(fmt("mkdir -p \"$(dirname %s)\" && echo -n %s | base64 -d > %s", shell_quote(target), b64,
    shell_quote(target)))
end

-- X11 inside the node (works where the node runs an X server).
function Node:wait_for_x(opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested("waiting for the X11 server", function()
    retry(function()
      return self:execute("journalctl -b SYSLOG_IDENTIFIER=systemd | grep -q 'Reached target Current graphical'"
        .. " && [ -e /tmp/.X11-unix/X0 ]") == 0
    end, { timeout = timeout })
  end, self.name)
end

function Node:get_window_names()
  local out = self:succeed([[xwininfo -root -tree | sed 's/.*0x[0-9a-f]* \"\([^\"]*\)\".*/\1/; t; d']])
  local names = {}
  for l in out:gmatch("[^\n]+") do names[#names + 1] = l end
  return names
end

-- regexp is a Lua pattern
function Node:wait_for_window(pattern, opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  nested("waiting for a window to appear", function()
    retry(function(last)
      local names = self:get_window_names()
      if last then
        clog.message(self.name, fmt("Last chance to match %s on the window list, which currently contains: %s",
          pattern, concat(names, ", ")))
      end
      for _, n in ipairs(names) do if n:find(pattern) then return true end end
      return false
    end, { timeout = timeout })
  end, self.name)
end

-- machines: the NixOS name of nodes; machines_nspawn and machines_qemu by kind.
machines = nodes
-- The nodes of one kind, in name order, as a live list.
local function nodes_of_kind(kind)
  local function list()
    local t = {}
    for _, n in ipairs(sorted) do if n.kind == kind then t[#t + 1] = n end end
    return t
  end
  return setmetatable({}, {
    __index = function(_, i) return list()[i] end,
    __len = function() return #list() end,
  })
end
machines_nspawn = nodes_of_kind("container")
machines_qemu = nodes_of_kind("vm")

---------------------------------------------------------------------------------------------
-- What containers cannot do raises a clear error naming the kind and the method.

for _, m in ipairs({ "send_key", "send_chars", "send_console", "screenshot", "send_monitor_command",
                     "wait_for_qmp_event", "forward_port", "get_screen_text", "get_screen_text_variants",
                     "wait_for_text", "console_interact", "shell_interact", "switch_root", "get_tty_text",
                     "wait_until_tty_matches", "dump_tty_contents", "create_efi_vars", "write_efi_vars",
                     "read_efi_vars", "dump_efi_vars", "wait_for_monitor_prompt", "connect" }) do
  Node[m] = function(self)
    fail_with("TestFailure", fmt("%s: %s is not available on a %s node", self.name, m, self.kind))
  end
end
