-- wrk script for bench/user-tokens.sh: the token requests that follow a user's sign-in, over
-- keep-alive connections, each a distinct single-use artifact handed out by the script. Every
-- response that is not the expected success counts as a failure; the rate and latency
-- percentiles are printed at the end, in the format of bench/tokens.lua.
--
--   BENCH_GRANT=refresh BENCH_SEEDS=seeds.txt BENCH_THREADS=2 BENCH_CLIENT_ID=... \
--     BENCH_CLIENT_SECRET=... wrk -t2 -c64 -d20s -s bench/user-tokens.lua http://HOST/token
--
-- BENCH_GRANT says what each request is:
--   refresh    POST grant_type=refresh_token with client_secret_basic. Refresh tokens rotate:
--              each answer carries a new one and the one sent is dead, so each thread keeps a
--              queue of live refresh tokens (first its share of BENCH_SEEDS), sends the oldest
--              and queues the one each answer brings. (wrk has no per-connection state, but a
--              thread-wide queue is as good: every token is sent exactly once.) Seed each thread
--              with more tokens than it has connections (+1: wrk builds one request before the
--              run to check it, whose token is never sent).
--   code       POST grant_type=authorization_code with the code_verifier BENCH_VERIFIER and the
--              redirect_uri BENCH_REDIRECT_URI, with client_secret_basic: each request takes the
--              next code of the thread's share of BENCH_CODES (codes are single-use).
--   authorize  GET the URL given to wrk (an authorization request) with the Cookie header
--              BENCH_COOKIE (a signed-in session): each answer must be a redirect whose Location
--              carries a code. With BENCH_CODES_OUT, thread i appends the codes to
--              BENCH_CODES_OUT.i, one per line (a pool for `code`).
-- The files hold one artifact per line; thread i (from 0) of BENCH_THREADS takes lines i+1,
-- i+1+BENCH_THREADS, ... A thread that runs out stops early and reports it (exhausted=1): the
-- pool was too small, and the rate of that run does not count.
--
-- The last line printed is machine-readable:
--   RESULT rps=... p50_ms=... p90_ms=... p99_ms=... max_ms=... requests=... non2xx=...
--          bad_body=... socket_errors=... exhausted=... codes=...
-- non2xx counts answers with an unexpected status (for authorize: anything but a redirect with a
-- code), bad_body 2xx answers without the expected tokens, codes the codes written out.

local grant = os.getenv("BENCH_GRANT") or ""

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for k = 1, 4 do
      local v = math.floor(n / 2 ^ (6 * (4 - k))) % 64
      chars[k] = B64:sub(v + 1, v + 1)
    end
    if not b then chars[3] = "=" end
    if not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

-- application/x-www-form-urlencoded, as RFC 6749 section 2.3.1 asks of the Basic credentials too.
local function form_encode(s)
  return (s:gsub("[^%w%-%._~]", function(ch)
    return string.format("%%%02X", ch:byte())
  end))
end

