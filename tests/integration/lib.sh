# lib.sh: helpers the shell integration tests source (sigkill.sh, config.sh, dirimage.sh).
# Checks print `ok - ...` / `not ok - ...` and `summary` ends a suite with
# `N passed, N failed, N skipped`. A run's leftovers are found by what the test recorded of that
# run while it was alive (its processes by PID and start time, its namespaces by identity), never
# by matching process names host-wide: other runs may be going at the same time on the host.

pass=0 fail=0 skipped=0 st=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }
skip() { echo "ok - $1 # SKIP $2: $3"; skipped=$((skipped + 1)); }
# The last line; false if a check failed or none ran.
summary() {
        echo "$pass passed, $fail failed, $skipped skipped"
        [ "$fail" = 0 ] && [ $((pass + fail + skipped)) -gt 0 ]
}
# A check that leaves the rest meaningless: report it, the log's tail, and end the suite.
bail() { # what, [log]
        not_ok "$1"
        [ -z "${2:-}" ] || tail -n 25 "$2" | sed 's/^/#   /'
        summary
        exit 1
}

# wait_until SECONDS CMD...: true once CMD succeeds, false when SECONDS pass first.
wait_until() {
        _t=$(($1 * 10)); shift
        while [ "$_t" -gt 0 ]; do
                "$@" && return 0
                sleep 0.1; _t=$((_t - 1))
        done
        "$@"
}

# "pid starttime ppid comm" of PID and every process below it in the process tree, nested PID
# namespaces (the nodes') included. A comm may hold ") ": the fields start after the last one.
proc_tree() {
        cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
        { s = $0; i = index(s, ") "); while (j = index(substr(s, i + 2), ") ")) i += j + 1
          split(substr(s, i + 2), f, " "); ppid[$1] = f[2]; start[$1] = f[20]
          c = index(s, "("); comm[$1] = substr(s, c + 1, i - c - 1) }
        END { if (!(root in ppid)) exit
              below[root] = 1
              do { n = 0; for (p in ppid) if (!(p in below) && (ppid[p] in below)) { below[p] = 1; n++ } } while (n)
              for (p in below) print p, start[p], ppid[p], comm[p] }'
}

# The namespaces of this shell ("net:[4026531840]" ...): the host's, as far as the test goes.
own_ns() { find /proc/$$/ns -mindepth 1 -printf '%l\n' | sort -u; }

# record_run PID DIR: what the run under PID is made of now, into DIR: procs ("pid starttime
# ppid comm" of every process), ns (every namespace one of them is in that this shell is not in), and
# run_ns (the namespaces of the run's own init, the only child of PID: moonrig's sandbox).
# Each namespace in ns is pinned: a sleep of ours holds it open (pins: "pid id"), so that its
# number cannot go to a namespace made later (the kernel reuses the lowest free one at once),
# and whoever else holds it after the run is a leftover of the run. release_pins drops them.
record_run() {
        proc_tree "$1" > "$2/procs"
        own_ns > "$2/own_ns"
        : > "$2/pins"
        # shellcheck disable=SC2046 # one path per process
        find $(awk '{ print "/proc/" $1 "/ns" }' "$2/procs") -mindepth 1 -printf '%l %p\n' 2>/dev/null \
                | sort -u -k1,1 | while read -r id path; do
                        grep -qxF "$id" "$2/own_ns" && continue
                        # fork copies the descriptor: the sleep holds it from then on
                        exec 9<"$path" || continue
                        [ "$(readlink /dev/fd/9)" = "$id" ] || continue
                        sleep 1800 <&9 9<&- &
                        echo "$! $id" >> "$2/pins"
                done
        exec 9<&-
        awk '{ print $2 }' "$2/pins" > "$2/ns"
        _init=$(awk -v p="$1" '$3 == p { print $1; exit }' "$2/procs")
        : > "$2/run_ns"
        [ -z "$_init" ] || find /proc/"$_init"/ns -mindepth 1 -printf '%l\n' 2>/dev/null \
                | sort -u | comm -23 - "$2/own_ns" > "$2/run_ns"
        echo "$_init" > "$2/init"
}
release_pins() {
        [ -s "$1/pins" ] || return 0
        while read -r p _; do kill "$p" 2>/dev/null; done < "$1/pins"
        : > "$1/pins"
}

# has_own_ns DIR TYPE: the run's init is in a TYPE namespace (mnt, net, pid) that is not ours.
has_own_ns() { grep -q "^$2:\[" "$1/run_ns"; }
# saw DIR COMM-PREFIX: a recorded process's comm starts with COMM-PREFIX.
saw() { awk -v c="$2" 'index($4, c) == 1 { f = 1 } END { exit !f }' "$1/procs"; }

