-- NixOS compatibility: execute's check_output/check_return, copy_from_host_via_shell,
-- machines/machines_nspawn/machines_qemu, and a clear error for a VM-only method.
local a = container "a" { vlans = {} }
a:wait_for_unit("multi-user.target")
expect.eq(a:execute("sleep 1; touch /root/bg", { check_output = false }), -2)

a:wait_for_file("/root/bg")
local f = io.open(OUTPUT_DIR .. "/b64src", "wb"); f:write("hello\0world\255\n" .. string.rep("xyz", 100)); f:close()
a:copy_from_host_via_shell(OUTPUT_DIR .. "/b64src", "/root/x/b64")
expect.eq(a:succeed("md5sum < /root/x/b64"), io.popen("md5sum < " .. OUTPUT_DIR .. "/b64src"):read("a"))
expect.eq(#machines, 1)
expect.eq(machines_nspawn[1], a)
expect.eq(#machines_qemu, 0)
local st = a:execute("systemctl poweroff", { check_return = false })
expect.eq(st, -1)
a:wait_for_shutdown()
expect.raises(function() a:get_tty_text(1) end, "not available on a container")
