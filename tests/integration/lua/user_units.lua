-- User units: a user's systemd manager in a container (lingering user alice), wait_for_unit and
-- systemctl with { user = }, a unit enabled in ~/.config/systemd/user waited for before the
-- user's manager is even up, and clear errors for a user that does not exist or has no manager.
local a = container "a" {}
a:wait_for_unit("multi-user.target")

local uid = a:succeed("useradd -m alice && id -u alice"):gsub("\n$", "")
expect.match(uid, "^%d+$")
a:succeed([[
u=~alice/.config/systemd/user
install -d -o alice -g alice ~alice/.config ~alice/.config/systemd "$u" "$u/default.target.wants"
cat > "$u/hello.service" <<'X'
[Unit]
Description=alice's hello
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo "hello from $USER" > %h/hello.out'
[Install]
WantedBy=default.target
X
ln -s ../hello.service "$u/default.target.wants/hello.service"
chown -R alice:alice ~alice/.config
]])

-- The manager starts asynchronously: the wait must connect once it is there.
a:succeed("loginctl enable-linger alice")
a:wait_for_unit("hello", { user = "alice", timeout = 60 })
a:wait_for_unit("user@" .. uid .. ".service", { timeout = 30 })
expect.eq(a:succeed("cat ~alice/hello.out"), "hello from alice\n")
expect.eq(a:succeed("stat -c %U ~alice/hello.out"), "alice\n")

-- systemctl as the user: never raises, returns status and output (and stderr, as execute does)
local function two(s, o) return { s, o } end
expect.eq(two(a:systemctl("is-active hello.service", { user = "alice" })), { 0, "active\n" })
expect.eq(two(a:systemctl("stop hello", { user = "alice" })), { 0, "" })
expect.eq(two(a:systemctl("is-active hello", { user = "alice" })), { 3, "inactive\n" })
expect.eq(a:get_unit_property("hello", "ActiveState", { user = "alice" }), "inactive")
-- the system manager does not know the user's unit
expect.eq(two(a:systemctl("is-active hello")), { 3, "inactive\n" })

-- a user unit started later: wait_for_unit follows it; a uid names the user too
a:succeed("rm ~alice/hello.out")
expect.eq(two(a:start_job("hello", { user = "alice" })), { 0, "" })
a:wait_for_unit("hello.service", { user = uid, timeout = 30 })
expect.eq(a:get_unit_info("hello", { user = "alice" }).SubState, "exited")
expect.eq(a:succeed("cat ~alice/hello.out"), "hello from alice\n")
expect.eq(two(a:stop_job("hello", { user = "alice" })), { 0, "" })

-- a unit that alice's manager does not have: fails at once, not at the timeout
local t0 = monotonic_time()
local e = expect.raises(function() a:wait_for_unit("nope", { user = "alice", timeout = 60 }) end,
  'unit "nope.service" not found')
expect.eq({ e.kind, e.node }, { "TestFailure", "a" })
expect.truthy(monotonic_time() - t0 < 30, "an unknown user unit must fail promptly")

-- a failed user unit raises at once, with that unit's journal lines (from alice's manager)
a:succeed([[su -l alice -c 'XDG_RUNTIME_DIR=/run/user/$(id -u) systemd-run --user --unit=bad ]]
  .. [[--service-type=oneshot sh -c "echo bye-from-alice; exit 4"' || true]])
t0 = monotonic_time()
e = expect.raises(function() a:wait_for_unit("bad", { user = "alice", timeout = 60 }) end,
  'unit "bad.service" reached state "failed"')
expect.truthy(monotonic_time() - t0 < 30, "a failed user unit must fail promptly")
expect.contains(e.output or "", "bye-from-alice")
expect.contains(e.output or "", "status=4")

-- no such user in the container
e = expect.raises(function() a:wait_for_unit("hello", { user = "mallory", timeout = 60 }) end,
  "no such user in the container")
expect.eq(e.node, "a")
expect.contains(e.message, "mallory")

-- a user without a running manager: the wait ends at its timeout, naming the user
a:succeed("useradd bob")
e = expect.raises(function() a:wait_for_unit("hello", { user = "bob", timeout = 1 }) end, "of user bob")
expect.eq(e.kind, "Timeout")