# left_of_run DIR: print what of the recorded run is still on the host, nothing when all is gone:
# a recorded process (same PID and start time), and any holder of a recorded namespace: a process
# or thread in it, an open file descriptor of it, an nsfs mount of it (`ip netns add` style) in
# any mount namespace.
left_of_run() {
        while read -r p st _ comm; do
                s=$(awk '{ s = $0; i = index(s, ") "); while (j = index(substr(s, i + 2), ") ")) i += j + 1
                           split(substr(s, i + 2), f, " "); print f[20] }' /proc/"$p"/stat 2>/dev/null)
                [ "$s" != "$st" ] || echo "process $p ($comm) is still there"
        done < "$1/procs"
        [ -s "$1/ns" ] || return 0
        sed 's/$/ /' "$1/ns" > "$1/ns_pat"
        awk '{ print " /proc/" $1 "/" }' "$1/pins" > "$1/pin_pat"
        find /proc/[0-9]*/ns /proc/[0-9]*/task/[0-9]*/ns -mindepth 1 -printf '%l %h\n' 2>/dev/null \
                | grep -F -f "$1/ns_pat" | sort -u -k1,1 | while read -r n h; do
                        h=${h%/ns}; echo "$n is held by process ${h#/proc/} ($(cat "$h/comm" 2>/dev/null))"
                done
        find /proc/[0-9]*/fd -mindepth 1 -printf '%l %p\n' 2>/dev/null | grep -F -f "$1/ns_pat" \
                | grep -v -F -f "$1/pin_pat" \
                | while read -r n h; do echo "$n is held open by $h"; done
        # one process per mount namespace is enough to see its mounts
        find /proc/[0-9]*/ns/mnt -printf '%l %h\n' 2>/dev/null | sort -u -k1,1 | while read -r _ h; do
                awk -v h="${h%/ns}" '$0 ~ / - nsfs / { print $4, "is mounted at", $5, "(mount table of", h ")" }' \
                        "${h%/ns}/mountinfo" 2>/dev/null
        done | grep -F -f "$1/ns_pat"
        return 0
}

# gone_within SECONDS DIR: wait until nothing of the recorded run is left; DIR/left then says
# what is (empty when all is gone).
gone_within() {
        _end=$(($(date +%s) + $1))
        while left_of_run "$2" > "$2/left" && [ -s "$2/left" ] && [ "$(date +%s)" -lt "$_end" ]; do
                sleep 1
        done
        [ ! -s "$2/left" ]
}

# kill_leftovers DIR: SIGKILL the recorded processes still there (the test's own run only), and
# drop the pins.
kill_leftovers() {
        release_pins "$1"
        [ -s "$1/procs" ] || return 0
        left_of_run "$1" | sed -n 's/^process \([0-9]*\) .*/\1/p' | while read -r p; do
                kill -KILL "$p" 2>/dev/null
        done
}

# The Lua half of the handshake: checkpoint() marks the run ready in $MOONRIG_TEST_MARKS and
# waits until the test has recorded it. Prepend to a test script.
lua_checkpoint() {
        cat <<'LUA'
local function checkpoint()
  local dir = assert(os.getenv("MOONRIG_TEST_MARKS"), "MOONRIG_TEST_MARKS is not set")
  assert(io.open(dir .. "/ready", "w")):close()
  for _ = 1, 3000 do
    local f = io.open(dir .. "/recorded")
    if f then f:close() return end
    sleep(0.1)
  end
  error("the test never recorded the run")
end
LUA
}

# The shell half: wait_ready SECONDS PID MARKS: true once the run under PID reached checkpoint(),
# false if it ended first or SECONDS passed.
wait_ready() {
        _t=$(($1 * 10))
        while [ "$_t" -gt 0 ] && [ ! -e "$3/ready" ] && kill -0 "$2" 2>/dev/null; do
                sleep 0.1; _t=$((_t - 1))
        done
        [ -e "$3/ready" ]
}

# watched_run DIR LOG CMD...: run CMD (a moonrig run of a script that calls checkpoint()) with its
# output in LOG, record it into DIR/rec when it reaches checkpoint(), and wait for its end; st is
# its exit status. False when it never reached checkpoint() (then it is killed, with what it
# started).
watched_run() {
        _d=$1 _log=$2; shift 2
        rm -rf "$_d/marks" "$_d/rec"; mkdir -p "$_d/marks" "$_d/rec"
        MOONRIG_TEST_MARKS=$_d/marks "$@" > "$_log" 2>&1 &
        _pid=$!
        if wait_ready 600 $_pid "$_d/marks"; then
                record_run $_pid "$_d/rec"
                touch "$_d/marks/recorded"
                wait $_pid; st=$?
                return 0
        fi
        record_run $_pid "$_d/rec"
        kill -KILL $_pid 2>/dev/null
        wait $_pid; st=$?
        kill_leftovers "$_d/rec"
        return 1
}

# nothing_left DIR WHAT: the check that nothing of the run recorded by watched_run is left once
# it ended (given a generous while for the kernel to tear it down); then drops the pins.
nothing_left() {
        if gone_within 60 "$1/rec"; then
                ok "$2: none of its $(wc -l < "$1/rec/procs") processes and $(wc -l < "$1/rec/ns") namespaces is left"
        else
                not_ok "$2: something of the run is left"
                sed 's/^/#   /' "$1/rec/left"
        fi
        kill_leftovers "$1/rec"
}
