#!/bin/sh
# repl_nodes.sh: `moonrig -I` with a declared container, as root, through a pseudo-terminal
# (tests/integration/pty_expect): the prompt has the node as a global and in nodes, the script's
# body does not run before test_script(), start_all() and commands work at the prompt, and Ctrl-D
# exits 0 with nothing left running.
# Usage: MOONRIG=build/moonrig PTY_EXPECT=build/tests/integration/pty_expect sh tests/integration/repl_nodes.sh
set -u
moonrig=${MOONRIG:-./moonrig}
pty_expect=${PTY_EXPECT:-tests/integration/pty_expect}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP root: containers need root"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/repl-nodes.lua" <<'LUA'
local box = container "my-box" { files = { ["/etc/greeting"] = "hello from the box\n" } }
start_all()
box:succeed("touch /tmp/body-ran")
LUA
cd "$tmp" && NO_COLOR=1 "$pty_expect" 300 "$moonrig" -I repl-nodes.lua <<'STEPS'
expect moonrig> 
send print(my_box.name, nodes["my-box"] == my_box, #nodes)
expect my-box	true	1
expect moonrig> 
send start_all()
expect moonrig> 
send print(my_box:succeed("cat /etc/greeting"))
expect hello from the box
expect moonrig> 
send print(my_box:execute("test -e /tmp/body-ran"))
expect 1		
expect moonrig> 
send test_script()
expect moonrig> 
send print(my_box:execute("test -e /tmp/body-ran"))
expect 0		
expect moonrig> 
send my_box:succeed("false")
expect command `false` failed (exit code 1)
expect moonrig> 
eof
exit 0
STEPS
