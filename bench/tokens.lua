-- wrk script for bench/tokens.sh: POST client_credentials token requests with HTTP Basic client
-- authentication (client_secret_basic) over keep-alive connections, count every response that
-- is not a 2xx carrying an access_token as a failure, and print the rate and latency
-- percentiles at the end.
--
--   BENCH_CLIENT_ID=... BENCH_CLIENT_SECRET=... \
--     wrk -t2 -c64 -d20s -s bench/tokens.lua http://127.0.0.1:PORT/token
--
-- Environment (or positional arguments after `--`: client_id client_secret [resource [scope]]):
--   BENCH_CLIENT_ID, BENCH_CLIENT_SECRET   the client's credentials (required)
--   BENCH_RESOURCE                         RFC 8707 resource (default https://api.example.com;
--                                          empty: none sent)
--   BENCH_SCOPE                            scope (default api:read; empty: none sent)
--
-- The last line printed is machine-readable:
--   RESULT rps=... p50_ms=... p90_ms=... p99_ms=... max_ms=... requests=... non2xx=...
--          bad_body=... socket_errors=...

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

local function setting(args, index, name, default)
  local value = args[index]
  if value == nil then value = os.getenv(name) end
  if value == nil then value = default end
  return value
end

-- ---------------------------------------------------------------- per-thread (request) side

function init(args)
  local id = setting(args, 1, "BENCH_CLIENT_ID", nil)
  local secret = setting(args, 2, "BENCH_CLIENT_SECRET", nil)
  if not id or id == "" or not secret or secret == "" then
    io.stderr:write("tokens.lua: set BENCH_CLIENT_ID and BENCH_CLIENT_SECRET\n")
    os.exit(2)
  end
  local resource = setting(args, 3, "BENCH_RESOURCE", "https://api.example.com")
  local scope = setting(args, 4, "BENCH_SCOPE", "api:read")

  local body = "grant_type=client_credentials"
  if resource ~= "" then body = body .. "&resource=" .. form_encode(resource) end
  if scope ~= "" then body = body .. "&scope=" .. form_encode(scope) end

  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Accept"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. base64(form_encode(id) .. ":" .. form_encode(secret))
  -- wrk builds the request once from these (no request() function: no per-request Lua).

  non2xx = 0
  bad_body = 0
  sample = ""
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if sample == "" then sample = "HTTP " .. status .. ": " .. tostring(body):sub(1, 300) end
  elseif not body or not body:find('"access_token"', 1, true) then
    bad_body = bad_body + 1
    if sample == "" then sample = "HTTP " .. status .. " without access_token: " .. tostring(body):sub(1, 300) end
  end
end

-- ---------------------------------------------------------------- main (summary) side

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local non2xx, bad, samples = 0, 0, {}
  for _, thread in ipairs(threads) do
    non2xx = non2xx + (thread:get("non2xx") or 0)
    bad = bad + (thread:get("bad_body") or 0)
    local s = thread:get("sample")
    if s and s ~= "" then samples[#samples + 1] = s end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local rps = summary.requests / seconds
  local function ms(us) return us / 1000 end
  local p50, p90, p99 = latency:percentile(50), latency:percentile(90), latency:percentile(99)

  io.write(string.format("tokens.lua: %d responses in %.2f s: %.1f/s\n", summary.requests, seconds, rps))
  io.write(string.format("tokens.lua: latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, mean %.3f ms\n",
    ms(p50), ms(p90), ms(p99), ms(latency.max), ms(latency.mean)))
  io.write(string.format("tokens.lua: failures: non-2xx %d, 2xx without access_token %d, " ..
    "socket errors %d (connect %d, read %d, write %d, timeout %d)\n",
    non2xx, bad, socket_errors, e.connect, e.read, e.write, e.timeout))
  for _, s in ipairs(samples) do
    io.write("tokens.lua: first failure seen by a thread: " .. s:gsub("\n", " ") .. "\n")
  end
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "requests=%d non2xx=%d bad_body=%d socket_errors=%d\n",
    rps, ms(p50), ms(p90), ms(p99), ms(latency.max), summary.requests, non2xx, bad, socket_errors))
end
