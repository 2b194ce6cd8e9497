#!/bin/sh
# dirimage.sh: nodes booted from a directory tree (debootstrap output, built once and cached):
# ephemeral by default (writes last the run, across reboot, and never reach the tree; -K keeps
# them for the next run), persistent = true writes into the tree; such a node shares a VLAN
# with a host-image node. The cached tree is shared with other runs: it is only ever read (the
# persistent node boots a private overlay of it).
set -u
moonrig=${MOONRIG:-./moonrig}
tree=${MOONRIG_TEST_TREE:-/var/cache/moonrig-test/bookworm}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: dirimage.sh needs root (containers)"; exit 77; fi
tmp=$(mktemp -d)
keep=$tmp/keep
trap 'exit 130' INT TERM
trap 'kill_leftovers "$tmp/rec"; rm -rf "$tmp"' EXIT
run() { # name, moonrig args...
  what=$1; shift
  if NO_COLOR=1 "$moonrig" "$@" >"$tmp/log" 2>&1; then ok "$what"
  else not_ok "$what"; grep -v ' # ' "$tmp/log" | tail -15 | sed 's/^/#   /'; fi
}

if [ ! -x "$tree/lib/systemd/systemd" ]; then
  echo "# building $tree with debootstrap (once; about a minute)"
  mkdir -p "$(dirname "$tree")"
  # Built aside and moved in whole: another run may be building it at the same time.
  new=$(mktemp -d "$tree.new.XXXXXX")
  if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm \
       "$new" >"$tmp/debootstrap.log" 2>&1; then
    rm -rf "$new"; bail "debootstrap failed" "$tmp/debootstrap.log"
  fi
  chmod 0755 "$new"
  mv -T "$new" "$tree" 2>/dev/null || rm -rf "$new"
fi

{ lua_checkpoint; cat <<LUA
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
checkpoint()
LUA
} > "$tmp/ephemeral.lua"
what="a directory image boots; its writes last the run (reboot, shutdown/start); it shares a VLAN"
watched_run "$tmp" "$tmp/log" env NO_COLOR=1 "$moonrig" "$tmp/ephemeral.lua" \
  || bail "$what: the run never got to its checkpoint (exit $st)" "$tmp/log"
if [ $st = 0 ]; then ok "$what"; else not_ok "$what"; grep -v ' # ' "$tmp/log" | tail -15 | sed 's/^/#   /'; fi
saw "$tmp/rec" systemd-nspawn || not_ok "no systemd-nspawn was seen under moonrig: the next check proves nothing"
nothing_left "$tmp" "the directory-image run ended"
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

# persistent = true writes into the tree it boots: here a private overlay of the shared tree,
# mounted in a mount namespace of the run's own (it goes with the run), its upper layer in $tmp.
mkdir -p "$tmp/p.upper" "$tmp/p.work" "$tmp/p.tree"
cat > "$tmp/persistent.lua" <<LUA
local d = container "deb" { image = "$tmp/p.tree", persistent = true, vlans = {} }
d:succeed("echo mine > /root/persisted")
LUA
# shellcheck disable=SC2016 # expanded by that sh
NO_COLOR=1 unshare --mount --propagation private sh -c \
  'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 4 && exec "$@"' \
  sh "$tree" "$tmp/p.upper" "$tmp/p.work" "$tmp/p.tree" "$moonrig" "$tmp/persistent.lua" >"$tmp/log" 2>&1 \
  && ok "persistent = true boots the tree in place" \
  || { not_ok "persistent = true boots the tree in place"; grep -v ' # ' "$tmp/log" | tail -15 | sed 's/^/#   /'; }
[ "$(cat "$tmp/p.upper/root/persisted" 2>/dev/null)" = mine ] && ok "persistent writes are in the tree" \
  || not_ok "persistent write missing from the tree"
[ ! -e "$tree/root/persisted" ] && ok "the shared tree was not written to" || not_ok "the shared tree was written to"
summary
