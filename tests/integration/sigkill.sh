#!/bin/sh
# sigkill.sh: SIGKILL moonrig while a container and (when tests/vm/mkinitrd.sh has built its
# guest) a VM run: no process of the run may survive, nor any of its namespaces (the run's own
# mount, network and PID namespaces, where its mounts and links live, and the nodes'). What the run
# is made of is recorded while it runs; nothing is matched host-wide by name.
set -u
moonrig=${MOONRIG:-./moonrig}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP root: sigkill.sh needs root (the run's sandbox)"; exit 77; fi
tmp=$(mktemp -d); pid=
mkdir "$tmp/marks" "$tmp/rec"
trap 'exit 130' INT TERM
trap 'kill_leftovers "$tmp/rec"; [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
K=/var/cache/moonrig-vm
vm=0; [ -r "$K/vmlinuz" ] && [ -r "$K/initrd.img" ] && vm=1
{ lua_checkpoint; cat <<'LUA'
local a = container "killme" {}
local K = "/var/cache/moonrig-vm"
if os.getenv("SIGKILL_VM") == "1" then
  local v = vm "killvm" { kernel = K .. "/vmlinuz", initrd = K .. "/initrd.img", append = "console=ttyS0 quiet" }
  v:succeed("true")
end
a:wait_for_unit("multi-user.target")
a:succeed("true")
checkpoint()
sleep(600)
LUA
} > "$tmp/t.lua"

SIGKILL_VM=$vm MOONRIG_TEST_MARKS=$tmp/marks "$moonrig" "$tmp/t.lua" >"$tmp/log" 2>&1 &
pid=$!
# A TCG VM boots slowly on a busy machine: a generous bound, but a bound.
wait_ready 600 $pid "$tmp/marks" || bail "the run never got ready (its container$([ $vm = 0 ] || echo " and VM") booted and running commands)" "$tmp/log"
record_run $pid "$tmp/rec"
touch "$tmp/marks/recorded"
ok "the run got ready"
for t in mnt net pid; do
  has_own_ns "$tmp/rec" $t && ok "the run has a $t namespace of its own" \
    || not_ok "the run's init ($(cat "$tmp/rec/init")) is in no $t namespace of its own: nothing to check it leaves"
done
saw "$tmp/rec" systemd-nspawn && ok "the run's container is up (systemd-nspawn under moonrig)" \
  || not_ok "no systemd-nspawn under moonrig $pid"
if [ $vm = 1 ]; then
  saw "$tmp/rec" qemu-system && ok "the run's VM is up (QEMU under moonrig)" || not_ok "no QEMU under moonrig $pid"
else
  skip "the run's VM is killed too" vm "no test guest in $K (tests/vm/mkinitrd.sh builds it)"
fi

kill -KILL $pid
wait $pid 2>/dev/null; pid=
# The kernel tears the run down asynchronously: wait (generously) for it to be gone.
gone_within 60 "$tmp/rec"
procs=$(grep '^process' "$tmp/rec/left")
holders=$(grep -v '^process' "$tmp/rec/left")
[ -z "$procs" ] && ok "no process of the run survived ($(wc -l < "$tmp/rec/procs") recorded, nspawn$([ $vm = 0 ] || echo " and QEMU") among them)" \
  || { not_ok "processes of the run survived"; echo "$procs" | sed 's/^/#   /'; }
[ -z "$holders" ] && ok "none of the run's $(wc -l < "$tmp/rec/ns") namespaces is held by a process, a descriptor or an nsfs mount" \
  || { not_ok "namespaces of the run survived"; echo "$holders" | sed 's/^/#   /'; }
kill_leftovers "$tmp/rec"
summary
