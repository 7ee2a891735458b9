-- Delivery tracking transitions, atomically with the event's counters.
--
-- KEYS[1] = event hash, KEYS[2] = event's done-shards bitmap, KEYS[3..] = delivery bucket hashes
-- ARGV[1] = mode: "plan" | "record" | "redrive" | "provider_failed" | "shard_done"
-- ARGV[2] = ttl in seconds for the keys written, ARGV[3] = now (epoch seconds)
-- plan / record / redrive: ARGV[4..] = triples of (index into KEYS, field, value)
-- shard_done: ARGV[4] = shard number
--
-- A record's first character is its status. Counters move with every
-- transition, so a shard that runs twice cannot count twice. Final statuses
-- are sticky, except that "redrive" may move "failed" back to "pending", and
-- "provider_failed" may move "delivered" (handed to the provider) to "failed"
-- when the provider reports later that it could not deliver.
-- Returns the previous record of every triple ("" when there was none).

local NAMES = {
    p = "pending", d = "delivered", r = "retrying", f = "failed", l = "rate_limited", s = "suppressed",
    w = "deferred", g = "digested", x = "superseded",
}
-- "deferred" waits for a digest; it is not final. ("rate_limited" is kept for records written
-- before the rate limit deferred.)
local FINAL = {d = true, f = true, l = true, s = true, g = true, x = true}

local ev = KEYS[1]
local mode = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = ARGV[3]
local out = {}

if mode == "shard_done" then
    if redis.call("setbit", KEYS[2], tonumber(ARGV[4]), 1) == 0 then
        redis.call("hincrby", ev, "shards_done", 1)
    end
    redis.call("expire", KEYS[2], ttl)
else
    local touched = {}
    local delta = {}
    for i = 4, #ARGV, 3 do
        local key = KEYS[tonumber(ARGV[i])]
        local field = ARGV[i + 1]
        local value = ARGV[i + 2]
        local old = redis.call("hget", key, field)
        local old_s = old and string.sub(old, 1, 1) or nil
        local new_s = string.sub(value, 1, 1)
        local write = false
        if mode == "plan" then
            write = not old
        elseif mode == "redrive" then
            write = old_s == "f"
        elseif mode == "provider_failed" then
            write = old_s == "d"
        else
            write = (not old_s) or (not FINAL[old_s])
        end
        if write then
            redis.call("hset", key, field, value)
            local from = old_s and NAMES[old_s] or "planned"
            delta[from] = (delta[from] or 0) + (old_s and -1 or 1)
            delta[NAMES[new_s]] = (delta[NAMES[new_s]] or 0) + 1
            -- A subscriber filter's reason is counted per event: "s0,3|filter:min_impact".
            local reason = new_s == "s" and string.match(value, "|filter:([%w_]+)")
            if reason then
                delta["filtered:" .. reason] = (delta["filtered:" .. reason] or 0) + 1
            end
            touched[key] = true
        end
        out[#out + 1] = old or ""
    end
    -- One HINCRBY per counter rather than two per delivery.
    for name, n in pairs(delta) do
        if n ~= 0 then
            redis.call("hincrby", ev, name, n)
        end
    end
    for key, _ in pairs(touched) do
        redis.call("expire", key, ttl)
    end
end

-- An event is done once every shard has run and nothing is pending, retrying or deferred.
local h = redis.call("hmget", ev, "shards_total", "shards_done", "pending", "retrying", "finished_at", "deferred")
if h[1] and tonumber(h[2] or "0") >= tonumber(h[1]) and tonumber(h[3] or "0") == 0 and tonumber(h[4] or "0") == 0
    and tonumber(h[6] or "0") == 0 then
    if not h[5] then
        redis.call("hset", ev, "finished_at", now)
        -- Every delivery ended and none failed, so nothing will render this event again (only a
        -- failed delivery can be redriven): keep the record and its counters for the event-id
        -- TTL, and drop the body, which is most of the event's memory (up to 64 KiB).
        if tonumber(redis.call("hget", ev, "failed") or "0") == 0 then
            redis.call("hdel", ev, "body")
        end
    end
elseif h[5] then
    redis.call("hdel", ev, "finished_at")
end
return out
