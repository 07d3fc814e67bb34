-- wrk script template for one benchmark scenario: bench/run.py fills in the placeholders
-- (Python string.Template syntax) and writes the script among the run's files under bench/results/.
--
-- Every response whose status is not EXPECTED counts as unexpected. done() prints one line,
-- "BENCH_RESULT {json}", that run.py parses. With IDS_FILE set, each request uses the next id of
-- that file (thread i of N takes lines i+1, i+1+N, ...); once this thread's ids are exhausted it
-- requests a nil UUID, which the server answers with 404: an unexpected status.

local EXPECTED = ${expected}
local PATH = ${path}
local IDS_FILE = ${ids_file}
local NTHREADS = ${nthreads}
local EXHAUSTED_ID = "00000000-0000-0000-0000-000000000000"

wrk.method = ${method}
wrk.path = PATH
wrk.body = ${body}
for name, value in pairs(${headers}) do
   wrk.headers[name] = value
end

local threads = {}

function setup(thread)
   thread:set("tindex", #threads)
   table.insert(threads, thread)
end

function init(args)
   unexpected = 0
   statuses = {}
   ids = {}
   next_id = 1
   if IDS_FILE then
      local line_no = 0
      for line in io.lines(IDS_FILE) do
         if line_no % NTHREADS == tindex then
            table.insert(ids, line)
         end
         line_no = line_no + 1
      end
   end
end

if IDS_FILE then
   function request()
      local id = ids[next_id] or EXHAUSTED_ID
      next_id = next_id + 1
      return wrk.format(nil, string.format(PATH, id))
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status ~= EXPECTED then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local total_unexpected, counts = 0, {}
   for _, thread in ipairs(threads) do
      total_unexpected = total_unexpected + thread:get("unexpected")
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(counts) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, '
      .. '"unexpected": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      total_unexpected, e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
