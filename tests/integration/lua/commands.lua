-- Commands in a host-image container: status, stdout and stderr apart, pipefail, binary and
-- large output, timeouts, parallel commands, files in place before boot.
local a = container "a" {
  files = {
    ["/etc/moonrig-test/motd"] = "hello\n",
    ["/root/run.sh"] = { content = "#!/bin/sh\necho ran\n", mode = "0755" },
  },
}
a:start()
a:wait_for_unit("multi-user.target")
a:wait_for_unit("network-online.target")

local status, out, err = a:execute("echo hi; echo oops >&2; exit 3")
expect.eq({ status, out, err }, { 3, "hi\n", "oops\n" })
a:fail("false | true")
expect.eq(a:succeed("hostname"), "a\n")
expect.eq(a:succeed("cat /etc/moonrig-test/motd"), "hello\n")
expect.eq(a:succeed("/root/run.sh"), "ran\n")
expect.eq(a:succeed("echo one", "echo two"), "one\ntwo\n")
expect.eq(a:succeed("cat <<'X'\nmulti\nline\nX"), "multi\nline\n")

local e = expect.raises(function() a:succeed("exit 7") end, "failed %(exit code 7%)")
expect.eq({ e.kind, e.node, e.status }, { "TestFailure", "a", 7 })
expect.raises(function() a:fail("true") end, "unexpectedly succeeded")

-- a timeout kills the whole tree
e = expect.raises(function() a:succeed("sleep 100 & sleep 100", { timeout = 1 }) end, "timed out")
expect.eq(e.kind, "Timeout")
-- killed processes may take a moment to be reaped by the node's init
a:wait_until_fails("pgrep -x sleep", { timeout = 5 })

-- binary-safe and large output
local _, bin = a:execute("printf 'a\\0b\\377'")
expect.eq(bin, "a\0b\255")
expect.eq(#a:succeed("head -c 50000000 /dev/zero | tr '\\0' x"), 50000000)

-- several commands at once on one node
local x, y = parallel(function() return a:succeed("sleep 0.5; echo x") end,
                      function() return a:succeed("sleep 0.5; echo y") end)
expect.eq({ x, y }, { "x\n", "y\n" })

-- wait_until_succeeds / fails retry until the status turns: each command counts its runs and
-- turns on the third, so one that returned after a single try would raise
local count = "n=$(( $(cat /tmp/%s 2>/dev/null || echo 0) + 1 )); echo $n > /tmp/%s; "
a:wait_until_succeeds(count:format("s", "s") .. "[ $n -ge 3 ]", { timeout = 60 })
expect.eq(a:succeed("cat /tmp/s"), "3\n")
a:wait_until_fails(count:format("f", "f") .. "[ $n -lt 3 ]", { timeout = 60 })
expect.eq(a:succeed("cat /tmp/f"), "3\n")
-- wait_for_file: the file appears a second after the wait begins
a:succeed("(sleep 1; touch /tmp/flag) >/dev/null 2>&1 &")
a:wait_for_file("/tmp/flag", { timeout = 60 })
