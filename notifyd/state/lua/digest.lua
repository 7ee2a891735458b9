-- Deferred deliveries waiting for a subscriber's digest, atomically with the digest's due job.
--
-- KEYS[1] = the schedule (sorted set of job ids by due time), KEYS[2..] = pending hashes
-- ARGV[1] = mode: "defer" | "finish" | "pending"
-- defer:  ARGV[2..] = fives of (index into KEYS, event id, what it is about, due epoch s, job id);
--         the job keeps the earliest due time it was given (ZADD LT).
-- finish: ARGV[2] = now, ARGV[3] = job id, ARGV[4..] = event ids the digest carried (KEYS[2]).
--         They leave the pending hash; if nothing is left the job is done, otherwise (items
--         came in while the digest was out) it is due again now, and the limit decides when.
-- pending: no more ARGV; returns, per pending hash, 1 if it exists (the subscriber has deferred
--         deliveries), else 0.

local mode = ARGV[1]
if mode == "pending" then
    local out = {}
    for i = 2, #KEYS do
        out[i - 1] = redis.call("exists", KEYS[i])
    end
    return out
end
if mode == "defer" then
    for i = 2, #ARGV, 5 do
        redis.call("hset", KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
        redis.call("zadd", KEYS[1], "LT", tonumber(ARGV[i + 3]), ARGV[i + 4])
    end
    return 1
end

local key = KEYS[2]
for i = 4, #ARGV do
    redis.call("hdel", key, ARGV[i])
end
if redis.call("hlen", key) == 0 then
    redis.call("zrem", KEYS[1], ARGV[3])
    return 0
end
redis.call("zadd", KEYS[1], tonumber(ARGV[2]), ARGV[3])
return 1
