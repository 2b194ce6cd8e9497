#!/bin/sh
# network.sh: N containers on one VLAN (tests/bench/network.lua: boot, hello on each, node 1 pings the
# rest) through moonrig, beside a raw parallel systemd-nspawn boot of the same N host-image roots to
# READY=1. Run as root from the source tree: tests/bench/network.sh [N...] (default 10 24 50);
# RUNS=k repeats each N, RAW=0 skips the baseline, MOONRIG=path (default ./build/moonrig), LOGS=dir
# keeps every run's log there (a failed moonrig run's log is always kept, in /tmp).
# Prints figures, per-node times, and the ratio moonrig/raw of the same N measured in the same run;
# the targets and the NixOS driver's figures (../shared/reference/nixos-driver-measured.md, not
# measured here) as references only. No assertions: machines are noisy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# ---- the raw baseline, inside its own mount and PID namespaces (see raw_run below) ----
# Roots are made as runner/hostimage.c (commit 8daa830) makes them: host /usr read-only, /etc and /var overlays over
# the host's with a node layer (hostname, machine-id, masked getty/sysv generators, empty fstab,
# whiteouts over the host's enabled units, moonrig-network.target) and a tmpfs upper layer.
if [ "${1:-}" = "--raw-inner" ]; then
        n=$2 helper=$3 dir=$4 log=$5
        # Everything here dies with this namespace; the trap still unmounts in order, so that a
        # failure leaves nothing even were the namespace kept alive by a stray process.
        trap 'umount -R -l "$dir" 2>/dev/null || :' EXIT
        trap 'exit 130' INT TERM
        mount -t tmpfs -o mode=0755 tmpfs "$dir"
        t0=$(date +%s%N)
        tpl=$dir/etc.layer.template
        mkdir -p "$tpl/systemd/system-generators" "$tpl/systemd/system/multi-user.target.wants"
        ln -s /dev/null "$tpl/systemd/system-generators/systemd-getty-generator"
        ln -s /dev/null "$tpl/systemd/system-generators/systemd-sysv-generator"
        : > "$tpl/fstab"
        for w in /etc/systemd/system/*.wants/* /etc/systemd/system/*.requires/* \
                 /etc/systemd/user/*.wants/* /etc/systemd/user/*.requires/*; do
                [ -e "$w" ] || [ -L "$w" ] || continue
                rel=${w#/etc/}
                mkdir -p "$tpl/$(dirname "$rel")"
                mknod "$tpl/$rel" c 0 0
        done
        printf '%s\n' '[Unit]' 'Description=Network configured by moonrig' \
                'Wants=network.target network-online.target' 'Before=network-online.target' 'After=network.target' \
                > "$tpl/systemd/system/moonrig-network.target"
        ln -s /etc/systemd/system/moonrig-network.target "$tpl/systemd/system/multi-user.target.wants/"
        i=1
        while [ "$i" -le "$n" ]; do
                r=$dir/n$i
                mkdir -p "$r/root" "$r/etc.upper" "$r/etc.work" "$r/var.layer" "$r/var.upper" "$r/var.work"
                cp -a "$tpl" "$r/etc.layer"
                echo "n$i" > "$r/etc.layer/hostname"
                tr -d - < /proc/sys/kernel/random/uuid > "$r/etc.layer/machine-id"
                (cd "$r/root" && mkdir usr etc var home root srv opt mnt tmp proc sys dev run &&
                        chmod 1777 tmp && chmod 0700 root && chmod 0555 proc sys)
                for l in /*; do
                        [ -L "$l" ] || continue
                        case $(readlink "$l") in usr/*) ln -s "$(readlink "$l")" "$r/root/${l#/}";; esac
                done
                mount --rbind /usr "$r/root/usr"
                mount -o remount,bind,ro "$r/root/usr"
                for l in etc var; do
                        mount -t overlay overlay \
                                -o "lowerdir=$r/$l.layer:/$l,upperdir=$r/$l.upper,workdir=$r/$l.work,index=off" "$r/root/$l"
                done
                i=$((i + 1))
        done
        t1=$(date +%s%N)
        echo "prep $(( (t1 - t0) / 1000000 ))"
        # The same nspawn options as container_nspawn_argv (runner/container.c), minus the shared dir.
        # shellcheck disable=SC2016 # expanded by that sh, per node
        D=$dir "$helper" 120 "$n" sh -c 'id=$(cat "$D/n$BENCH_I/etc.layer/machine-id"); exec systemd-nspawn \
                --quiet --boot --notify-ready=yes --keep-unit --register=no --private-network \
                --console=read-only --link-journal=no --setenv=SYSTEMD_COLORS=0 \
                --directory="$D/n$BENCH_I/root" --machine="n$BENCH_I" --uuid="$id" --hostname="n$BENCH_I" \
                systemd.status_unit_format=name >>"$D/n$BENCH_I/console" 2>&1' && rc=0 || rc=$?
        # Units that failed in the nodes, and systemd's cgroup complaints: with --keep-unit every
        # nspawn started from one cgroup puts its container in the same "payload" cgroup.
        echo "failed_units $(cat "$dir"/n*/console | grep -c 'FAILED\]' || :)" \
                "cgroup_errors $(cat "$dir"/n*/console | grep -c 'Failed to attach' || :)"
        if [ "$rc" != 0 ]; then
                for c in "$dir"/n*/console; do
                        echo "--- $c"; tail -n 5 "$c"
                done >> "$log"
        fi
        exit "$rc"
