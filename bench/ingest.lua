-- wrk script: POST realistic CMS deltas to /notifications, one fresh body per request.
-- Shapes follow the CMS contract: fragrance_id in 0..4999, description and forbidden
-- always, name and cost each about half the time. At the end it prints one JSON line.

local words = {"Amber", "Musk", "Citrus", "Vetiver", "Oud", "Iris", "Neroli", "Cedar",
               "Vanilla", "Tonka", "Bergamot", "Jasmine", "Patchouli", "Rose", "Saffron"}
local notes = {"Produced from animals", "Distilled from petals", "Synthetic accord",
               "Cold pressed peel", "Resin from old trees", "Smoked over birch"}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

local function pick(list)
  return list[math.random(#list)]
end

request = function()
  local id = math.random(0, 4999)
  local parts = {'{"fragrance_id": ' .. id}
  if math.random() < 0.5 then
    parts[#parts + 1] = '"name": "' .. pick(words) .. pick(words) .. 'HOOOOOOOOOOLAAA"'
  end
  parts[#parts + 1] = '"description": "' .. pick(notes) .. ', ' .. pick(words):lower() ..
    ' and ' .. pick(words):lower() .. ' ' .. math.random(1, 99999) .. '  "'
  if math.random() < 0.5 then
    parts[#parts + 1] = '"cost": ' .. math.random(5, 110)
  end
  parts[#parts + 1] = '"forbidden": ' .. (math.random() < 0.5 and 'true' or 'false')
  local body = table.concat(parts, ', ') .. '}'
  return wrk.format("POST", "/notifications",
    {["Content-Type"] = "application/json", ["User-Agent"] = "bench-wrk"}, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
