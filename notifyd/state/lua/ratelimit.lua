-- limits' moving-window acquire (acquire_moving_window.lua, amount 1), over a whole shard at once.
--
-- KEYS = the rate-limit lists, as limits names them; one per (subscriber, channel), repeats allowed.
-- ARGV[1] = now (epoch seconds, float), ARGV[2] = limit, ARGV[3] = expiry in seconds
-- Returns 1 where the hit was allowed and 0 where the window was full, in KEYS order.
-- The list layout is limits' own, so its get_window_stats reads the same numbers.

local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local out = {}

for i, key in ipairs(KEYS) do
    local entry = redis.call("lindex", key, limit - 1)
    if entry and tonumber(entry) >= timestamp - expiry then
        out[i] = 0
    else
        redis.call("lpush", key, ARGV[1])
        redis.call("ltrim", key, 0, limit - 1)
        redis.call("expire", key, expiry)
        out[i] = 1
    end
end
return out
