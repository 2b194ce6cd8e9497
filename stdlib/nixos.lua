-- nixos.lua: NixOS driver names kept for ported tests: machines, machine (one --config machine),
-- copy_from_vm, the X11 waits, and a clear error for the VM methods a kind lacks.
local internal = ...

local fmt, concat = string.format, table.concat
local fail_with, nested = internal.fail_with, internal.nested
local clog, opt_timeout = internal.log, internal.opt_timeout
local node = internal.modules.node
local Node, sorted, shell_quote = node.Node, node.sorted, node.shell_quote
local DEFAULT_TIMEOUT = node.DEFAULT_TIMEOUT

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

function Node:copy_from_vm(source, opts)
  clog.warning("copy_from_vm is deprecated: use copy_from_machine")
  return self:copy_from_machine(source, opts)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
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
  local b64 = base64(data)
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
