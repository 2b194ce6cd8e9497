-- impair{} refuses values netem cannot take as usage errors, before anything reaches the kernel
-- (a negative rate used to be converted from a double to an integer: undefined behaviour).
local a = container "a" {}
expect.raises(function() a:impair{ rate = -1 } end, "a: impair: rate must be a finite number, not negative %(got %-1%)")
expect.raises(function() a:impair{ delay = 0/0 } end, "a: impair: delay must be a finite number")
expect.raises(function() a:impair{ loss = math.huge } end, "a: impair: loss must be a finite number")
expect.raises(function() a:impair{ jitter = "5" } end, "a: impair: jitter must be a number")
expect.raises(function() a:impair{ color = 1 } end, "a: impair: unknown key color")
