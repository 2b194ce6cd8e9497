-- Contract: execute gives status, stdout and stderr apart (bash, set -euo pipefail, every byte
-- kept); succeed gives stdout and raises a TestFailure with node, command and status; fail;
-- a command timeout is a Timeout failure; exit 124 by itself is not a timeout.
local n = dofile((SCRIPT_PATH:match("^(.*)/") or ".") .. "/prelude.lua")

expect.eq({ n:execute("echo hi; echo oops >&2; exit 3") }, { 3, "hi\n", "oops\n" })
expect.eq({ n:execute("printf 'a\\0b\\377'; printf 'e\\0\\001' >&2") }, { 0, "a\0b\255", "e\0\1" })
expect.eq({ n:execute("true") }, { 0, "", "" })
-- set -euo pipefail
expect.eq({ n:execute("false; echo not-reached") }, { 1, "", "" })
expect.eq({ n:execute("false | true") }, { 1, "", "" })
local status, out, err = n:execute("echo $undefined_variable")
expect.eq({ status, out }, { 1, "" })
expect.match(err, "^[%w/]*bash: line 1: undefined_variable: unbound variable\n$")
expect.eq({ n:execute("exit 124") }, { 124, "", "" })
-- output of many pages, exactly (kept small: a VM loses pieces of large output, see the report)
local big = n:succeed("head -c 50000 /dev/zero | tr '\\0' x")
expect.eq(#big, 50000)
expect.eq(big:find("[^x]"), nil)

-- succeed: stdout, each command in turn
expect.eq(n:succeed("echo one"), "one\n")
expect.eq(n:succeed("echo one", "echo two"), "one\ntwo\n")
expect.eq(n:succeed("echo out; echo err >&2"), "out\n")
local e = expect.raises(function() n:succeed("echo partial; exit 7") end)
expect.eq({ e.kind, e.node, e.command, e.status }, { "TestFailure", "n", "echo partial; exit 7", 7 })
expect.eq(e.message, "command `echo partial; exit 7` failed (exit code 7)")
expect.contains(e.output, "partial")

-- fail: each command must fail
expect.eq(n:fail("echo no; false"), "no\n")
e = expect.raises(function() n:fail("true") end)
expect.eq({ e.kind, e.node, e.command, e.status }, { "TestFailure", "n", "true", 0 })
expect.eq(e.message, "command `true` unexpectedly succeeded")

-- a command timeout is a Timeout failure, from succeed and from execute alike
e = expect.raises(function() n:succeed("sleep 60", { timeout = 1 }) end)
expect.eq({ e.kind, e.node, e.command, e.timeout }, { "Timeout", "n", "sleep 60", 1 })
expect.eq(e.message, "command `sleep 60` timed out after 1 seconds")
e = expect.raises(function() n:execute("echo started; sleep 60", { timeout = 1 }) end)
expect.eq({ e.kind, e.node, e.command }, { "Timeout", "n", "echo started; sleep 60" })
-- the timed-out command is gone, and the node still answers
n:wait_until_fails("grep -qsx sleep /proc/[0-9]*/comm", { timeout = 30 })
expect.eq(n:succeed("echo alive"), "alive\n")
