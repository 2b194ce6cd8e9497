-- Lifecycle: reboot keeps state, shutdown stops, the host's enabled services stay off unless
-- asked for, services= starts them, files copy both ways.
local web = container "web" { services = { "nginx" } }
local lean = container "lean" {}
start_all()
web:wait_for_unit("nginx")
web:wait_for_open_port(80)
expect.contains(web:succeed("curl -s http://localhost/"), "nginx")
lean:wait_for_unit("multi-user.target")
lean:fail("systemctl is-active nginx")
lean:wait_for_closed_port(80)

lean:succeed("echo keep > /root/state")
lean:reboot()
expect.eq(lean:succeed("cat /root/state"), "keep\n")

lean:copy_from_host(SCRIPT_PATH, "/root/copied.lua")
lean:succeed("grep -q 'copy_from_host' /root/copied.lua")
lean:succeed("mkdir -p /root/out && echo data > /root/out/f")
lean:copy_from_machine("/root/out", { target_dir = "copied" })
local f = assert(io.open(OUTPUT_DIR .. "/copied/out/f"))
expect.eq(f:read("a"), "data\n")
f:close()

lean:shutdown()
expect.eq(lean:is_up(), false)
web:crash()
expect.eq(web:is_up(), false)

-- with -o, each node's console is kept in <out>/<name>.console.log
local clog = assert(io.open(OUTPUT_DIR .. "/lean.console.log")):read("a")
expect.contains(clog, "Reached target")
expect.contains(web:get_console_log(), "nginx")
