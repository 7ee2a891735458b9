-- Add or update many subscribers of one page, atomically, in one round trip.
--
-- KEYS[1] = the page's targets hash ((channel, target) -> seq)
-- KEYS[2] = the page's ids hash (subscriber id -> seq)
-- KEYS[3] = the page's seq counter
-- KEYS[4] = the set of pages
-- ARGV[1] = prefix of the page's record buckets (the bucket number is appended)
-- ARGV[2] = entries per bucket
-- ARGV[3] = the page's subscriber cap (0: none)
-- ARGV[4] = the page id
-- ARGV[5] = "1" to return each line's final record, "" to return only codes
-- ARGV[6..] = six per line: target key, given id ("" when none), generated id,
--             given secret ("" when none), generated secret ("" when none),
--             the record's other fields as a JSON object ({"ch":..,"t":..,...}, no id/sec/dis)
--
-- Consent is sticky: a subscriber disabled by an opt-out (the "dis" reasons in OPT_OUT)
-- is left exactly as it is. Any other disabled state (quarantined, invalid_target) is kept
-- too: only an operator's reactivate clears it. A record's "id" never changes.
--
-- Returns per line: {code, seq, detail[, record]} where code is
--   "created", "updated", "kept_unsubscribed" (detail: the opt-out reason),
--   "target_taken" (detail: the id the target is subscribed under),
--   "id_taken", "page_full" (detail: the cap).

local OPT_OUT = {unsubscribed = true, endpoint_gone = true}

local targets, ids, seqkey, pages = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]
local per_bucket = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local page_id = ARGV[4]
local want_records = ARGV[5] == "1"
local out = {}
local created_any = false

local function bucket(seq)
    return prefix .. tostring(math.floor(seq / per_bucket))
end

local function field(raw, name)
    -- One top-level string field of a record, without decoding the rest.
    local ok, rec = pcall(cjson.decode, raw)
    if ok and type(rec) == "table" then
        local v = rec[name]
        if type(v) == "string" then
            return v
        end
    end
    return nil
end

local function join(id, sec, dis, rest)
    local s = '{"id":' .. cjson.encode(id)
    if sec ~= nil and sec ~= "" then
        s = s .. ',"sec":' .. cjson.encode(sec)
    end
    if dis ~= nil then
        s = s .. ',"dis":' .. cjson.encode(dis)
    end
    if #rest > 2 then
        s = s .. "," .. string.sub(rest, 2)
    else
        s = s .. "}"
    end
    return s
end

for i = 6, #ARGV, 6 do
    local tkey, given_id, gen_id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local given_sec, gen_sec, rest = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    local result
    local seq = redis.call("hget", targets, tkey)
    if seq then
        local key = bucket(tonumber(seq))
        local raw = redis.call("hget", key, seq)
        local cur_id = raw and field(raw, "id") or given_id
        if given_id ~= "" and given_id ~= cur_id then
            result = {"target_taken", seq, cur_id}
        elseif raw == false then
            result = {"target_taken", seq, ""}
        else
            local dis = field(raw, "dis")
            if dis ~= nil and OPT_OUT[dis] then
                result = {"kept_unsubscribed", seq, dis}
                if want_records then
                    result[4] = raw
                end
            else
                local sec = given_sec
                if sec == "" then
                    sec = field(raw, "sec")
                end
                local rec = join(cur_id, sec, dis, rest)
                redis.call("hset", key, seq, rec)
                result = {"updated", seq, cur_id}
                if want_records then
                    result[4] = rec
                end
            end
        end
    else
        local id = given_id
        if id == "" then
            id = gen_id
        end
        if redis.call("hexists", ids, id) == 1 then
            result = {"id_taken", "", id}
        elseif cap > 0 and redis.call("hlen", targets) >= cap then
            result = {"page_full", "", tostring(cap)}
        else
            local n = redis.call("incr", seqkey) - 1
            local sec = given_sec
            if sec == "" then
                sec = gen_sec
            end
            local rec = join(id, sec, nil, rest)
            redis.call("hset", targets, tkey, n)
            redis.call("hset", ids, id, n)
            redis.call("hset", bucket(n), n, rec)
            created_any = true
            result = {"created", tostring(n), id}
            if want_records then
                result[4] = rec
            end
        end
    end
    out[#out + 1] = result
end

if created_any then
    redis.call("sadd", pages, page_id)
end
return out
