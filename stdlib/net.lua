-- net.lua: the networks: VLAN n is a bridge in the run's own network namespace; each node gets a
-- link per VLAN (eth1, eth2, ... in the order of its vlans), 192.168.<vlan>.<number>/24 and
-- 2001:db8:<vlan>::<number>/64, numbers in name order as NixOS numbers them. The addressing
-- plan and the host side are lua/l_net.c's; here: when they are made, block/unblock, impair,
-- and the vlans global.
local internal = ...

local fmt, concat = string.format, table.concat
local fail_with, nested = internal.fail_with, internal.nested
local C = internal.net
local base = internal.modules.node
local usage_error, sorted, Node = base.usage_error, base.sorted, base.Node

local M = {}
internal.modules.net = M

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

local plan            -- the addressing plan (C.plan), frozen once a node uses it
local plan_frozen = false
local bridges_made = {}
local net_checked = false

local function compute_plan()
  local specs = {}
  for i, n in ipairs(sorted) do specs[i] = { name = n.name, vlans = n._vlans } end
  local p, err = C.plan(specs)
  if not p then usage_error(err) end
  return p
end

local function current_plan()
  if not plan then plan = compute_plan() end
  return plan
end

-- A declaration after addresses were handed out may not renumber the nodes that have them.
function M.node_added(n)
  if not plan_frozen then
    plan = nil
    return
  end
  local new = compute_plan()
  for name, old in pairs(plan.nodes) do
    if new.nodes[name].number ~= old.number then
      usage_error(fmt("node %q sorts before nodes whose addresses are in use already (%q would become "
        .. "number %d): declare every node before starting one or reading its address", n.name, name,
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
M.links_of = links_of

-- The fields a node has from the plan: ip, ipv6, links, number, vlans.
function M.field(self, k)
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
function M.prepare(node)
  local links = links_of(node)
  if not net_checked and #current_plan().vlans > 0 then
    local ok, err = C.preflight(false, false)
    if not ok then fail_with("HostError", err) end
    net_checked = true
  end
  for _, l in ipairs(links) do
    if not bridges_made[l.vlan] then
      local ok, err = C.bridge(l.vlan, l.bridge)
      if not ok then fail_with("HostError", fmt("VLAN %d: %s", l.vlan, err)) end
      bridges_made[l.vlan] = true
    end
  end
  -- a start script's node (a NixOS container) makes its own network and /etc/hosts
  if node._links_set or node._script then return end
  M.prepare_links(node)
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
function M.prepare_links(node)
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
  M.prepare_links(node)
  for _, l in ipairs(links_on(node, opts, what)) do
    node._h:set_link_blocked(l.host_ifname, not up)
    if bridges_made[l.vlan] then
      local ok, err = C.link_up(l.host_ifname, up)
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
    local ok, err, why = C.netem(l.host_ifname, netem)
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

-- vlan1, vlan2, ...: the VLANs of a node just declared, as globals.
function M.set_vlan_globals(n)
  for _, v in ipairs(n._vlans) do _G["vlan" .. v] = vlan_object(v) end
end

-- preflight(need_tun, need_netem) -> true | nil, message: what the host lacks for them.
M.preflight = C.preflight
