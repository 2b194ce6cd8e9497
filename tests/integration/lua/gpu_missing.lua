-- gpu = true on a host without NVIDIA device nodes: a HostError (exit 3) that names /dev/nvidia
-- and says what to do, before anything boots.
-- expect-exit: 3
-- expect-output: HostError: gpu: gpu = true, but this host has no NVIDIA device nodes (/dev/nvidia*)
-- expect-output: load the NVIDIA driver on the host or drop gpu = true
-- reject-output: gpu: starting container
local f = io.open("/dev/nvidiactl", "rb")
if f then
  -- This host has a GPU: the test cannot show the error here; fail loudly rather than pass.
  f:close()
  error("this host has /dev/nvidiactl: gpu_missing.lua only makes sense on a host without NVIDIA devices")
end
local gpu = container "gpu" { gpu = true }
gpu:start()
