-- container.lua: container nodes (lua/l_node.c over runner/container.c): declaring them (image,
-- files, env, devices, gpu), the host's container checks, units through the container's own
-- systemd over sd-bus, probes from inside its namespaces, files through /tmp/shared.
local internal = ...

local fmt, concat = string.format, table.concat
local fail_with, nested = internal.fail_with, internal.nested
local opt_timeout = internal.opt_timeout
local C = internal.container
local node = internal.modules.node
local usage_error, shell_quote, unit_suffix = node.usage_error, node.shell_quote, node.unit_suffix

local M = {}
internal.modules.container = M

local Container = node.class(node.Node)
M.Container = Container
node.kinds.container = { noun = "container", plural = "containers" }

---------------------------------------------------------------------------------------------
-- Declaring

local CONTAINER_OPTIONS = {
  image = "string", services = "table", files = "table", bind = "table", bind_ro = "table",
  devices = "table", gpu = "boolean", env = "table", hostname = "string", vlans = "table",
  boot_timeout = "number", persistent = "boolean", system = "string", nspawn_args = "table",
}

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

local function declare_container(name, opts, start_script)
  local node_vlans
  opts, node_vlans = node.check_declaration("container", name, opts, CONTAINER_OPTIONS)
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

  local existing = node.existing_node("container", name)
  if existing then return existing end

  local devices = opts.devices and { table.unpack(opts.devices) } or {}
  if opts.gpu then
    for _, d in ipairs(gpu_devices(name)) do devices[#devices + 1] = d end
  end
  local root, state_dir, console_log = node.node_paths(name)
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
  local h = C.new(name, state_dir, root .. "/shared-xchg", c_opts)
  local n = setmetatable({
    name = name, kind = "container", _h = h, _started = false, _console_seen = 0,
    -- as the NixOS driver's machine attributes: the host side of /tmp/shared, the node's state
    shared_dir = root .. "/shared-xchg", state_dir = state_dir,
    _vlans = node_vlans, _script = start_script, _hostname = opts.hostname,
  }, Container)
  node.add(n)
  return n
end

-- A container of a --config file: its run-<name>-nspawn script boots it and wires its network
-- (the NixOS launcher makes its own namespace, bridges and veths).
function internal.config_container(name, start_script)
  return declare_container(name, { vlans = {} }, start_script)
end

-- container "name" { ... }  or  container("name", { ... })
function container(name, opts)
  if opts ~= nil then return declare_container(name, opts) end
  return function(o) return declare_container(name, o or {}) end
end

---------------------------------------------------------------------------------------------
-- Lifecycle and commands

-- Once a run, before the first container starts: the host can run as many as are declared.
local preflight_done = false
function Container:_preflight()
  if preflight_done then return end
  local ok, err = C.preflight(#node.sorted)
  if not ok then fail_with("HostError", err) end
  preflight_done = true
end

-- check_output = false: in the background, nothing read back; check_return = false: the
-- command's output, whatever its status or end.
function Container:_execute_unchecked(cmd, timeout, check_return, check_output)
  if not check_output then
    self._h:exec("( " .. cmd .. "\n) </dev/null >/dev/null 2>&1 &", timeout)
    return -2, "", ""
  end
  local _, out, err = self:_exec(cmd, timeout)
  return -1, out, err
end

-- connect() from inside the container's namespaces: no tool needed in the node
function Container:_probe(...) return self._h:probe(...) end

---------------------------------------------------------------------------------------------
-- systemd, through the container's manager over sd-bus

function Container:wait_for_unit(unit, opts)
  internal.action()
  opts = opts or {}
  local user = type(opts) == "table" and opts.user or nil
  local timeout = opt_timeout(opts, node.DEFAULT_TIMEOUT)
  local name = unit_suffix(unit)
  nested(fmt("waiting for unit %s%s", name, user and (" with user " .. user) or ""), function()
    node.ensure_ready(self, timeout)
    local ok, e = pcall(self._h.wait_unit, self._h, name, user, timeout)
    if not ok then
      if internal.is_failure(e) then
        e.node = self.name
        e.unit = name
        -- The unit's state is a field of the failure (lua/l_node.c's on_unit_active).
        if e.state == "failed" then
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

function Container:get_unit_info(unit, opts)
  internal.action()
  local user = type(opts) == "table" and opts.user or nil
  node.ensure_ready(self)
  local ok, text = pcall(self._h.unit_show, self._h, unit_suffix(unit), user)
  if not ok then
    fail_with("TestFailure", fmt('retrieving systemctl info for unit "%s"%s failed: %s', unit,
      user and fmt(' under user "%s"', user) or "", internal.error_message(text)), { node = self.name })
  end
  return node.parse_show(text)
end

function Container:get_unit_property(unit, property, opts)
  internal.action()
  local user = type(opts) == "table" and opts.user or nil
  node.ensure_ready(self)
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

---------------------------------------------------------------------------------------------
-- Files, through the host side of the node's /tmp/shared

function Container:copy_from_host(source, target)
  internal.action()
  local tmp = node.shared_tmp()
  local host_dir = node.state_root() .. "/shared-xchg/" .. tmp
  local base = source:match("([^/]+)/*$") or source
  if node.host_exec({ "mkdir", "-p", host_dir }) ~= 0
    or node.host_exec({ "cp", "-r", "--preserve=mode,timestamps", source, host_dir .. "/" .. base }) ~= 0 then
    fail_with("TestFailure", fmt("%s: copy_from_host: cannot copy %s", self.name, source))
  end
  local dir = target:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then self:succeed("mkdir -p " .. shell_quote(dir)) end
  self:succeed(fmt("cp -r --preserve=mode,timestamps %s %s", shell_quote("/tmp/shared/" .. tmp .. "/" .. base),
    shell_quote(target)))
  node.host_exec({ "rm", "-rf", host_dir })
end

function Container:copy_from_machine(source, opts)
  internal.action()
  local target_dir = type(opts) == "table" and opts.target_dir or (type(opts) == "string" and opts) or ""
  local tmp = node.shared_tmp()
  local base = source:match("([^/]+)/*$") or source
  self:succeed(fmt("mkdir -p %s && cp -r --preserve=mode,timestamps %s %s",
    shell_quote("/tmp/shared/" .. tmp), shell_quote(source), shell_quote("/tmp/shared/" .. tmp .. "/" .. base)))
  local out = (OUTPUT_DIR or ".") .. (target_dir ~= "" and ("/" .. target_dir) or "")
  local host_src = node.state_root() .. "/shared-xchg/" .. tmp
  if node.host_exec({ "mkdir", "-p", out }) ~= 0
    or node.host_exec({ "cp", "-r", "--preserve=mode,timestamps", host_src .. "/" .. base, out .. "/" }) ~= 0 then
    fail_with("TestFailure", fmt("%s: copy_from_machine: cannot copy %s to %s", self.name, source, out))
  end
  node.host_exec({ "rm", "-rf", host_src })
end
