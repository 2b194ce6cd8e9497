-- Host devices handed in: devices = { "/dev/fuse" } puts the host's device node in the
-- container, where it can be opened; a node that did not ask for it does not see it.
local f = io.open("/dev/fuse", "rb")
if not f then
  error("this test needs /dev/fuse on the host (modprobe fuse)")
end
f:close()

local with = container "with" { devices = { "/dev/fuse" } }
local without = container "without" {}
local missing = container "missing" { devices = { "/dev/moonrig-no-such-device" } }
with:start()
without:start()
with:wait_for_unit("multi-user.target")
without:wait_for_unit("multi-user.target")

-- the same character device as on the host (misc 10:229), usable from inside
local host = io.popen("stat -c '%F %t:%T' /dev/fuse"):read("a")
expect.eq(host, "character special file a:e5\n")
expect.eq(with:succeed("stat -c '%F %t:%T' /dev/fuse"), host)
expect.eq(with:succeed("exec 3<>/dev/fuse && echo opened"), "opened\n")

without:fail("test -e /dev/fuse")

-- a device the host lacks: the boot fails at once, naming the node and the device
local e = expect.raises(function() missing:wait_for_unit("multi-user.target", { timeout = 60 }) end,
  "/dev/moonrig-no-such-device")
expect.eq(e.kind, "MachineError")
expect.contains(e.message, "node missing")
