-- Claim due jobs for a while (a lease): a worker that dies mid-job leaves it to come due again.
--
-- KEYS[1] = the schedule (sorted set: job id scored by due time, epoch seconds)
-- ARGV[1] = now, ARGV[2] = lease in seconds, ARGV[3] = how many jobs at most
-- Returns the claimed job ids; each now scores now + lease until done or rescheduled.

local now = tonumber(ARGV[1])
local due = redis.call("zrangebyscore", KEYS[1], "-inf", now, "LIMIT", 0, tonumber(ARGV[3]))
for _, job in ipairs(due) do
    redis.call("zadd", KEYS[1], "XX", now + tonumber(ARGV[2]), job)
end
return due
