#!/bin/sh
# containers.sh: container figures of moonrig beside raw baselines, from one moonrig run of
# tests/bench/containers.lua (boot to ready, command latency, wait_for_unit lag). Run as root from
# the source tree: tests/bench/containers.sh  (MOONRIG=path, default ./build/moonrig; RUNS=n boots
# each, default 7). Prints figures and ratios, no assertions: machines are noisy.
#
# containers.lua calls back into this script for the raw boot baseline:
#   containers.sh --raw-prepare DIR   build the READY=1 timer (nspawn-ready.c) into DIR
#   containers.sh --raw-once DIR      one raw systemd-nspawn boot of a host-image root to READY=1,
#                                     printed as "raw_ready SECONDS"; everything it mounts or starts
#                                     lives in a mount and PID namespace of its own and is gone when
#                                     it returns
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# ---- one raw boot, inside its own mount and PID namespaces ----
# The root is made as runner/hostimage.c makes it: host /usr bound read-only, /etc and /var as
# overlays over the host's with a node layer (hostname, machine-id, masked getty and sysv
# generators, empty fstab, whiteouts over the host's enabled units, moonrig-network.target) and a
# tmpfs upper layer. nspawn gets container_nspawn_argv's options (runner/container.c), minus the
# shared directory.
if [ "${1:-}" = "--raw-inner" ]; then
        helper=$2 dir=$3
        trap 'umount -R -l "$dir" 2>/dev/null || :' EXIT
        trap 'exit 130' INT TERM
        mount -t tmpfs -o mode=0755 tmpfs "$dir"
        l=$dir/etc.layer
        mkdir -p "$l/systemd/system-generators" "$l/systemd/system/multi-user.target.wants"
        ln -s /dev/null "$l/systemd/system-generators/systemd-getty-generator"
        ln -s /dev/null "$l/systemd/system-generators/systemd-sysv-generator"
        : > "$l/fstab"
        for w in /etc/systemd/system/*.wants/* /etc/systemd/system/*.requires/* \
                 /etc/systemd/user/*.wants/* /etc/systemd/user/*.requires/*; do
                [ -e "$w" ] || [ -L "$w" ] || continue
                rel=${w#/etc/}
                mkdir -p "$l/$(dirname "$rel")"
                mknod "$l/$rel" c 0 0
        done
        printf '[Unit]\nDescription=Network configured by moonrig\nWants=network.target network-online.target\nBefore=network-online.target\nAfter=network.target\n' \
                > "$l/systemd/system/moonrig-network.target"
        ln -s /etc/systemd/system/moonrig-network.target "$l/systemd/system/multi-user.target.wants/"
        echo raw > "$l/hostname"
        id=$(tr -d - < /proc/sys/kernel/random/uuid)
        echo "$id" > "$l/machine-id"
        r=$dir/root
        mkdir -p "$r" "$dir/etc.upper" "$dir/etc.work" "$dir/var.layer" "$dir/var.upper" "$dir/var.work"
        (cd "$r" && mkdir usr etc var home root srv opt mnt tmp proc sys dev run &&
                chmod 1777 tmp && chmod 0700 root && chmod 0555 proc sys)
        for p in /*; do
                [ -L "$p" ] || continue
                case $(readlink "$p") in usr/*) ln -s "$(readlink "$p")" "$r/${p#/}";; esac
        done
        mount --rbind /usr "$r/usr"
        mount -o remount,bind,ro "$r/usr"
        mount -t overlay overlay -o "lowerdir=$l:/etc,upperdir=$dir/etc.upper,workdir=$dir/etc.work,index=off" "$r/etc"
        mount -t overlay overlay -o "lowerdir=$dir/var.layer:/var,upperdir=$dir/var.upper,workdir=$dir/var.work,index=off" "$r/var"
        # nspawn-ready starts the clock just before it forks, sees READY=1 on its notify socket,
        # then SIGKILLs the container's init and waits for nspawn to exit.
        "$helper" 60 1 systemd-nspawn --quiet --boot --notify-ready=yes --keep-unit --register=no \
                --private-network --console=read-only --link-journal=no --setenv=SYSTEMD_COLORS=0 \
                --directory="$r" --machine=raw --uuid="$id" --hostname=raw \
                systemd.status_unit_format=name > "$dir/out" 2>"$dir/console" && rc=0 || rc=$?
        if [ "$rc" != 0 ]; then
                echo "raw nspawn boot failed (exit $rc); its last lines:" >&2
                tail -n 15 "$dir/out" "$dir/console" >&2
                exit 1
        fi
        awk '$1 == "ready" { print "raw_ready", $3 }' "$dir/out"
        exit 0
fi

if [ "$(id -u)" != 0 ]; then
        echo "containers.sh: containers need root; run it as root" >&2
        exit 3
fi

case ${1:-} in
--raw-prepare)
        [ -f "$here/nspawn-ready.c" ] || { echo "containers.sh: $here/nspawn-ready.c is missing" >&2; exit 3; }
        ${CC:-cc} -std=gnu11 -O2 -o "$2/nspawn-ready" "$here/nspawn-ready.c"
        exit 0
        ;;
--raw-once)
        mkdir -p "$2/raw"
        # As container_preflight does (runner/container.c): a container's systemd takes about 8
        # inotify instances and fails to start past the per-user limit, which other containers
        # on the host (another run) may have used up.
        used=$(find /proc/[0-9]*/fd -lname 'anon_inode:inotify' 2>/dev/null | wc -l)
        need=$((used + 8 + 128))
        limit=$(cat /proc/sys/fs/inotify/max_user_instances)
        if [ "$limit" -lt "$need" ]; then
                echo "$need" > /proc/sys/fs/inotify/max_user_instances
                echo "containers.sh: raised fs.inotify.max_user_instances from $limit to $need" >&2
        fi
        # --kill-child: if this script dies, the namespace's PID 1 gets SIGKILL, and with it the
        # container, nspawn and every mount of the baseline.
        exec unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
                sh "$here/containers.sh" --raw-inner "$2/nspawn-ready" "$2/raw"
        ;;
"") ;;
*)
        echo "usage: containers.sh   (as root, from the source tree; MOONRIG=, RUNS=)" >&2
        exit 2
        ;;
esac

moonrig=${MOONRIG:-./build/moonrig}
[ -x "$moonrig" ] || { echo "containers.sh: no moonrig at $moonrig (set MOONRIG=)" >&2; exit 3; }
tmp=$(mktemp -d /tmp/moonrig-bench-containers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
mkdir "$tmp/out"
"$moonrig" -o "$tmp/out" "$here/containers.lua" > "$tmp/log" 2>&1 && rc=0 || rc=$?
if [ "$rc" != 0 ]; then
        echo "containers.sh: moonrig failed (exit $rc); its last lines:"
        grep -v ' # ' "$tmp/log" | tail -n 25 | sed 's/^/  /'
        exit 1
fi
sed -n '/^==== container figures/,/^==== end/p' "$tmp/log" | sed '/^====/d'
