-- wrk requests for tests/bench/bench_tracker.sh. Every mode cycles
-- through requests formatted once in init(), so wrk does the same little
-- work per request whatever the target.
--   BENCH_WRK_MODE=peers     GET /api/bootstrap/peers (close: the same)
--   BENCH_WRK_MODE=discover  GET /api/bootstrap/discover?repos=repo/I,repo/J
--                            for 100 pairs of the 100 benchmark repositories
--   BENCH_WRK_MODE=announce  opentracker: HTTP announces of 10,000 peers of
--                            one torrent, compact, numwant=32
local mode = os.getenv("BENCH_WRK_MODE") or "peers"
local reqs = {}
local i = 0

-- The info hash 0123456789abcdef0123456789abcdef01234567, URL-encoded.
local info_hash = "%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg"

function init(args)
  if mode == "announce" then
    for n = 0, 9999 do
      reqs[#reqs + 1] = wrk.format("GET", string.format(
        "/announce?info_hash=%s&peer_id=-GV0001-%012d&port=%d" ..
        "&uploaded=0&downloaded=0&left=0&compact=1&numwant=32",
        info_hash, n, 10000 + n))
    end
  elseif mode == "discover" then
    for n = 0, 99 do
      reqs[#reqs + 1] = wrk.format("GET", string.format(
        "/api/bootstrap/discover?repos=repo/%d,repo/%d", n, (n + 1) % 100))
    end
  else
    reqs[1] = wrk.format("GET", "/api/bootstrap/peers")
  end
  -- Threads start at different places in the cycle.
  i = math.random(#reqs) - 1
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