local function url_decode(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function need(name)
  local value = os.getenv(name)
  if not value or value == "" then
    io.stderr:write("user-tokens.lua: set " .. name .. "\n")
    os.exit(2)
  end
  return value
end

-- ---------------------------------------------------------------- per-thread (request) side

-- A FIFO queue of artifacts: this thread's share of a file.
local queue, head, tail = {}, 1, 0
local function push(v) tail = tail + 1; queue[tail] = v end
local function pop()
  if head > tail then return nil end
  local v = queue[head]
  queue[head] = nil
  head = head + 1
  return v
end

local function load_share(path)
  local threads = tonumber(need("BENCH_THREADS"))
  local file, err = io.open(path, "r")
  if not file then
    io.stderr:write("user-tokens.lua: " .. tostring(err) .. "\n")
    os.exit(2)
  end
  local n = 0
  for line in file:lines() do
    if line ~= "" then
      if n % threads == id then push(line) end
      n = n + 1
    end
  end
  file:close()
end

local prefix -- the request up to its Content-Length value
local body_prefix -- the form up to the artifact
local out, written = nil, 0

function init(args)
  id = id or 0
  non2xx, bad_body, exhausted, codes, sample = 0, 0, 0, 0, ""
  if grant == "authorize" then
    wrk.method = "GET"
    wrk.headers["Cookie"] = need("BENCH_COOKIE")
    wrk.headers["Accept"] = "text/html"
    local path = os.getenv("BENCH_CODES_OUT")
    if path and path ~= "" then out = assert(io.open(path .. "." .. id, "w")) end
    return -- a static request: wrk builds it once
  end
  local basic = "Basic " .. base64(form_encode(need("BENCH_CLIENT_ID")) .. ":" ..
    form_encode(need("BENCH_CLIENT_SECRET")))
  if grant == "refresh" then
    load_share(need("BENCH_SEEDS"))
    body_prefix = "grant_type=refresh_token&refresh_token="
  elseif grant == "code" then
    load_share(need("BENCH_CODES"))
    body_prefix = "grant_type=authorization_code&redirect_uri=" ..
      form_encode(need("BENCH_REDIRECT_URI")) .. "&code_verifier=" ..
      form_encode(need("BENCH_VERIFIER")) .. "&code="
  else
    io.stderr:write("user-tokens.lua: BENCH_GRANT must be refresh, code or authorize\n")
    os.exit(2)
  end
  prefix = "POST " .. wrk.path .. " HTTP/1.1\r\n" ..
    "Host: " .. wrk.headers["Host"] .. "\r\n" ..
    "Authorization: " .. basic .. "\r\n" ..
    "Content-Type: application/x-www-form-urlencoded\r\n" ..
    "Accept: application/json\r\n" ..
    "Content-Length: "
end

if grant ~= "authorize" then
  function request()
    local artifact = pop()
    if not artifact then
      -- Out of artifacts: stop this thread; this one request (with a value no server knows)
      -- may still go out, and its answer is not counted.
      if exhausted == 0 then wrk.thread:stop() end
      exhausted = 1
      artifact = "exhausted"
    end
    local body = body_prefix .. form_encode(artifact)
    return prefix .. #body .. "\r\n\r\n" .. body
  end
end

local function failed(status, why, body)
  if sample == "" then sample = "HTTP " .. status .. why .. ": " .. tostring(body):sub(1, 300) end
end

function response(status, headers, body)
  if exhausted ~= 0 then return end
  if grant == "authorize" then
    local location = headers["Location"] or headers["location"] or ""
    local code = location:match("[?&]code=([^&#]+)")
    if (status == 302 or status == 303) and code then
      if out then
        out:write(url_decode(code), "\n")
        codes = codes + 1
      end
    else
      non2xx = non2xx + 1
      failed(status, " without a code (Location " .. location:sub(1, 200) .. ")", body)
    end
    return
  end
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    failed(status, "", body)
  elseif not body:find('"access_token"', 1, true) or not body:find('"id_token"', 1, true) then
    bad_body = bad_body + 1
    failed(status, " without access_token and id_token", body)
  elseif grant == "refresh" then
    local next_token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if next_token then
      push(next_token)
    else
      bad_body = bad_body + 1
      failed(status, " without a refresh_token", body)
    end
  end
end

-- ---------------------------------------------------------------- main (summary) side

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local non2xx, bad, exhausted, codes, samples = 0, 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    non2xx = non2xx + (thread:get("non2xx") or 0)
    bad = bad + (thread:get("bad_body") or 0)
    exhausted = exhausted + (thread:get("exhausted") or 0)
    codes = codes + (thread:get("codes") or 0)
    local s = thread:get("sample")
    if s and s ~= "" then samples[#samples + 1] = s end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local rps = summary.requests / seconds
  local function ms(us) return us / 1000 end
  local p50, p90, p99 = latency:percentile(50), latency:percentile(90), latency:percentile(99)

  io.write(string.format("user-tokens.lua: %s: %d responses in %.2f s: %.1f/s\n", grant,
    summary.requests, seconds, rps))
  io.write(string.format("user-tokens.lua: latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, mean %.3f ms\n",
    ms(p50), ms(p90), ms(p99), ms(latency.max), ms(latency.mean)))
  io.write(string.format("user-tokens.lua: failures: unexpected status %d, success without the tokens %d, " ..
    "socket errors %d (connect %d, read %d, write %d, timeout %d)\n",
    non2xx, bad, socket_errors, e.connect, e.read, e.write, e.timeout))
  if exhausted > 0 then
    io.write(string.format("user-tokens.lua: %d thread(s) ran out of artifacts and stopped early\n", exhausted))
  end
  if grant == "authorize" and codes > 0 then
    io.write(string.format("user-tokens.lua: %d codes written\n", codes))
  end
  for _, s in ipairs(samples) do
    io.write("user-tokens.lua: first failure seen by a thread: " .. s:gsub("\n", " ") .. "\n")
  end
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "requests=%d non2xx=%d bad_body=%d socket_errors=%d exhausted=%d codes=%d\n",
    rps, ms(p50), ms(p90), ms(p99), ms(latency.max), summary.requests, non2xx, bad,
    socket_errors, exhausted, codes))
end
