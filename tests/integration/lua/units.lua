-- systemd over sd-bus: unknown and failed units raise at once, suffix-less names mean
-- .service, properties read without systemctl.
local a = container "a" {}
a:wait_for_unit("multi-user.target")
local e = expect.raises(function() a:wait_for_unit("nosuch", { timeout = 30 }) end,
  'unit "nosuch.service" not found')
expect.eq(e.node, "a")
a:succeed("systemd-run --unit=bad --service-type=oneshot false || true")
e = expect.raises(function() a:wait_for_unit("bad", { timeout = 30 }) end,
  'unit "bad.service" reached state "failed"')
a:succeed("systemd-run --unit=late --no-block --service-type=oneshot --remain-after-exit sleep 0.3")
a:wait_for_unit("late")
expect.eq(a:get_unit_property("late", "ActiveState"), "active")
expect.eq(a:get_unit_info("late.service").SubState, "exited")
a:require_unit_state("multi-user.target")
expect.raises(function() a:require_unit_state("bad", "active") end, "to to be in state 'active'")
local status, out = a:systemctl("is-active multi-user.target")
expect.eq({ status, out }, { 0, "active\n" })
