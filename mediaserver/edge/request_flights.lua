-- Request flights: identical concurrent requests reaching the edge make one origin request,
-- and the others are answered from the cache as soon as it lands.
--
-- nginx's own proxy_cache_lock collapses them too, but its waiters look again every
-- 500 ms (ngx_http_file_cache.c), so with LL-HLS every student but the first got the next
-- part or blocking playlist up to half a second late. Here the first request of a key
-- (across every worker: a shared dict) goes on to the proxy and its cache; the others in
-- its worker wait on a semaphore it posts when its answer is complete, and in another
-- worker the first waiter watches the shared entry every WATCH_SECONDS and wakes its own.
-- Woken, a waiter goes on to the proxy, which finds the answer in the cache. An answer
-- that is not kept (an error, a refusal) leaves the waiters to ask the origin themselves,
-- as nginx's lock does.
--
-- Embedded by mediaserver/edge/nginx_config.py into the configuration it makes
-- (init_by_lua_block), so the edge needs no file but nginx.conf. One chunk returning the
-- module; the `waiting` table is per worker (each worker has its own Lua state).

local semaphore = require "ngx.semaphore"

local WATCH_SECONDS = 0.005

local flights = ngx.shared.academia_flights -- key -> true while one request is upstream
local waiting = {} -- this worker: key -> {sema, count}

local function release(key, flight)
    if waiting[key] == flight then
        waiting[key] = nil
    end
    if flight.count > 0 then
        flight.sema:post(flight.count)
        flight.count = 0
    end
end

local M = {}

-- Access phase: go on at once (the first of `key`, or nothing to collapse), or once the
-- first has landed, or after `hold` seconds at most.
function M.board(key, hold)
    if key == nil or key == "" then
        return
    end
    local flight = waiting[key]
    if flight then
        flight.count = flight.count + 1
        flight.sema:wait(hold)
        return
    end
    flight = { sema = semaphore.new(), count = 0 }
    waiting[key] = flight
    if flights:add(key, true, hold) then
        ngx.ctx.academia_flight = flight
        ngx.ctx.academia_flight_key = key
        return
    end
    -- Another worker's request is upstream: watch for its landing.
    local deadline = ngx.now() + hold
    while flights:get(key) and ngx.now() < deadline do
        ngx.sleep(WATCH_SECONDS)
    end
    release(key, flight)
end

-- The first request's answer is complete (the end of its body, or the log phase when it
-- ended early): the waiters go on. Does nothing for any other request.
function M.land()
    local flight = ngx.ctx.academia_flight
    if not flight then
        return
    end
    ngx.ctx.academia_flight = nil
    local key = ngx.ctx.academia_flight_key
    flights:delete(key)
    release(key, flight)
end

return M
