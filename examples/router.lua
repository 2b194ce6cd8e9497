-- router.lua: two VLANs joined by a router node. Each side reaches the other only through it.
local left = container "left" { vlans = { 1 } }
local right = container "right" { vlans = { 2 } }
local router = container "router" { vlans = { 1, 2 } }   -- eth1 on VLAN 1, eth2 on VLAN 2

start_all()
router:wait_for_unit("network-online.target")
router:succeed("sysctl -w net.ipv4.ip_forward=1")
left:succeed("ip route add 192.168.2.0/24 via " .. router.links[1].ip)
right:succeed("ip route add 192.168.1.0/24 via " .. router.links[2].ip)

subtest("left reaches right through the router", function()
  left:succeed("ping -c1 -W5 " .. right.ip)
end)

subtest("cutting the router's VLAN 2 link cuts the route", function()
  router:block({ vlan = 2 })
  left:fail("ping -c1 -W1 " .. right.ip)
  router:unblock({ vlan = 2 })
  left:succeed("ping -c1 -W5 " .. right.ip)
end)
