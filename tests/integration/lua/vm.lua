-- A VM (QEMU under TCG; the kernel and busybox initramfs of tests/vm/mkinitrd.sh, which
-- `make integration` builds first) beside a container on VLAN 1: the backdoor shell, the
-- keyboard, the monitor, screenshots, QMP events, reboot, shutdown and crash.
local K = os.getenv("MOONRIG_VM_CACHE") or "/var/cache/moonrig-vm"
local v = vm "v" { kernel = K .. "/vmlinuz", initrd = K .. "/initrd.img",
                   append = "console=tty0 console=ttyS0 panic=-1 quiet" }
local c = container "c" {}
expect.eq(v.kind, "vm")
expect.eq(v.ip, "192.168.1.2")
start_all()

subtest("commands over the backdoor shell", function()
  expect.eq(v:succeed("echo hello"), "hello\n")
  expect.eq(v:execute("exit 3"), 3)
  expect.eq(v:succeed("printf 'a\\0b'"), "a\0b")
  expect.raises(function() v:succeed("false") end, "command `false` failed %(exit code 1%)")
end)

subtest("a VM and a container share VLAN 1", function()
  expect.eq(v:succeed("cat /sys/class/net/eth0/address"), v.links[1].mac .. "\n")
  v:succeed("ip link set eth0 up && ip addr add " .. v.ip .. "/24 dev eth0")
  c:succeed("ping -c1 -W5 " .. v.ip)
  v:block()
  c:fail("ping -c1 -W1 " .. v.ip)
  v:unblock()
  c:succeed("ping -c1 -W5 " .. v.ip)
end)

subtest("keyboard, monitor and screen", function()
  v:send_chars("echo typed > /tmp/typed\n")
  v:wait_for_file("/tmp/typed", { timeout = 30 })
  expect.contains(v:send_monitor_command("info status"), "running")
  local shot = v:screenshot("vm-screen")
  local f = assert(io.open(shot, "rb"))
  expect.eq(f:read(8), "\137PNG\r\n\26\n")
  f:close()
end)

subtest("console, reboot, QMP events, shutdown, crash", function()
  v:succeed("echo console-marker > /dev/ttyS0")
  v:wait_for_console_text("console%-marker", { timeout = 30 })
  v:succeed("echo before > /tmp/reboot-marker")
  v:reboot()
  v:fail("test -e /tmp/reboot-marker")        -- an initramfs forgets everything
  local e = v:wait_for_qmp_event(function(ev) return ev.event == "RESET" end, { timeout = 30 })
  expect.eq(e.event, "RESET")
  v:shutdown()
  expect.eq(v:is_up(), false)
  v:start()
  expect.eq(v:succeed("echo again"), "again\n")
  v:crash()
  expect.eq(v:is_up(), false)
end)

expect.raises(function() v:get_screen_text() end, "not available on a vm node")
