-- The request stream of one workload, for wrk. Every response that is not 2xx is counted, and
-- done() prints one BENCH_RESULT line of JSON that the harness reads.
-- Environment: BENCH_WORKLOAD (create | get | get_alone | lookup | list_start | list_deep | mix),
-- BENCH_ROWS (users seeded), BENCH_SEED_TAG (the tag of the seeded users' emails, user<n>.<tag>@...),
-- BENCH_TAG (unique per wrk run, so every POST carries an email never used before),
-- BENCH_TOKEN (a bearer access token every request carries, for users-api-auth; the others ignore it).

local workload = os.getenv("BENCH_WORKLOAD")
local rows = tonumber(os.getenv("BENCH_ROWS"))
local tag = os.getenv("BENCH_TAG")
local seed_tag = os.getenv("BENCH_SEED_TAG") or ""
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  created = 0
  math.randomseed(os.time() * 1000 + thread_id)
end

local json_headers = { ["Content-Type"] = "application/json" }
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
  json_headers["Authorization"] = "Bearer " .. token
end

local function create()
  created = created + 1
  local body = string.format('{"email":"b%s.%d.%d@example.com","name":"Bench User"}', tag, thread_id, created)
  return wrk.format("POST", "/users", json_headers, body)
end

local function get_one()
  return wrk.format("GET", "/users/" .. math.random(1, rows))
end

local function lookup()
  -- The seed's n-th user (users-api seed) has the email user<n-1>.<tag>@example.com.
  return wrk.format("GET", string.format("/users?email=user%d.%s%%40example.com", math.random(0, rows - 1), seed_tag))
end

local function list_start()
  return wrk.format("GET", "/users?limit=100&after=" .. math.random(0, 1000))
end

local function list_deep()
  return wrk.format("GET", "/users?limit=100&after=" .. math.random(rows - 1100, rows - 100))
end

local function mix()
  if math.random(1, 5) == 1 then
    return create()
  end
  return get_one()
end

local generators = {
  create = create, get = get_one, get_alone = get_one, lookup = lookup, list_start = list_start,
  list_deep = list_deep, mix = mix,
}
request = generators[workload]

function response(status, headers, body)
  if status < 200 or status > 299 or (workload == "lookup" and body == "[]") then
    bad = bad + 1  -- a lookup finds its seeded user: an empty answer is as wrong as an error
  end
end

function done(summary, latency, requests)
  local non2xx = 0
  for _, thread in ipairs(threads) do
    non2xx = non2xx + thread:get("bad")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(99), latency.max
  ))
end
