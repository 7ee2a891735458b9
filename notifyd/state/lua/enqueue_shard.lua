-- Enqueue one shard message of an event at most once, atomically with the mark that says so.
--
-- KEYS[1] = the event's enqueued-shards bitmap, KEYS[2] = the lane queue's message hash,
-- KEYS[3] = the lane queue (list)  -- dramatiq's Redis layout (see notifyd/state/queues.py)
-- ARGV[1] = shard number, ARGV[2] = ttl in seconds, ARGV[3] = redis message id, ARGV[4] = message
-- Returns 1 when it enqueued, 0 when the shard had been enqueued before.
-- The mark and the message are written together: no crash can leave one without the other.
if redis.call("setbit", KEYS[1], tonumber(ARGV[1]), 1) == 1 then
    return 0
end
redis.call("expire", KEYS[1], tonumber(ARGV[2]))
redis.call("hset", KEYS[2], ARGV[3], ARGV[4])
redis.call("rpush", KEYS[3], ARGV[3])
return 1
