-- prelude.lua: the one node a contract script runs against, of the kind run.sh asks for
-- (MOONRIG_CONTRACT_KIND=container|vm). It is called "n" on every kind, so that messages and
-- failure fields compare exactly: one contract, not one per backend.
local kind = os.getenv("MOONRIG_CONTRACT_KIND") or "container"
local n
if kind == "container" then
  n = container "n" {}
elseif kind == "vm" then
  local K = os.getenv("MOONRIG_VM_CACHE") or "/var/cache/moonrig-vm"
  n = vm "n" { kernel = K .. "/vmlinuz", initrd = K .. "/initrd.img",
               append = "console=tty0 console=ttyS0 panic=-1 quiet" }
else
  error("MOONRIG_CONTRACT_KIND must be container or vm, got " .. kind, 0)
end
expect.eq(n.kind, kind)
return n
