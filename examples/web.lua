-- web.lua: two containers from the host image on VLAN 1: a web server and a client that
-- reaches it by name, and loses it when the server's link is cut.
local server = container "server" { services = { "nginx" },
  files = { ["/var/www/html/index.html"] = "hello from moonrig\n" } }
local client = container "client" {}

start_all()
server:wait_for_unit("nginx")
server:wait_for_open_port(80)

subtest("the server answers itself", function()
  expect.eq(server:succeed("curl -sf http://localhost/"), "hello from moonrig\n")
end)

subtest("the client is a separate machine", function()
  expect.eq(client:succeed("hostname"), "client\n")
  client:fail("systemctl is-active nginx")
end)

subtest("the client reaches the server by name, IPv4 and IPv6", function()
  client:wait_for_open_port(80, { addr = "server" })
  expect.eq(client:succeed("curl -sf http://server/"), "hello from moonrig\n")
  expect.eq(client:succeed("curl -sf http://" .. server.ip .. "/"), "hello from moonrig\n")
  expect.eq(client:succeed("curl -sf 'http://[" .. server.ipv6 .. "]/'"), "hello from moonrig\n")
end)

subtest("a blocked server is unreachable until unblocked", function()
  server:block()
  client:fail("curl -sf --max-time 1 http://server/")
  server:unblock()
  client:succeed("curl -sf --max-time 5 http://server/")
end)
