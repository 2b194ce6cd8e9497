#!/bin/sh
# sigkill.sh: SIGKILL moonrig while a container and (when tests/vm/mkinitrd.sh has built its
# guest) a VM run: no process, mount or interface of the run may survive.
set -u
moonrig=${MOONRIG:-./moonrig}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/t.lua" <<'LUA'
local a = container "killme" {}
local K = "/var/cache/moonrig-vm"
local f = io.open(K .. "/vmlinuz")
if f then
  f:close()
  local v = vm "killvm" { kernel = K .. "/vmlinuz", initrd = K .. "/initrd.img", append = "console=ttyS0 quiet" }
  v:succeed("true")
end
a:wait_for_unit("multi-user.target")
a:succeed("touch /tmp/shared/ready")
sleep(600)
LUA
links_before=$(ip -o link | wc -l)
"$moonrig" "$tmp/t.lua" >"$tmp/log" 2>&1 &
pid=$!
i=0
while [ $i -lt 300 ] && ! grep -q "must succeed: touch" "$tmp/log"; do sleep 0.1; i=$((i+1)); done
sleep 0.5
pgrep -f 'systemd-nspawn.*killme' >/dev/null || { echo "not ok - the container never started"; cat "$tmp/log"; echo "0 passed, 1 failed"; exit 1; }
if [ -r /var/cache/moonrig-vm/vmlinuz ] && ! pgrep -f 'qemu-system.*killvm' >/dev/null; then
  echo "not ok - the VM never started"; cat "$tmp/log"; echo "0 passed, 1 failed"; exit 1
fi
kill -KILL $pid
wait $pid 2>/dev/null
sleep 1
fail=0
if pgrep -f 'systemd-nspawn.*killme' >/dev/null || pgrep -f 'qemu-system.*killvm' >/dev/null; then
  echo "not ok - systemd-nspawn or QEMU survived"; fail=1; else echo "ok - no process survived"; fi
if grep -q 'vm-state-killme' /proc/mounts; then echo "not ok - mounts survived"; fail=1; else echo "ok - no mount survived"; fi
if [ "$(ip -o link | wc -l)" != "$links_before" ]; then echo "not ok - interfaces changed"; fail=1; else echo "ok - no interface survived"; fi
if [ $fail = 0 ]; then echo "3 passed, 0 failed"; else echo "failed"; fi
exit $fail
