-- web.lua: two containers from the host image: a web server and a client.
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
