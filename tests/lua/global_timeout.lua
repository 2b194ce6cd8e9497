-- expect-exit: 4
-- args: --global-timeout 0.5
-- expect-output: timeout reached; test terminating...
-- expect-output: waiting for sleep 30.00 s, at
-- expect-output: global_timeout.lua:7

sleep(30)
