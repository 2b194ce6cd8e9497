-- Lifecycle: reboot keeps state, shutdown stops, the host's enabled services stay off unless
-- asked for, services= starts them, files copy both ways.
-- the page is the test's own: the host's default one depends on what else it has installed
local web = container "web" {
  services = { "nginx" },
  files = { ["/var/www/html/index.html"] = "served by moonrig's web node\n" },
}
local lean = container "lean" {}
start_all()
web:wait_for_unit("nginx")
web:wait_for_open_port(80)
expect.eq(web:succeed("curl -s http://localhost/"), "served by moonrig's web node\n")
lean:wait_for_unit("multi-user.target")
lean:fail("systemctl is-active nginx")
lean:wait_for_closed_port(80)

-- wait_for_closed_port waits: a listener that closes on its third connection. The first is
-- wait_for_open_port's, so the port was still open for at least two closed-port probes.
lean:succeed("socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:'echo c >> /tmp/conns; "
  .. "[ $(wc -l < /tmp/conns) -lt 3 ] || kill $SOCAT_PPID' >/dev/null 2>&1 &")
lean:wait_for_open_port(8080)
lean:wait_for_closed_port(8080, { timeout = 60 })
expect.truthy(tonumber(lean:succeed("cat /tmp/conns 2>/dev/null | wc -l")) >= 3, "the listener saw three connections")

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
