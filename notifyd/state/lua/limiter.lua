-- The compact rate limiter: N hits per moving window per (subscriber, channel), a whole shard per call.
--
-- A subscriber's seq names one (page, channel, target), so one field per seq is one
-- (subscriber, channel). Its value is the times of its recent hits, each a 4-byte big-endian
-- count of deciseconds since ARGV[1]'s epoch, oldest first: 4 bytes per hit instead of a
-- `limits` list per subscriber (~216 B). Fields live in per-bucket hashes of 128 seqs, which
-- Redis keeps as listpacks while values stay under 64 bytes (N <= 16).
--
-- KEYS = bucket hashes, one per item (repeats allowed)
-- ARGV[1] = now in deciseconds since the epoch the caller chose, ARGV[2] = limit N,
-- ARGV[3] = window in deciseconds, ARGV[4] = key TTL in seconds,
-- ARGV[4 + i] = "<op><field>" for KEYS[i]: op "h" takes a slot if one is free,
-- "f" takes one even when the window is full (a digest or a resolve that must go out),
-- "p" only peeks.
-- Returns per item 0 when the hit was allowed (or, for "p", a slot is free), otherwise the time
-- (same unit) at which the oldest hit in the window expires and a slot opens.
--
-- Semantics follow limits' moving window (acquire_moving_window.lua): a hit is allowed when
-- fewer than N hits happened in the last window.

local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local out = {}

for i, key in ipairs(KEYS) do
    local spec = ARGV[4 + i]
    local op = string.sub(spec, 1, 1)
    local field = string.sub(spec, 2)
    local raw = redis.call("hget", key, field)
    local kept = {}
    if raw then
        for j = 1, #raw - 3, 4 do
            local t = struct.unpack(">I4", raw, j)
            if t > now - window then
                kept[#kept + 1] = t
            end
        end
    end
    local full = #kept >= limit
    if op == "p" then
        out[i] = full and (kept[#kept - limit + 1] + window) or 0
    else
        if full and op == "h" then
            out[i] = kept[#kept - limit + 1] + window
        else
            kept[#kept + 1] = now
            out[i] = 0
        end
        -- Keep only the newest N: older ones can never decide anything again.
        local first = math.max(1, #kept - limit + 1)
        local parts = {}
        for j = first, #kept do
            parts[#parts + 1] = struct.pack(">I4", kept[j])
        end
        redis.call("hset", key, field, table.concat(parts))
        redis.call("expire", key, ttl)
    end
end
return out
