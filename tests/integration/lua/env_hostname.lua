-- Node identity and environment: hostname = "other" sets the node's host name (its node name
-- stays), and env = { NAME = "value" } (or a list of "NAME=value") reaches the node's
-- commands and its services.
local TRICKY = [[a "b" \c $d 'e' %f]]
local a = container "a" { hostname = "other", env = { FOO = "bar baz", EMPTY = "", TRICKY = TRICKY } }
local b = container "b" { env = { "GREETING=hi there" } }
start_all()
a:wait_for_unit("multi-user.target")
b:wait_for_unit("multi-user.target")

subtest("hostname", function()
  expect.eq(a.name, "a")
  expect.eq(a:succeed("hostname"), "other\n")
  expect.eq(a:succeed("cat /etc/hostname"), "other\n")
  expect.eq(a:succeed("uname -n"), "other\n")
  expect.eq(b:succeed("hostname"), "b\n")
  -- other nodes reach it by its hostname and by its node name
  expect.contains(b:succeed("cat /etc/hosts"), "192.168.1.1 other a\n")
  b:succeed("ping -c1 -W5 other", "ping -c1 -W5 a")
end)

subtest("env in commands", function()
  expect.eq(a:succeed('printf "%s|%s\\n" "$FOO" "$EMPTY"'), "bar baz|\n")
  expect.eq(a:succeed('printf "%s\\n" "$TRICKY"'), TRICKY .. "\n")
  expect.eq(b:succeed('echo "$GREETING"'), "hi there\n")
  -- one node's variables are its own
  expect.eq(b:succeed('echo "${FOO-unset}"'), "unset\n")
end)

subtest("env in services", function()
  expect.eq(a:succeed([[systemd-run --wait --quiet --pipe sh -c 'printf "%s|%s\n" "$FOO" "${EMPTY-unset}"']]),
    "bar baz|\n")
  expect.eq(a:succeed([[systemd-run --wait --quiet --pipe sh -c 'printf "%s\n" "$TRICKY"']]), TRICKY .. "\n")
  expect.eq(b:succeed([[systemd-run --wait --quiet --pipe sh -c 'echo "$GREETING"']]), "hi there\n")
end)

subtest("a bad env is a usage error", function()
  expect.raises(function() container "c" { env = { ["BAD NAME"] = "x" } } end, "env")
  expect.raises(function() container "d" { env = { FOO = {} } } end, "env")
  expect.raises(function() container "e" { env = { "NOEQUALS" } } end, "env")
  expect.raises(function() container "f" { env = { FOO = "two\nlines" } } end, "env")
end)
