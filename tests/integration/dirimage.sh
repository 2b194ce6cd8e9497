#!/bin/sh
# dirimage.sh: nodes booted from a directory tree (debootstrap output, built once and cached):
# ephemeral by default (writes last the run, across reboot, and never reach the tree; -K keeps
# them for the next run), persistent = true writes into the tree; such a node shares a VLAN
# with a host-image node.
set -u
moonrig=${MOONRIG:-./moonrig}
tree=${MOONRIG_TEST_TREE:-/var/cache/moonrig-test/bookworm}
tmp=$(mktemp -d)
keep=$tmp/keep
cleanup() { rm -rf "$tmp"; rm -f "$tree/root/persisted"; }
trap cleanup EXIT
pass=0; fail=0
ok() { echo "ok - $1"; pass=$((pass+1)); }
not_ok() { echo "not ok - $1"; fail=$((fail+1)); }
run() { # name, moonrig args...
  what=$1; shift
  if NO_COLOR=1 "$moonrig" "$@" >"$tmp/log" 2>&1; then ok "$what"
  else not_ok "$what"; grep -v ' # ' "$tmp/log" | tail -15 | sed 's/^/#   /'; fi
}

if [ ! -x "$tree/lib/systemd/systemd" ]; then
  echo "# building $tree with debootstrap (once; about a minute)"
  mkdir -p "$(dirname "$tree")"
  if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm \
       "$tree.new" >"$tmp/debootstrap.log" 2>&1; then
    rm -rf "$tree.new"; tail -5 "$tmp/debootstrap.log"
    echo "not ok - debootstrap failed"; echo "0 passed, 1 failed"; exit 1
  fi
  mv "$tree.new" "$tree"
fi

cat > "$tmp/ephemeral.lua" <<LUA
local d = container "deb" { image = "$tree" }
local h = container "host" {}
start_all()
d:wait_for_unit("multi-user.target")
expect.eq(d:succeed("hostname"), "deb\n")
expect.contains(d:succeed("cat /etc/os-release"), "bookworm")
d:succeed("echo one > /root/state")
d:reboot()
expect.eq(d:succeed("cat /root/state"), "one\n")
d:shutdown()
d:start()
expect.eq(d:succeed("cat /root/state"), "one\n")
-- the tree's node and the host-image node share VLAN 1
h:succeed("ping -c1 -W5 deb")
expect.contains(d:succeed("ip -br addr show eth1"), d.ip .. "/24")
LUA
run "a directory image boots; its writes last the run (reboot, shutdown/start); it shares a VLAN" "$tmp/ephemeral.lua"
[ ! -e "$tree/root/state" ] && ok "an ephemeral node's writes never reach the tree" || not_ok "the tree was written to"

cat > "$tmp/keep1.lua" <<LUA
local d = container "deb" { image = "$tree", vlans = {} }
d:succeed("echo kept > /root/kept")
LUA
cat > "$tmp/keep2.lua" <<LUA
local d = container "deb" { image = "$tree", vlans = {} }
expect.eq(d:succeed("cat /root/kept"), "kept\n")
LUA
cat > "$tmp/fresh.lua" <<LUA
local d = container "deb" { image = "$tree", vlans = {} }
d:fail("test -e /root/kept")
LUA
XDG_RUNTIME_DIR=$keep run "-K: a first run writes" -K "$tmp/keep1.lua"
XDG_RUNTIME_DIR=$keep run "-K: the next run sees the writes" -K "$tmp/keep2.lua"
XDG_RUNTIME_DIR=$keep run "without -K a run starts fresh" "$tmp/fresh.lua"

cat > "$tmp/persistent.lua" <<LUA
local d = container "deb" { image = "$tree", persistent = true, vlans = {} }
d:succeed("echo mine > /root/persisted")
LUA
run "persistent = true boots the tree in place" "$tmp/persistent.lua"
[ "$(cat "$tree/root/persisted" 2>/dev/null)" = mine ] && ok "persistent writes are in the tree" \
  || not_ok "persistent write missing from the tree"
rm -f "$tree/root/persisted"

if grep -q "$tree" /proc/mounts || pgrep -f 'systemd-nspawn.*deb' >/dev/null; then
  not_ok "a mount or process survived"; else ok "nothing left behind"; fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
