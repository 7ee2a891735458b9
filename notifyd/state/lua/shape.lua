-- Provider send rates: reserve send times on a virtual schedule (GCRA), for many keys at once.
--
-- KEYS[i]  = a shaping key (one provider sender, relay, or Slack webhook/channel)
-- ARGV[1]  = now, in milliseconds since the epoch
-- ARGV[1 + 2i - 1] = the key's interval between sends, in milliseconds (1000 / rate)
-- ARGV[1 + 2i]     = how many sends to reserve on it
--
-- Each key holds the time its next free slot starts (its "theoretical arrival time").
-- A reservation of n sends takes the slots tat, tat + interval, ... and moves tat past
-- them. Returns, per key, the time of its first reserved slot (ms); the caller spaces
-- the others by the interval. Nothing is refused: a send over the rate waits its turn.

local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
    local interval = tonumber(ARGV[2 * i])
    local n = tonumber(ARGV[2 * i + 1])
    local tat = tonumber(redis.call("get", KEYS[i]) or "0")
    if tat < now then
        tat = now
    end
    out[i] = tostring(tat)
    local next_tat = tat + n * interval
    redis.call("set", KEYS[i], tostring(next_tat), "px", math.ceil(next_tat - now) + 1000)
end
return out
