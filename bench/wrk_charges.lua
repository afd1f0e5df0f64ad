-- wrk script for bench.wrk_load: POST /charges, each request charging the next card of one batch.
-- Arguments (after `--`): token, batch letter, first card offset, cards in the batch, amount, currency, threads.
-- Thread i of T charges card numbers offset+i, offset+i+T, ... (wrapping past the batch: those are declined).
-- Each thread counts the requests it made, the statuses it got and the answers per wall-clock second;
-- `done` prints them with wrk's latency percentiles as one JSON line starting with "WRK_JSON ".

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  token, batch = args[1], args[2]
  offset, cards = tonumber(args[3]), tonumber(args[4])
  amount, currency, stride = tonumber(args[5]), args[6], tonumber(args[7])
  headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  sent, statuses, per_second = 0, {}, {}
end

function request()
  local number = (offset + sent * stride + index) % cards + 1
  sent = sent + 1
  local body = string.format('{"card_id":"card_%s%023d","amount":%d,"currency":"%s"}', batch, number, amount, currency)
  return wrk.format("POST", "/charges", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local second = os.time()
  per_second[second] = (per_second[second] or 0) + 1
end

local function object(t)
  local parts = {}
  for k, v in pairs(t) do table.insert(parts, string.format('"%s":%d', tostring(k), v)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local per_thread = {}
  for _, thread in ipairs(threads) do
    table.insert(per_thread, string.format('{"sent":%d,"statuses":%s,"per_second":%s}',
      thread:get("sent"), object(thread:get("statuses")), object(thread:get("per_second"))))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"answered":%d,"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"mean":%f,"max":%d},"threads":[%s]}\n',
    summary.duration, summary.requests, errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max,
    table.concat(per_thread, ",")))
end
