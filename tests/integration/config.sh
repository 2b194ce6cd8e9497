#!/bin/sh
# config.sh: a NixOS-style --config file whose container comes from a run-<name>-nspawn start
# script (a stand-in for nixpkgs' launcher: it builds its own root and runs systemd-nspawn, which
# reports to $NOTIFY_SOCKET). Checks the run, the `machine` alias, the start script's
# environment, config errors, and that nothing is left behind.
set -u
moonrig=${MOONRIG:-./moonrig}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: config.sh needs root (containers)"; exit 77; fi
tmp=$(mktemp -d)
trap 'exit 130' INT TERM
trap 'kill_leftovers "$tmp/rec"; rm -rf "$tmp"' EXIT

cat > "$tmp/run-cfgnode-nspawn" <<'SH'
#!/bin/sh
set -e
root="$RUN_NSPAWN_ROOT_DIR/root"
mkdir -p "$root/usr"
echo "launcher: starting in $(pwd)"
env | sort > "$RUN_NSPAWN_SHARED_DIR/launcher-env"
exec unshare --mount --propagation private sh -c '
  mount --bind /usr "$1/usr" && mount -o remount,bind,ro "$1/usr"
  exec systemd-nspawn --quiet --notify-ready=yes --keep-unit --register=no --boot --volatile=yes \
    --overlay=/etc::/etc --overlay=/var::/var -D "$1" --machine=cfgnode --private-network \
    --link-journal=no --console=read-only --bind="$2:/tmp/shared"' sh "$root" "$RUN_NSPAWN_SHARED_DIR"
SH
chmod +x "$tmp/run-cfgnode-nspawn"
{ lua_checkpoint; cat <<'LUA'
expect.eq(#nodes, 1)
cfgnode:wait_for_unit("multi-user.target")
expect.eq(cfgnode:succeed("echo hi"), "hi\n")
expect.eq(machine:succeed("echo via-machine"), "via-machine\n")
local env = cfgnode:succeed("cat /tmp/shared/launcher-env")
expect.match(env, "RUN_NSPAWN_ROOT_DIR=[^\n]*/vm%-state%-cfgnode\n")
expect.match(env, "NOTIFY_SOCKET=")
expect.falsy(env:match("\nHOME="), "the start script gets a minimal environment")
checkpoint()
LUA
} > "$tmp/t.lua"
cat > "$tmp/config.json" <<JSON
{"containers": {"cfgnode": {"name": "cfgnode", "start_script": "$tmp/run-cfgnode-nspawn"}},
 "vms": {}, "vlans": [], "global_timeout": 120, "test_script": "$tmp/t.lua"}
JSON

if ! watched_run "$tmp" "$tmp/log" env NO_COLOR=1 "$moonrig" --config "$tmp/config.json"; then
  bail "the config run never got to its checkpoint (exit $st)" "$tmp/log"
fi
if [ $st = 0 ]; then ok "a config's start-script container boots and runs commands"; else not_ok "the config run exited $st"; sed 's/^/#   /' "$tmp/log" | tail -20; fi
grep -q "using \`machine\` is deprecated: the only machine is called cfgnode" "$tmp/log" \
  && ok "machine is the only machine, with a warning" || not_ok "no machine warning"
grep -q "^cfgnode # launcher: starting in .*/vm-state-cfgnode" "$tmp/log" \
  && ok "the start script runs in its state directory and its output is logged" || not_ok "no launcher line"
grep -q "^cfgnode # .*systemd\[1\]: .*Reached target" "$tmp/log" \
  && ok "the node's journal is logged" || not_ok "no journal line"
saw "$tmp/rec" systemd-nspawn || not_ok "no systemd-nspawn was seen under moonrig: the next check proves nothing"
nothing_left "$tmp" "the config run ended"

printf '{"containers": {"x": {"name": "x"' > "$tmp/bad.json"
"$moonrig" --config "$tmp/bad.json" >"$tmp/log" 2>&1
st=$?
[ $st = 2 ] && grep -q "bad.json" "$tmp/log" && ok "a malformed config: exit 2 naming the file" \
  || not_ok "malformed config: exit $st"

# A VM from the config: a stand-in for run-<name>-vm (the kernel and initramfs of
# tests/vm/mkinitrd.sh, which make integration builds first); moonrig appends its options.
cache=${MOONRIG_VM_CACHE:-/var/cache/moonrig-vm}
cat > "$tmp/run-vmnode-vm" <<SH
#!/bin/sh
exec qemu-system-x86_64 -name vmnode -accel tcg -m 512 -kernel $cache/vmlinuz -initrd $cache/initrd.img \\
  -append "console=ttyS0 quiet panic=-1" -nic none "\$@"
SH
chmod +x "$tmp/run-vmnode-vm"
{ lua_checkpoint; cat <<'LUA'
expect.eq(#nodes, 2)
expect.eq(vmnode.kind, "vm")
expect.eq(vmnode:succeed("echo from-the-vm"), "from-the-vm\n")
expect.eq(cfgnode:succeed("echo from-the-container"), "from-the-container\n")
checkpoint()
vmnode:shutdown()
LUA
} > "$tmp/vm.lua"
cat > "$tmp/vm.json" <<JSON
{"vms": {"vmnode": {"name": "vmnode", "start_script": "$tmp/run-vmnode-vm"}},
 "containers": {"cfgnode": {"name": "cfgnode", "start_script": "$tmp/run-cfgnode-nspawn"}},
 "vlans": [], "global_timeout": 120, "test_script": "$tmp/vm.lua"}
JSON
if ! watched_run "$tmp" "$tmp/log" env NO_COLOR=1 "$moonrig" --config "$tmp/vm.json"; then
  bail "the VM config run never got to its checkpoint (exit $st)" "$tmp/log"
fi
if [ $st = 0 ]; then ok "a config's run-<name>-vm VM and container both run commands"
else not_ok "the VM config run exited $st"; grep -v ' # ' "$tmp/log" | tail -15 | sed 's/^/#   /'; fi
saw "$tmp/rec" qemu-system || not_ok "no QEMU was seen under moonrig: the next check proves nothing"
nothing_left "$tmp" "the VM config run ended"
summary
