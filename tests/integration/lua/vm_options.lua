-- A VM's memory and cpus as the guest sees them, and send_key from Lua: keys reach the guest's
-- keyboard (a busybox shell on tty1 runs what is typed; its inittab reboots on ctrl-alt-delete).
-- One VM for all of it (TCG).
-- expect-output: v: sending key 'ctrl-alt-delete'
local K = os.getenv("MOONRIG_VM_CACHE") or "/var/cache/moonrig-vm"
local v = vm "v" { kernel = K .. "/vmlinuz", initrd = K .. "/initrd.img",
                   append = "console=tty0 console=ttyS0 panic=-1 quiet",
                   memory = 384, cpus = 2, vlans = {} }

subtest("memory and cpus reach the guest", function()
  local kb = tonumber(v:succeed("sed -n 's/^MemTotal: *\\([0-9]*\\) kB$/\\1/p' /proc/meminfo"))
  log.info(string.format("memory = 384: the guest's MemTotal is %d kB", kb))
  -- the kernel keeps some for itself: between 300 MiB and 384 MiB (the default 512 would exceed it)
  expect.truthy(kb > 300 * 1024 and kb <= 384 * 1024, "MemTotal " .. kb .. " kB for memory = 384")
  expect.eq(v:succeed("grep -c ^processor /proc/cpuinfo"), "2\n", "cpus = 2")
end)

subtest("send_key types into the guest's console", function()
  -- "X" is sent as shift-x: the file is kX, not kx
  v:send_chars("touch /tmp/k")
  v:send_key("X")
  v:send_key("ret")
  v:wait_for_file("/tmp/kX", { timeout = 60 })
  v:fail("test -e /tmp/kx")
end)

subtest("send_key ctrl-alt-delete: the guest reboots", function()
  v:succeed("echo before > /tmp/reboot-marker")
  v:send_key("ctrl-alt-delete")
  local e = v:wait_for_qmp_event(function(ev) return ev.event == "RESET" end, { timeout = 120 })
  expect.eq(e.event, "RESET")
  v:wait_for_console_text("reboot: Restarting system", { timeout = 60 })
  -- a fresh boot of the initramfs: its /tmp is new
  v:fail("test -e /tmp/reboot-marker")
end)
