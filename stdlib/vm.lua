-- vm.lua: VM nodes (lua/l_vm.c over runner/qemu.c): the NixOS backdoor shell on a virtio
-- console, QMP, the serial console; a tap per VLAN in the same bridges as the containers.
-- Units, probes and file copies go through the backdoor shell, as in the NixOS driver.
local internal = ...

local fmt, concat = string.format, table.concat
local fail_with, nested = internal.fail_with, internal.nested
local clog, opt_timeout = internal.log, internal.opt_timeout
local C = internal.vm
local modules = internal.modules
local node = modules.node
local usage_error, shell_quote, unit_suffix = node.usage_error, node.shell_quote, node.unit_suffix
local DEFAULT_TIMEOUT = node.DEFAULT_TIMEOUT

local M = {}
modules.vm = M

local VmNode = node.class(node.Node)
M.VmNode = VmNode
node.kinds.vm = { noun = "VM", plural = "VMs" }

local VM_OPTIONS = {
  kernel = "string", initrd = "string", append = "string", drives = "table", qemu = "string",
  memory = "number", cpus = "number", accel = "string", boot_timeout = "number",
  qemu_args = "table", vlans = "table",
}

local function declare_vm(name, opts, start_script)
  local node_vlans
  opts, node_vlans = node.check_declaration("vm", name, opts, VM_OPTIONS)
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
  local existing = node.existing_node("vm", name)
  if existing then return existing end
  local root, state_dir, console_log = node.node_paths(name)
  os.execute("mkdir -p -m 0700 '" .. state_dir .. "'")
  local h = C.new(name, state_dir, root .. "/shared-xchg", {
    kernel = opts.kernel, initrd = opts.initrd, append = opts.append, drives = opts.drives,
    qemu = opts.qemu, memory = opts.memory, cpus = opts.cpus, accel = opts.accel,
    boot_timeout = opts.boot_timeout, qemu_args = opts.qemu_args, start_script = start_script,
    console_log = console_log,
  })
  local n = setmetatable({
    name = name, kind = "vm", _h = h, _started = false, _console_seen = 0, _vlans = node_vlans,
    shared_dir = root .. "/shared-xchg", state_dir = state_dir,
  }, VmNode)
  node.add(n)
  return n
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

-- Once a run, before the first VM starts: a VM on a VLAN needs /dev/net/tun.
local preflight_done = false
function VmNode:_preflight()
  if preflight_done then return end
  local ok, err = modules.net.preflight(#modules.net.links_of(self) > 0, false)
  if not ok then fail_with("HostError", err) end
  preflight_done = true
end

-- The backdoor protocol's own forms: nothing read back, or no status asked for.
function VmNode:_execute_unchecked(cmd, timeout, check_return, check_output)
  local status, out = self._h:exec(cmd, timeout, check_return, check_output)
  return status, out, ""
end

-- The NixOS driver's way, through commands: the guest's systemd is not reachable from outside.
function VmNode:get_unit_info(unit, opts)
  local user = type(opts) == "table" and opts.user or nil
  local status, out = self:systemctl(fmt("--no-pager show %s", shell_quote(unit_suffix(unit))), opts)
  if status ~= 0 then
    fail_with("TestFailure", fmt('retrieving systemctl info for unit "%s"%s failed with exit code %d', unit,
      user and fmt(' under user "%s"', user) or "", status), { node = self.name, unit = unit_suffix(unit) })
  end
  return node.parse_show(out)
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
        fail_with("TestFailure", fmt('unit "%s" reached state "failed"', name),
          { node = self.name, unit = name, state = state })
      elseif state == "inactive" then
        local _, jobs = self:systemctl("list-jobs --full 2>&1", opts)
        if jobs:find("No jobs") and self:get_unit_property(name, "ActiveState", opts) == "inactive" then
          fail_with("TestFailure", fmt('unit "%s" is inactive and there are no pending jobs', name),
            { node = self.name, unit = name, state = "inactive" })
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
  local tmp = "/tmp/.moonrig-" .. node.shared_tmp()
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
  local host_tmp = node.state_root() .. "/copy-" .. node.shared_tmp() .. ".tar"
  local f = status == 0 and io.open(host_tmp, "wb")
  local ok = f and f:write(archive) and f:close()
  ok = ok and node.host_exec({ "mkdir", "-p", out }) == 0
    and node.host_exec({ "tar", "-C", out, "-xf", host_tmp }) == 0
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

