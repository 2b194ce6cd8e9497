#!/bin/sh
# nixos_system.sh: a container declared from Lua with `system = <a NixOS toplevel>`, booted for
# real. There is no Nix here, so the store is a fake one on a tmpfs in a mount namespace of this
# test's own (as container_selftest's NixOS check makes it): busybox, the host's /usr and /etc
# read-only, and a toplevel whose init sets up /usr and /etc, then execs systemd. A real store on
# the host stays hidden and untouched; /nix is made (and removed after) only if it is missing.
set -u
. "$(dirname "$0")/lib.sh"
moonrig=${MOONRIG:-./moonrig}
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: nixos_system.sh boots a container"; exit 77; fi
if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx sh; then
        skip "a system = container boots" busybox "no static /bin/busybox (apt-get install busybox-static)"
        summary; exit
fi
tmp=$(mktemp -d); made_nix=
nix_mounts() { grep -c ' /nix[ /]' /proc/self/mountinfo; }
mounts_before=$(nix_mounts)
[ -e /nix ] || { mkdir /nix && made_nix=1; }
trap 'rm -rf "$tmp"; [ -z "$made_nix" ] || rmdir /nix' EXIT

store=/nix/store
bb=$store/00000000000000000000000000000000-busybox
usr=$store/11111111111111111111111111111111-host-usr
etc=$store/22222222222222222222222222222222-host-etc
sys=$store/33333333333333333333333333333333-nixos-system-fakenix-26.05

cat > "$tmp/init" <<INIT
#!$bb/bin/busybox sh
bb=$bb/bin/busybox
\$bb mount --bind $usr /usr && \$bb mount -o remount,bind,ro /usr || exit 1
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -e /usr/\$d ] && [ ! -e /\$d ]; then \$bb ln -s usr/\$d /\$d; fi
done
if [ ! -e /etc/.fake-nixos ]; then
  id=\$(\$bb cat /etc/machine-id); name=\$(\$bb cat /etc/hostname)
  \$bb cp -af $etc/. /etc/ 2>/dev/null; [ -s /etc/passwd ] || exit 1
  echo "\$id" > /etc/machine-id; echo "\$name" > /etc/hostname; : > /etc/fstab
  \$bb rm -rf /etc/systemd/system/*.wants /etc/systemd/system/*.requires
  \$bb mkdir -p /etc/systemd/system-generators
  \$bb ln -sf /dev/null /etc/systemd/system-generators/systemd-getty-generator
  \$bb ln -sf /dev/null /etc/systemd/system-generators/systemd-sysv-generator
  \$bb touch /etc/.fake-nixos
fi
\$bb mkdir -p /var/tmp /tmp /root /home
\$bb chmod 1777 /tmp /var/tmp
\$bb ln -sfn $sys /run/current-system
exec /usr/lib/systemd/systemd "\$@"
INIT

cat > "$tmp/t.lua" <<LUA
local n = container "fakenix" { system = "$sys", vlans = {},
  files = { ["/root/given"] = "given to the NixOS node\n" } }
n:start()
n:wait_for_unit("multi-user.target")
expect.eq(n:succeed("readlink /run/current-system"), "$sys\n")
expect.eq(n:succeed("cat /root/given"), "given to the NixOS node\n")
expect.eq(n:succeed("test -x $sys/init && touch $store/x 2>/dev/null || echo read-only"), "read-only\n")
expect.raises(function() container "nosys" { system = "$store/44444444444444444444444444444444-nixos-system-none" } end,
  "has no init")
n:shutdown()
LUA

cat > "$tmp/run.sh" <<RUN
set -e
mount -t tmpfs -o mode=0755 tmpfs /nix
mkdir -p $bb/bin $usr $etc $sys
cp /bin/busybox $bb/bin/busybox
mount --bind /usr $usr && mount -o remount,bind,ro $usr
mount --bind /etc $etc && mount -o remount,bind,ro $etc
install -m 0755 "$tmp/init" $sys/init
exec "$moonrig" "$tmp/t.lua"
RUN
NO_COLOR=1 unshare -m --propagation private sh "$tmp/run.sh" >"$tmp/log" 2>&1
st=$?
if [ "$st" = 0 ]; then
        ok "a container with system = <toplevel> boots its init, gets its files, sees the store read-only"
else
        not_ok "a container with system = <toplevel> (exit $st)"
        tail -n 30 "$tmp/log" | sed 's/^/#   /'
fi
if [ "$(nix_mounts)" != "$mounts_before" ]; then not_ok "the fake store's mounts are visible on the host"; else
        ok "the fake store lived in the test's mount namespace only"; fi
summary
