-- Contract: copy_from_host and copy_from_machine carry a file (every byte, its mode) and a
-- small tree there and back exactly.
local n = dofile((SCRIPT_PATH:match("^(.*)/") or ".") .. "/prelude.lua")
local host = io.popen("mktemp -d /tmp/moonrig-contract.XXXXXX"):read("l")
local ok, err = pcall(function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local content = table.concat(bytes) .. "\nend\n"
  local f = assert(io.open(host .. "/data.bin", "wb"))
  f:write(content)
  f:close()
  assert(os.execute("chmod 0640 " .. host .. "/data.bin && mkdir -p " .. host .. "/tree/sub"
    .. " && printf 'deep\\n' > " .. host .. "/tree/sub/f && chmod 0755 " .. host .. "/tree/sub/f"))

  -- host -> node
  n:copy_from_host(host .. "/data.bin", "/root/contract/data.bin")
  expect.eq(n:succeed("cat /root/contract/data.bin"), content)
  expect.eq(n:succeed("stat -c %a /root/contract/data.bin"), "640\n")
  n:copy_from_host(host .. "/tree", "/root/contract/tree")
  expect.eq(n:succeed("cat /root/contract/tree/sub/f && stat -c %a /root/contract/tree/sub/f"), "deep\n755\n")

  -- node -> host (into the output directory), the same bytes back
  n:succeed("printf 'from\\0node\\n' >> /root/contract/data.bin")
  n:copy_from_machine("/root/contract/data.bin", { target_dir = "contract-back" })
  f = assert(io.open(OUTPUT_DIR .. "/contract-back/data.bin", "rb"))
  expect.eq(f:read("a"), content .. "from\0node\n")
  f:close()
  n:copy_from_machine("/root/contract/tree", { target_dir = "contract-back" })
  f = assert(io.open(OUTPUT_DIR .. "/contract-back/tree/sub/f", "rb"))
  expect.eq(f:read("a"), "deep\n")
  f:close()
  local p = io.popen("stat -c %a '" .. OUTPUT_DIR .. "/contract-back/tree/sub/f' '"
    .. OUTPUT_DIR .. "/contract-back/data.bin'")
  expect.eq(p:read("a"), "755\n640\n")
  p:close()
end)
os.execute("rm -rf '" .. host .. "' '" .. OUTPUT_DIR .. "/contract-back'")
if not ok then error(err, 0) end
