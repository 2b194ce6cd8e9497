-- core.lua: failures, expect, subtest, retry, polling_condition and nested: the part of the
-- runtime that reads best in Lua. Loaded first; `internal` is the C side's private table: each
-- C file's functions in a sub-table (internal.sched, internal.log, internal.node, internal.net,
-- internal.container, internal.vm), this file's helpers for the other modules beside them.
local internal = ...
local sched = internal.sched

-- The stdlib's modules, each a table of what the next ones use (node, net, container, vm),
-- in the order Makefile.am's STDLIB_FILES loads them.
internal.modules = {}

local fmt, concat, pack, unpack = string.format, table.concat, table.pack, table.unpack

---------------------------------------------------------------------------------------------
-- Failures: error objects with a kind, a message and details.

local Failure = {}
Failure.__index = Failure
Failure.__name = "Failure"

local DETAIL_FIELDS = { "node", "command", "status", "unit", "timeout" }

function Failure.__tostring(f)
  local out = { (f.kind or "Failure") .. ": " .. tostring(f.message) }
  for _, k in ipairs(DETAIL_FIELDS) do
    if f[k] ~= nil then out[#out + 1] = fmt("  %s: %s", k, tostring(f[k])) end
  end
  if f.output and #f.output > 0 then
    out[#out + 1] = "  output (last lines):"
    local tail = f.output
    local lines = {}
    for line in tail:gmatch("[^\n]*") do lines[#lines + 1] = line end
    while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
    for i = math.max(1, #lines - 9), #lines do out[#out + 1] = "    " .. lines[i] end
  end
  return concat(out, "\n")
end

local function failure(kind, message, details)
  local f = setmetatable({ kind = kind, message = message }, Failure)
  if details then for k, v in pairs(details) do f[k] = v end end
  return f
end

local function is_failure(v) return getmetatable(v) == Failure end

sched.set_failure_constructor(failure)
internal.failure = failure
internal.is_failure = is_failure

-- Raise a failure from Lua; level-less, the frames are captured when the task dies.
local function fail_with(kind, message, details)
  error(failure(kind, message, details), 0)
end
internal.fail_with = fail_with

-- Message handler for xpcall: make the error a failure that remembers the frames where it
-- was raised, before the stack unwinds.
local function capture(e)
  if e == internal.STOP then return e end
  if not is_failure(e) then e = failure("Error", tostring(e)) end
  if not e.frames then
    local frames, level = {}, 2
    while true do
      local info = debug.getinfo(level, "Sln")
      if not info then break end
      frames[#frames + 1] = { source = info.source, line = info.currentline, name = info.name,
                              linedefined = info.linedefined }
      level = level + 1
    end
    e.frames = frames
  end
  return e
end
internal.capture = capture

-- The message of any error value, for logs.
local function error_message(e)
  if is_failure(e) then return tostring(e.message) end
  return tostring(e)
end
internal.error_message = error_message

-- CLOCK_MONOTONIC in seconds, for every module.
internal.now = sched.now

---------------------------------------------------------------------------------------------
-- User coroutines keep working when the runner yields inside them: the runner's yields
-- carry a tag, and resume() passes tagged yields up to the scheduler and the answer back.

do
  local TAG = sched.yield_tag()
  local co_create, co_resume, co_yield, co_status =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status

  local function pass(co, ok, first, ...)
    if ok and first == TAG and co_status(co) == "suspended" then
      return pass(co, co_resume(co, co_yield(TAG)))
    end
    return ok, first, ...
  end

  coroutine.resume = function(co, ...)
    return pass(co, co_resume(co, ...))
  end

  coroutine.wrap = function(f)
    local co = co_create(f)
    return function(...)
      local r = pack(coroutine.resume(co, ...))
      if not r[1] then
        local e = r[2]
        if type(e) == "string" then error(e, 2) end
        error(e, 0)
      end
      return unpack(r, 2, r.n)
    end
  end
end

---------------------------------------------------------------------------------------------
-- Rendering values for messages.

local function repr(v, depth, seen)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    if #v > 200 then return fmt("%q... (%d bytes)", v:sub(1, 200), #v) end
    return fmt("%q", v)
  elseif t ~= "table" or is_failure(v) then
    return tostring(v)
  end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  if depth > 4 then return "{...}" end
  seen[v] = true
  local parts, n = {}, 0
  for i = 1, #v do parts[#parts + 1] = repr(v[i], depth + 1, seen); n = i end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local ks = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or "[" .. repr(k) .. "]"
    parts[#parts + 1] = ks .. " = " .. repr(v[k], depth + 1, seen)
  end
  seen[v] = nil
  return "{ " .. concat(parts, ", ") .. (#parts > 0 and " }" or "}")
end
internal.repr = repr

-- Deep equality; on a difference returns false and the path where it was found.
local function deep_eq(a, b, path, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false, path end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    local ok, where = deep_eq(v, b[k], path .. "[" .. repr(k) .. "]", seen)
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "[" .. repr(k) .. "]" end
  end
  return true
end

---------------------------------------------------------------------------------------------
-- expect: assertions whose failures are test failures.

local expect = {}

local function expect_fail(what, msg, detail)
  local m = what
  if msg then m = msg .. ": " .. what end
  if detail then m = m .. "\n" .. detail end
  fail_with("TestFailure", m)
end

function expect.eq(a, b, msg)
  local ok, where = deep_eq(a, b, "")
  if ok then return a end
  local detail = fmt("  first:  %s\n  second: %s", repr(a), repr(b))
  if where and where ~= "" then
    detail = detail .. fmt("\n  they differ at %s", where)
  end
  expect_fail("expected values to be equal", msg, detail)
end

function expect.ne(a, b, msg)
  if not deep_eq(a, b, "") then return a end
  expect_fail("expected values to differ", msg, fmt("  both: %s", repr(a)))
end

function expect.match(s, pattern, msg)
  if type(s) ~= "string" then
    expect_fail(fmt("expected a string to match %q, got %s", pattern, repr(s)), msg)
  end
  local r = pack(s:find(pattern))
  if r[1] then return unpack(r, 3, r.n) end
  expect_fail(fmt("expected %s to match pattern %q", repr(s), pattern), msg)
end

function expect.contains(haystack, needle, msg)
  if type(haystack) == "string" then
    if haystack:find(needle, 1, true) then return true end
    expect_fail(fmt("expected %s to contain %s", repr(haystack), repr(needle)), msg)
  elseif type(haystack) == "table" then
    for _, v in pairs(haystack) do
      if deep_eq(v, needle, "") then return true end
    end
    expect_fail(fmt("expected %s to contain %s", repr(haystack), repr(needle)), msg)
  end
  expect_fail(fmt("expect.contains needs a string or a table, got %s", type(haystack)), msg)
end

function expect.truthy(v, msg)
  if v then return v end
  expect_fail(fmt("expected a true value, got %s", repr(v)), msg)
end

function expect.falsy(v, msg)
  if not v then return v end
  expect_fail(fmt("expected a false value, got %s", repr(v)), msg)
end

function expect.raises(fn, pattern, msg)
  local r = pack(pcall(fn))
  if r[1] then
    expect_fail("expected an error, but the function returned normally", msg)
  end
  local e = r[2]
  if pattern then
    local text = is_failure(e) and tostring(e.message) or tostring(e)
    if not text:find(pattern) and not text:find(pattern, 1, true) then
      expect_fail(fmt("expected an error matching %q, got %s", pattern, repr(text)), msg)
    end
  end
  return e
end

setmetatable(expect, {
  __call = function(_, v, msg) return expect.truthy(v, msg) end,
})

---------------------------------------------------------------------------------------------
-- Logging helpers built on the C logger.

local clog = internal.log

local function nested(msg, fn, machine)
  local start = clog.nested_begin(machine, msg)
  local r = pack(fn())
  clog.nested_end(machine, msg, start)
  return unpack(r, 1, r.n)
end
internal.nested = nested

log = {
  info = function(msg) clog.info(tostring(msg)) end,
  warning = function(msg) clog.warning(tostring(msg)) end,
  warn = function(msg) clog.warning(tostring(msg)) end,
  error = function(msg) clog.error(tostring(msg)) end,
  debug = function(msg) clog.debug(tostring(msg)) end,
  log = function(msg) clog.message(nil, tostring(msg)) end,
  nested = function(msg, fn) return nested(msg, fn) end,
}
setmetatable(log, { __call = function(_, msg) clog.message(nil, tostring(msg)) end })

function nested_log(msg, fn) return nested(msg, fn) end
_G.nested = function(msg, fn) return nested(msg, fn) end

---------------------------------------------------------------------------------------------
-- subtest: a nested block and a JUnit test case; a failure is logged and raised again.

function subtest(name, fn)
  if type(name) ~= "string" then error("subtest: the first argument must be the name", 2) end
  if type(fn) ~= "function" then error("subtest: the second argument must be a function", 2) end
  local start = clog.subtest_begin(name)
  local r = pack(xpcall(fn, capture))
  if not r[1] then
    clog.test_error(fmt('Test "%s" failed with error: "%s"', name, error_message(r[2])))
    clog.subtest_end(name, start, false)
    error(r[2], 0)
  end
  clog.subtest_end(name, start, true)
  return unpack(r, 2, r.n)
end

---------------------------------------------------------------------------------------------
-- retry: call fn(last_try) until it returns a true value or the time is up.

local function opt_timeout(opts, default)
  if opts == nil then return default end
  if type(opts) == "number" then return opts end
  if type(opts) ~= "table" then error("expected an options table such as { timeout = 10 }", 3) end
  if opts.timeout == nil then return default end
  if type(opts.timeout) ~= "number" or opts.timeout < 0 then
    error("timeout must be a non-negative number of seconds", 3)
  end
  return opts.timeout
end
internal.opt_timeout = opt_timeout

local DEFAULT_TIMEOUT = 900

function retry(fn, opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  local interval = type(opts) == "table" and opts.interval or nil
  local start = internal.now()
  local pause = interval or 0.05
  while internal.now() - start < timeout do
    local r = pack(fn(false))
    if r[1] then return unpack(r, 1, r.n) end
    local left = timeout - (internal.now() - start)
    if left <= 0 then break end
    sleep(math.min(pause, left))
    if not interval then pause = math.min(pause * 2, 1.0) end
  end
  local r = pack(fn(true))
  if r[1] then return unpack(r, 1, r.n) end
  fail_with("Timeout", fmt("action timed out after %.2f seconds (timeout=%g)",
    internal.now() - start, timeout), { timeout = timeout })
end

---------------------------------------------------------------------------------------------
-- polling_condition: a check that must keep holding while a block runs; it is run before
-- every command on every node (at most once per interval).

local conditions = {}   -- the active ones, innermost last
internal.polling_conditions = conditions

local Poll = {}
Poll.__index = Poll

local function poll_check(c, force)
  if c.busy then return end
  local now = internal.now()
  if not force and c.last and now - c.last < c.interval then return end
  c.busy = true
  local ok, passed = nested(fmt("Checking polling condition '%s'", c.description), function()
    if c.last then
      clog.message(nil, fmt("Time since last: %.2fs", now - c.last))
    else
      clog.message(nil, "(not called yet)")
    end
    local ok, res = pcall(c.fn)
    local passed = ok and res ~= false
    clog.message(nil, fmt("Polling condition %s: %s", passed and "succeeded" or "failed",
      c.description))
    return ok, passed
  end)
  c.busy = false
  c.last = internal.now()
  return passed
end

function Poll:check()
  if poll_check(self, true) == false then
    fail_with("PollingConditionError", "Polling condition failed: " .. self.description)
  end
end

function Poll:guard(block)
  conditions[#conditions + 1] = self
  local r = pack(xpcall(block, capture))
  assert(conditions[#conditions] == self, "polling conditions must be left in LIFO order")
  conditions[#conditions] = nil
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end
Poll.__call = Poll.guard

function Poll:wait(opts)
  local timeout = opt_timeout(opts, DEFAULT_TIMEOUT)
  return nested("waiting for " .. self.description, function()
    return retry(function(last)
      if last then clog.message(nil, "Last chance for " .. self.description) end
      local ok = poll_check(self, true)
      if not ok then clog.message(nil, fmt("(%s failure not fatal yet)", self.description)) end
      return ok
    end, { timeout = timeout })
  end)
end

function polling_condition(fn, opts)
  if type(fn) == "table" and opts == nil then
    -- polling_condition{ interval = 1 }(fn): the decorator form
    local o = fn
    return function(f) return polling_condition(f, o) end
  end
  if type(fn) ~= "function" then error("polling_condition: expected a function", 2) end
  opts = opts or {}
  local info = debug.getinfo(fn, "S")
  local c = setmetatable({
    fn = fn,
    interval = opts.interval or opts.seconds_interval or 2,
    description = opts.description or
      fmt("condition at %s:%d", (info.short_src or "?"), info.linedefined or 0),
  }, Poll)
  return c
end

-- Called by node commands before they run.
function internal.check_polling_conditions()
  for i = 1, #conditions do
    local c = conditions[i]
    if poll_check(c, false) == false then
      fail_with("PollingConditionError", "Polling condition failed: " .. c.description)
    end
  end
end

_G.expect = expect
-- CLOCK_MONOTONIC in seconds: the clock systemd's *TimestampMonotonic properties use.
_G.monotonic_time = internal.now
_G.failure = failure

---------------------------------------------------------------------------------------------
-- Interactive mode (moonrig -I) runs the script once to take its node declarations: the first
-- action (a wait, a node command, a subtest) stops that pass with internal.STOP. test_script()
-- then runs the whole script, and declaring a node that exists returns it.

local STOP = setmetatable({}, { __tostring = function() return "declarations taken" end })
internal.STOP = STOP
internal.declaring = false

function internal.action()
  if internal.declaring then error(STOP, 0) end
end

do
  local c_sleep, c_parallel = sleep, parallel
  function sleep(seconds) internal.action(); return c_sleep(seconds) end
  function parallel(...) internal.action(); return c_parallel(...) end
  local lua_subtest, lua_retry, lua_nested = subtest, retry, _G.nested
  function subtest(...) internal.action(); return lua_subtest(...) end
  function retry(...) internal.action(); return lua_retry(...) end
  _G.nested = function(...) internal.action(); return lua_nested(...) end
end