fi

moonrig=${MOONRIG:-./build/moonrig}
runs=${RUNS:-1}
raw=${RAW:-1}
[ $# -gt 0 ] || set -- 10 24 50
if [ "$(id -u)" != 0 ]; then
        echo "network.sh: containers need root; run it as root" >&2
        exit 3
fi
[ -x /usr/bin/time ] || { echo "network.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 3; }
[ -x /usr/bin/hello ] || { echo "network.sh: /usr/bin/hello missing (apt-get install hello)" >&2; exit 3; }
[ -x "$moonrig" ] || { echo "network.sh: no moonrig at $moonrig (set MOONRIG=)" >&2; exit 3; }

tmp=$(mktemp -d /tmp/moonrig-bench-network.XXXXXX)
sampler='' timed=''
cleanup() {
        [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || :
        # Interrupted: stop what /usr/bin/time runs (moonrig, or unshare, whose death takes the raw
        # baseline's namespace and all in it), then wait for it so that nothing outlives us.
        if [ -n "$timed" ]; then
                child=
                read -r child _ < "/proc/$timed/task/$timed/children" 2>/dev/null || :
                [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || :
                wait "$timed" 2>/dev/null || :
        fi
        # the raw run's mounts live in its own namespace: here $tmp/raw is an empty directory
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

helper=$tmp/nspawn-ready
${CC:-cc} -std=gnu11 -O2 -o "$helper" "$here/nspawn-ready.c"

# Busy CPU-seconds of the whole machine so far (all cores; /proc/stat counts in USER_HZ, 100 here):
# beside our own CPU, it tells how much the other work on the machine took during a run.
busy() { awk '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100; exit }' /proc/stat; }
others() { awk -v a="$1" -v b="$2" -v ours="$3" 'BEGIN { o = b - a - ours; printf "%.2f", o < 0 ? 0 : o }'; }

kb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { r = a / b; printf (r < 1 ? "%.3f" : "%.2f"), r }'; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }

# Peak RSS of moonrig's own two processes: the one /usr/bin/time starts (it forks into the run's
# namespaces and then only relays signals) and its child (PID 1 there: the script, the event loop).
# GNU time's %M is the largest of the whole tree, the containers' systemd and journald included.
# VmHWM only grows: its last sample is the peak up to then.
hwm_of() {   # sets h
        h=
        while read -r key val _; do
                [ "$key" != VmHWM: ] || { h=$val; break; }
        done < "/proc/$1/status"
}
sample_hwm() {
        tp=$1 out=$2
        # builtins only, but for sleep: a sampler that forks would take CPU from what it measures
        while kill -0 "$tp" 2>/dev/null; do
                outer='' inner='' o='' i=''
                read -r outer _ < "/proc/$tp/task/$tp/children" 2>/dev/null || :
                [ -z "$outer" ] || read -r inner _ < "/proc/$outer/task/$outer/children" 2>/dev/null || :
                if [ -n "$inner" ]; then
                        hwm_of "$outer" 2>/dev/null || :
                        o=$h
                        hwm_of "$inner" 2>/dev/null || :
                        i=$h
                        [ -z "$o" ] || [ -z "$i" ] || echo "$o $i" >> "$out"
                fi
                sleep 0.05
        done
}

moonrig_run() {
        n=$1 k=$2 log=$tmp/moonrig-$1-$2.log
        : > "$tmp/hwm"
        b0=$(busy)
        s=$(date +%s%N)
        N=$n /usr/bin/time -f "%e %M %U %S" -o "$tmp/time" "$moonrig" "$here/network.lua" > "$log" 2>&1 &
        tp=$! timed=$!
        sample_hwm "$tp" "$tmp/hwm" &
        sampler=$!
        wait "$tp" && rc=0 || rc=$?
        timed=
        e=$(date +%s%N)
        b1=$(busy)
        wait "$sampler" 2>/dev/null || :
        sampler=
        whole=$(secs $((e - s)))
        bench=$(grep '^BENCH ' "$log" || :)
        if [ "$rc" != 0 ] || [ -z "$bench" ]; then
                echo "N=$n run $k: moonrig failed (exit $rc, ${whole} s); its last lines:"
                grep -v ' # ' "$log" | tail -n 15 | sed 's/^/  /'
                cp "$log" "/tmp/moonrig-bench-network-failed-$n-$k.log"
                echo "  full log: /tmp/moonrig-bench-network-failed-$n-$k.log"
                return 0
        fi
        script=$(echo "$bench" | sed 's/.*script=\([0-9.]*\).*/\1/')
        ready=$(echo "$bench" | sed 's/.*ready=\([0-9.]*\).*/\1/')
        hello=$(echo "$bench" | sed 's/.*hello=\([0-9.]*\).*/\1/')
        ping=$(echo "$bench" | sed 's/.*ping=\([0-9.]*\).*/\1/')
        cleanup_s=$(sed -n 's/.*(finished: cleanup, in \([0-9.]*\) seconds).*/\1/p' "$log" | tail -n 1)
        read -r _ treemax user sys < "$tmp/time"
        read -r outer inner <<EOF
$(tail -n 1 "$tmp/hwm")
EOF
        # the script's own reading at its end, or the sampler's last, whichever is higher
        lua_hwm=$(echo "$bench" | sed -n 's/.*hwm_kb=\([0-9]*\).*/\1/p')
        [ "${inner:-0}" -ge "${lua_hwm:-0}" ] || inner=$lua_hwm
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
        cpu_self=$(echo "$bench" | sed -n 's/.*cpu_self=\([0-9.]*\).*/\1/p')
        lines=$(grep -c ' # ' "$log" || :)
        failed=$(grep -c ' # .*FAILED\]' "$log" || :)
        cgerr=$(grep -c ' # .*Failed to attach' "$log" || :)
        rest=$(awk -v w="$whole" -v s="$script" -v c="${cleanup_s:-0}" 'BEGIN { printf "%.3f", w - s - c }')
        available=$(awk -v w="$whole" -v c="$(nproc)" 'BEGIN { printf "%.1f", w * c }')
        echo "N=$n run $k: moonrig"
        echo "  script        $script s   (all ready $ready s, hello on all $hello s, pings $ping s)"
        echo "  whole process $whole s   (cleanup ${cleanup_s:-?} s; start-up and the rest $rest s)"
        echo "  per node      $(ratio "$whole" "$n") s whole, $(ratio "$script" "$n") s script"
        echo "  peak RSS      moonrig (PID 1 of the run) $(kb "${inner:-0}") MiB, its outer relay $(kb "${outer:-0}") MiB;" \
                "largest in the whole tree (GNU time %M, containers included) $(kb "$treemax") MiB"
        echo "  nodes         $failed units failed in them, $cgerr lines of systemd's \"Failed to attach ... cgroup\""
        echo "  CPU           $cpu s user+sys (moonrig and every container; moonrig itself ${cpu_self:-?} s to the" \
                "script's end), $lines console lines logged;"
        echo "                other work on the machine meanwhile: $(others "$b0" "$b1" "$cpu") CPU-s of $available available"
        if [ "$n" = 24 ]; then
                echo "  vs targets    script $(ratio "$script" 5) of 5 s, whole $(ratio "$whole" 7) of 7 s"
                echo "  vs NixOS      script $(ratio "$script" 8.3) of 8.3 s, whole $(ratio "$whole" 14.7) of 14.7 s," \
                        "RSS $(ratio "$(kb "${inner:-0}")" 51) of 51 MB (NixOS: 24 nodes, hello, no VLAN)"
        fi
        if [ "$n" = 50 ]; then
                echo "  vs target     RSS $(ratio "$(kb "${inner:-0}")" 15) of 15 MiB"
        fi
        echo "$n $k $script $whole ${inner:-0} $ready" >> "$tmp/summary"
        [ -z "${LOGS:-}" ] || { mkdir -p "$LOGS" && cp "$log" "$LOGS/"; }
}

raw_run() {
        n=$1 k=$2 log=$tmp/raw-$1-$2.log
        mkdir -p "$tmp/raw"
        # As container_preflight does (runner/container.c): each container's systemd takes about 8
        # inotify instances, and past the per-user limit one never gets ready.
        need=$((n * 8 + 128))
        limit=$(cat /proc/sys/fs/inotify/max_user_instances)
        if [ "$limit" -lt "$need" ]; then
                echo "$need" > /proc/sys/fs/inotify/max_user_instances
                echo "  (raised fs.inotify.max_user_instances from $limit to $need for the raw baseline)"
        fi
        b0=$(busy)
        s=$(date +%s%N)
        # --kill-child: when unshare dies (cleanup sends it SIGTERM), the namespace's PID 1 gets SIGKILL,
        # and with it every container, nspawn and mount of the baseline.
        # shellcheck disable=SC2094 # both append to the log
        /usr/bin/time -f "%e %M %U %S" -o "$tmp/rawtime" \
                unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
                sh "$here/network.sh" --raw-inner "$n" "$helper" "$tmp/raw" "$log" > "$tmp/raw.out" 2>>"$log" &
        timed=$!
        wait "$timed" && rc=0 || rc=$?
        timed=
        e=$(date +%s%N)
        b1=$(busy)
        if [ "$rc" != 0 ]; then
                echo "N=$n run $k: raw nspawn baseline failed (exit $rc); its output:"
                cat "$tmp/raw.out" "$log" | tail -n 30 | sed 's/^/  /'
                return 0
        fi
        prep=$(awk '$1 == "prep" { printf "%.3f", $2 / 1000 }' "$tmp/raw.out")
        ready=$(awk '$1 == "all_ready" { print $2 }' "$tmp/raw.out")
        first=$(awk '$1 == "ready" { print $3 }' "$tmp/raw.out" | sort -n | head -n 1)
        stop=$(awk '$1 == "all_exited" { print $2 }' "$tmp/raw.out")
        units=$(awk '$1 == "failed_units" { printf "%s units failed in them, %s lines of", $2, $4 }' "$tmp/raw.out")
        read -r _ _ user sys < "$tmp/rawtime"
        echo "N=$n run $k: raw systemd-nspawn (no VLAN, no commands)"
        echo "  roots prepared $prep s, then all $n READY=1 in $ready s (first $first s)," \
                "SIGKILL of every init to all nspawn gone $stop s"
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
        echo "  whole process $(secs $((e - s))) s, CPU $cpu s user+sys;" \
                "other work meanwhile $(others "$b0" "$b1" "$cpu") CPU-s"
        echo "  nodes         $units systemd's \"Failed to attach ... cgroup\""
        rwhole=$(secs $((e - s)))
        rboot=$(awk -v p="$prep" -v r="$ready" 'BEGIN { printf "%.3f", p + r }')
        echo "  per node      $(ratio "$rwhole" "$n") s whole, $(ratio "$rboot" "$n") s roots and boot to READY=1"
        # moonrig's run of the same N just before: its figures over these
        m=$(awk -v n="$n" -v k="$k" '$1 == n && $2 == k { print $6, $4 }' "$tmp/summary" 2>/dev/null)
        if [ -n "$m" ]; then
                mready=${m% *} mwhole=${m#* }
                echo "  moonrig/raw   all ready $(ratio "$mready" "$rboot") (moonrig's roots, boot and wait_for_unit" \
                        "$mready s / raw roots and READY=1 $rboot s), whole process $(ratio "$mwhole" "$rwhole")" \
                        "($mwhole s / $rwhole s; moonrig's also runs hello and the pings)"
        fi
        echo "$n $k $prep $ready $rwhole $rboot" >> "$tmp/rawsummary"
        [ -z "${LOGS:-}" ] || { mkdir -p "$LOGS" && cp "$tmp/raw.out" "$LOGS/raw-$n-$k.out"; }
}

for n in "$@"; do
        case $n in ''|*[!0-9]*) echo "network.sh: N must be a number, got $n" >&2; exit 2;; esac
        k=1
        while [ "$k" -le "$runs" ]; do
                moonrig_run "$n" "$k"
                [ "$raw" = 0 ] || raw_run "$n" "$k"
                k=$((k + 1))
        done
done

if [ -s "$tmp/summary" ]; then
        echo
        echo "summary (moonrig): N run script_s whole_s rss_MiB | raw: prep_s ready_s whole_s" \
                "| moonrig/raw: ready whole | per node: moonrig whole_s, raw whole_s"
        while read -r n k script whole rss mready; do
                r=$(awk -v n="$n" -v k="$k" '$1 == n && $2 == k { print $3, $4, $5, $6 }' "$tmp/rawsummary" 2>/dev/null)
                if [ -n "$r" ]; then
                        rboot=${r##* } r=${r% *} rwhole=${r##* }
                        echo "  $n $k $script $whole $(kb "$rss") | $r | $(ratio "$mready" "$rboot")" \
                                "$(ratio "$whole" "$rwhole") | $(ratio "$whole" "$n") $(ratio "$rwhole" "$n")"
                else
                        echo "  $n $k $script $whole $(kb "$rss") | - (no raw baseline: RAW=0, or it failed) | - |" \
                                "$(ratio "$whole" "$n") -"
                fi
        done < "$tmp/summary"
fi
