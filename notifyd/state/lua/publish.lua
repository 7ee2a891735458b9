-- Accept an event durably, or say why not, in one atomic step.
--
-- KEYS[1] = event hash, KEYS[2] = dedup-key marker ("" when the event has no dedup_key),
-- KEYS[3] = queue list, KEYS[4] = queue messages hash (dramatiq's Redis layout),
-- KEYS[5] = the set of pages that took this event id (an index for reads; see keys.event_pages),
-- KEYS[6] = the event id's record from before records were kept per page (keys.event of the bare id)
-- KEYS[7] = the page's latest events (keys.page_events), KEYS[8] = every page's (keys.recent_events)
-- ARGV[1] = event-id TTL (s), ARGV[2] = dedup window (s), ARGV[3] = now (epoch seconds),
-- ARGV[4] = event JSON, ARGV[5] = page_id, ARGV[6] = type, ARGV[7] = priority,
-- ARGV[8] = queue message id, ARGV[9] = encoded dramatiq message, ARGV[10] = event_id,
-- ARGV[11] = the event's ref, ARGV[12] = events kept in KEYS[7], ARGV[13] = events kept in KEYS[8]
--
-- KEYS[1] is the event's record under its page (keys.event of the event's ref): the same
-- event id on another page is another event, never a duplicate of this one.
--
-- The queue message is written in the same script as the event record, so an
-- accepted event is always enqueued and a crash can never leave an event that
-- is marked seen but will never be delivered.
--
-- The record keeps the queue message id ("msg"): the same publish run again (the client
-- retried after a lost reply) answers what the first run did, not "duplicate".

local ttl = tonumber(ARGV[1])
if redis.call("exists", KEYS[1]) == 1 then
    local first = redis.call("hmget", KEYS[1], "msg", "state")
    if first[1] == ARGV[8] then
        if first[2] == "deduplicated" then
            return "deduplicated"
        end
        return "accepted"
    end
    return "duplicate"
end
-- Accepted before the upgrade, for this page: a publisher's retry is still a duplicate.
if redis.call("hget", KEYS[6], "page_id") == ARGV[5] then
    return "duplicate"
end

local function index()
    redis.call("sadd", KEYS[5], ARGV[5])
    redis.call("expire", KEYS[5], ttl)
end

local fields = {"body", ARGV[4], "page_id", ARGV[5], "type", ARGV[6], "priority", ARGV[7],
                "accepted_at", ARGV[3], "msg", ARGV[8]}

if KEYS[2] ~= "" then
    local taken = redis.call("set", KEYS[2], ARGV[10], "NX", "EX", tonumber(ARGV[2]))
    if not taken then
        -- Nothing will ever render a deduplicated event: keep its record, not its body.
        redis.call("hset", KEYS[1], "state", "deduplicated", "finished_at", ARGV[3], unpack(fields, 3))
        redis.call("expire", KEYS[1], ttl)
        index()
        return "deduplicated"
    end
end

redis.call("hset", KEYS[1], unpack(fields))
redis.call("expire", KEYS[1], ttl)
index()
-- Listed as soon as it is accepted, while it still waits for ingest, and whether or not its
-- page has subscribers: the queue view and a subscriber's recent deliveries read these lists.
redis.call("zadd", KEYS[7], ARGV[3], ARGV[11])
redis.call("zremrangebyrank", KEYS[7], 0, -tonumber(ARGV[12]) - 1)
redis.call("zadd", KEYS[8], ARGV[3], ARGV[11])
redis.call("zremrangebyrank", KEYS[8], 0, -tonumber(ARGV[13]) - 1)
redis.call("hset", KEYS[4], ARGV[8], ARGV[9])
redis.call("rpush", KEYS[3], ARGV[8])
return "accepted"
