-- The host's side of /tmp/shared: node.shared_dir (as the NixOS driver's machine.shared_dir) is
-- one host directory, the same for every node, that appears as /tmp/shared inside each of them.
local a = container "a" {}
local b = container "b" {}
start_all()
a:wait_for_unit("multi-user.target")
b:wait_for_unit("multi-user.target")

expect.eq(type(a.shared_dir), "string", "node.shared_dir names the host directory behind /tmp/shared")
expect.eq(b.shared_dir, a.shared_dir)

-- host -> nodes
local f = assert(io.open(a.shared_dir .. "/from-host", "wb"))
f:write("host data\0\n")
f:close()
expect.eq(a:succeed("cat /tmp/shared/from-host"), "host data\0\n")
expect.eq(b:succeed("cat /tmp/shared/from-host"), "host data\0\n")

-- node -> host and the other node
b:succeed("mkdir /tmp/shared/dir && echo from-b > /tmp/shared/dir/note && chmod 0640 /tmp/shared/dir/note")
f = assert(io.open(a.shared_dir .. "/dir/note", "rb"))
expect.eq(f:read("a"), "from-b\n")
f:close()
local p = io.popen("stat -c %a '" .. a.shared_dir .. "/dir/note'")
expect.eq(p:read("a"), "640\n")
p:close()
expect.eq(a:succeed("cat /tmp/shared/dir/note"), "from-b\n")

-- removals are seen everywhere
os.remove(a.shared_dir .. "/from-host")
a:succeed("rm -r /tmp/shared/dir")
expect.eq(b:succeed("ls -A /tmp/shared"), "")
p = io.popen("ls -A '" .. a.shared_dir .. "'")
expect.eq(p:read("a"), "")
p:close()
