-- Files: files = { [path] = { source = ..., mode = ... } } in place before boot, a unit given
-- as a file and enabled with services, copy_from_host and copy_from_machine of a tree keeping
-- modes, timestamps and symlinks, and /tmp/shared shared by two nodes.
local host = io.popen("mktemp -d /tmp/moonrig-files.XXXXXX"):read("l")
local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("host command failed: " .. cmd, 2) end
end
local function host_read(cmd)
  local p = io.popen(cmd)
  local s = p:read("a")
  p:close()
  return s
end

local ok, err = pcall(function()
  -- sources on the host: a binary file and an executable script
  local f = assert(io.open(host .. "/secret", "wb"))
  f:write("key\0\255\n")
  f:close()
  f = assert(io.open(host .. "/tool.sh", "wb"))
  f:write("#!/bin/sh\necho tool ran\n")
  f:close()
  sh("chmod 0644 " .. host .. "/secret && chmod 0755 " .. host .. "/tool.sh")

  -- a tree: modes, a symlink, an empty directory, a name with a space, an old timestamp
  local t = host .. "/tree"
  sh("mkdir -p " .. t .. "/bin " .. t .. "/private " .. t .. "/empty"
    .. " && printf 'run\\n' > " .. t .. "/bin/run && chmod 0755 " .. t .. "/bin/run"
    .. " && printf 'mine\\n' > " .. t .. "/private/key && chmod 0600 " .. t .. "/private/key"
    .. " && chmod 0750 " .. t .. "/private"
    .. " && printf 'spaced\\n' > '" .. t .. "/with space' && chmod 0640 '" .. t .. "/with space'"
    .. " && ln -s private/key " .. t .. "/link"
    .. " && touch -h -d '2001-02-03 04:05:06 UTC' " .. t .. "/bin/run")

  local a = container "a" {
    services = { "greeter" },
    files = {
      ["/root/secret"] = { source = host .. "/secret", mode = "0600" },
      ["/opt/tool.sh"] = { source = host .. "/tool.sh" },                  -- keeps 0755
      ["/etc/greeting"] = { content = "hello\n", mode = "0640" },
      ["/etc/systemd/system/greeter.service"] = [[
[Unit]
Description=greets from a unit given as a file
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'cp /etc/greeting /var/lib/greeted'
[Install]
WantedBy=multi-user.target
]],
    },
  }
  local b = container "b" {}
  start_all()
  a:wait_for_unit("greeter")
  b:wait_for_unit("multi-user.target")

  subtest("files from sources, with modes", function()
    expect.eq(a:succeed("stat -c '%a %U' /root/secret && od -An -c /root/secret"),
      "600 root\n   k   e   y  \\0 377  \\n\n")
    expect.eq(a:succeed("stat -c %a /opt/tool.sh && /opt/tool.sh"), "755\ntool ran\n")
    expect.eq(a:succeed("stat -c %a /etc/greeting"), "640\n")
  end)

  subtest("a unit given as a file, enabled by services", function()
    expect.eq(a:get_unit_property("greeter", "UnitFileState"), "enabled")
    expect.eq(a:get_unit_property("greeter", "FragmentPath"), "/etc/systemd/system/greeter.service")
    expect.eq(a:succeed("cat /var/lib/greeted"), "hello\n")
    -- the other node did not get it
    expect.eq(b:get_unit_property("greeter", "LoadState"), "not-found")
  end)

  -- path, type, mode and symlink target of everything in a tree
  local listing = "find . -printf '%p %y %m %l\\n' | LC_ALL=C sort"
  local want = table.concat({
    ". d 755 ",
    "./bin d 755 ",
    "./bin/run f 755 ",
    "./empty d 755 ",
    "./link l 777 private/key",
    "./private d 750 ",
    "./private/key f 600 ",
    "./with space f 640 ",
  }, "\n") .. "\n"

  subtest("copy_from_host keeps modes, symlinks and timestamps", function()
    expect.eq(host_read("cd " .. t .. " && " .. listing), want)
    a:copy_from_host(t, "/srv/copied")
    expect.eq(a:succeed("cd /srv/copied && " .. listing), want)
    expect.eq(a:succeed("stat -c %Y /srv/copied/bin/run"), "981173106\n")
    expect.eq(a:succeed("cat /srv/copied/link"), "mine\n")
    -- nothing is left in the shared directory
    expect.eq(a:succeed("ls -A /tmp/shared"), "")
  end)

  subtest("copy_from_machine keeps modes too", function()
    a:succeed("echo changed > /srv/copied/private/key && chmod 0700 /srv/copied/bin")
    a:copy_from_machine("/srv/copied", { target_dir = "from-a" })
    local back = OUTPUT_DIR .. "/from-a/copied"
    expect.eq(host_read("cd '" .. back .. "' && " .. listing),
      (want:gsub("%./bin d 755", "./bin d 700")))
    expect.eq(host_read("cat '" .. back .. "/private/key'"), "changed\n")
    expect.eq(host_read("stat -c %Y '" .. back .. "/bin/run'"), "981173106\n")
    sh("rm -rf '" .. OUTPUT_DIR .. "/from-a'")
    expect.eq(a:succeed("ls -A /tmp/shared"), "")
  end)

  subtest("/tmp/shared is one directory for every node", function()
    a:succeed("echo from-a > /tmp/shared/note-a")
    expect.eq(b:succeed("cat /tmp/shared/note-a"), "from-a\n")
    b:succeed("echo from-b > /tmp/shared/note-b && chmod 0604 /tmp/shared/note-b")
    expect.eq(a:succeed("stat -c %a /tmp/shared/note-b && cat /tmp/shared/note-b"), "604\nfrom-b\n")
    -- a copy into the second node goes through the same directory
    b:copy_from_host(host .. "/tool.sh", "/root/bin/tool.sh")
    expect.eq(b:succeed("stat -c %a /root/bin/tool.sh && /root/bin/tool.sh"), "755\ntool ran\n")
    a:succeed("rm /tmp/shared/note-a /tmp/shared/note-b")
    expect.eq(b:succeed("ls -A /tmp/shared"), "")
  end)
end)
os.execute("rm -rf '" .. host .. "'")
if not ok then error(err, 0) end
