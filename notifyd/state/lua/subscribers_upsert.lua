-- Add or update many subscribers of one page, atomically, in one round trip.
--
-- KEYS[1] = the page's targets hash ((channel, target as indexed) -> seq)
-- KEYS[2] = the page's ids hash (subscriber id -> seq)
-- KEYS[3] = the page's seq counter
-- KEYS[4] = the set of pages
-- ARGV[1] = prefix of the page's record buckets (the bucket number is appended)
-- ARGV[2] = entries per bucket
-- ARGV[3] = the page's subscriber cap (0: none)
-- ARGV[4] = the page id
-- ARGV[5] = "1" to return each line's final record, "" to return only codes
-- ARGV[6] = the lines as one MessagePack array of strings, seven per line: channel, target as
--           indexed (a Slack hook: its keyed digest, never its URL),
--           given id ("" when none), generated id, given secret ("" when none), generated
--           secret ("" when none), and the record's other fields as a JSON object
--           ({"ch":..,"t":..,...}; no id, sec or dis). One argument, not seven per line:
--           packing thousands of arguments costs more than the script itself, and cmsgpack
--           unpacks it in C (a third faster than splitting a separated string in Lua).
-- ARGV[7] = the record fields an import line owns, comma-separated ("ch,t,comp,..."): an update
--           replaces those, keeps id, sec (unless the line gives one) and dis, and carries every
--           other field over (state that other features keep in the record)
--
-- The lines are read with one HMGET per index and written with one HSET per hash at the end
-- (a command per line costs more than the rest of the line's work in Lua).
--
-- Consent is sticky: a subscriber disabled by an opt-out (the "dis" reasons in OPT_OUT)
-- is left exactly as it is. Any other disabled state (quarantined, invalid_target) is kept
-- too: only an operator's reactivate clears it. A record's "id" never changes.
--
-- Returns one string: per line "code\30seq\30detail\30" (plus "record\30" when asked),
-- each line ending in "\n", where code is
--   "created", "updated" (detail: the id), "kept_unsubscribed" (detail: the opt-out reason),
--   "target_taken" (detail: the id the target is subscribed under),
--   "id_taken" (detail: the id), "page_full" (detail: the cap).

local OPT_OUT = {unsubscribed = true, endpoint_gone = true}

local targets, ids, seqkey, pages = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]
local per_bucket = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local page_id = ARGV[4]
local want_records = ARGV[5] == "1"
local out = {}
local created_any = false
-- Read once, kept here, written once at the end: the script runs alone.
local live = redis.call("hlen", targets)
local next_seq = tonumber(redis.call("get", seqkey) or "0")

local function bucket(seq)
    return prefix .. tostring(math.floor(seq / per_bucket))
end

local OWNED = {id = true, sec = true, dis = true}
for name in string.gmatch(ARGV[7], "[^,]+") do
    OWNED[name] = true
end

local function decode(raw)
    local ok, rec = pcall(cjson.decode, raw)
    if ok and type(rec) == "table" then
        return rec
    end
    return {}
end

local function text(v)
    if type(v) == "string" then
        return v
    end
    return nil
end

local function string_end(raw, i)
    -- raw[i] is the opening quote of a JSON string; the index of its closing quote.
    i = i + 1
    while true do
        local c = string.sub(raw, i, i)
        if c == "\\" then
            i = i + 2
        elseif c == '"' or c == "" then
            return i
        else
            i = i + 1
        end
    end
end

local function carried(raw, rec)
    -- The record's top-level fields that no line owns, as their exact JSON text (",k:v" each):
    -- decoding and re-encoding would turn an empty list into {} (cjson cannot tell them apart).
    -- rec is raw decoded: when it has no such field (the usual record), there is nothing to scan.
    local other = false
    for name in pairs(rec) do
        if not OWNED[name] then
            other = true
            break
        end
    end
    if not other then
        return ""
    end
    local out = {}
    local i = string.find(raw, "{", 1, true)
    if i == nil then
        return ""
    end
    i = i + 1
    while true do
        i = string.find(raw, '[%"}]', i)
        if i == nil or string.sub(raw, i, i) == "}" then
            break
        end
        local key_end = string_end(raw, i)
        local key = string.sub(raw, i, key_end)
        local j = string.find(raw, ":", key_end + 1, true) + 1
        local start, depth = j, 0
        while true do
            local c = string.sub(raw, j, j)
            if c == '"' then
                j = string_end(raw, j)
            elseif c == "{" or c == "[" then
                depth = depth + 1
            elseif c == "}" or c == "]" then
                if depth == 0 then
                    break
                end
                depth = depth - 1
            elseif (c == "," and depth == 0) or c == "" then
                break
            end
            j = j + 1
        end
        local name = cjson.decode(key)
        if not OWNED[name] then
            out[#out + 1] = "," .. key .. ":" .. string.sub(raw, start, j - 1)
        end
        i = j
    end
    return table.concat(out)
end

local function join(id, sec, dis, rest, extra)
    local s = '{"id":' .. cjson.encode(id) .. extra
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

local RS = "\30"
-- The lines, field by field (parallel arrays: no table per line).
local flat = cmsgpack.unpack(ARGV[6])
local chs, tgs, gids, mids, gsecs, msecs, rests, tkeys = {}, {}, {}, {}, {}, {}, {}, {}
local n = 0
for k = 1, #flat, 7 do
    n = n + 1
    local ch, tg = flat[k], flat[k + 1]
    chs[n], tgs[n], gids[n], mids[n] = ch, tg, flat[k + 2], flat[k + 3]
    gsecs[n], msecs[n], rests[n] = flat[k + 4], flat[k + 5], flat[k + 6]
    tkeys[n] = ch .. "\31" .. tg
end

-- Reads and writes in bulk: one HMGET per index for the whole batch, and the writes gathered
-- and sent once at the end. What this batch wrote is looked up here first, so a target or an
-- id given twice in one batch behaves as it would line by line.
local CHUNK = 1000 -- unpack() is bounded by Lua's C stack

local function hmget(key, fields)
    local found = {}
    for first = 1, #fields, CHUNK do
        local last = math.min(first + CHUNK - 1, #fields)
        local got = redis.call("hmget", key, unpack(fields, first, last))
        for k = 1, #got do
            found[first + k - 1] = got[k]
        end
    end
    return found
end

local function hset_all(key, pairs)
    for first = 1, #pairs, 2 * CHUNK do
        redis.call("hset", key, unpack(pairs, first, math.min(first + 2 * CHUNK - 1, #pairs)))
    end
end

local line_ids = {}
for i = 1, n do
    local id = gids[i]
    if id == "" then
        id = mids[i]
    end
    line_ids[i] = id
end
local stored_seq = hmget(targets, tkeys)
local stored_id = hmget(ids, line_ids)

local new_target, new_id = {}, {} -- written by this batch: tkey -> seq, id -> seq
local records = {} -- seq (string) -> record written by this batch
local target_writes, id_writes = {}, {}
local created = 0 -- entries in target_writes and id_writes
local bucket_writes, bucket_order = {}, {}

local last_bucket, last_key = nil, nil
local function write_record(seq, rec)
    local b = math.floor(tonumber(seq) / per_bucket)
    local key = last_key
    if b ~= last_bucket then
        key = prefix .. tostring(b)
        last_bucket, last_key = b, key
    end
    local w = bucket_writes[key]
    if w == nil then
        w = {}
        bucket_writes[key] = w
        bucket_order[#bucket_order + 1] = key
    end
    w[#w + 1] = seq
    w[#w + 1] = rec
    records[seq] = rec
end

for i = 1, n do
    local tkey = tkeys[i]
    local given_id, given_sec, rest = gids[i], gsecs[i], rests[i]
    local result
    local seq = new_target[tkey] or stored_seq[i]
    if seq then
        local raw = records[seq]
        if raw == nil then
            raw = redis.call("hget", bucket(tonumber(seq)), seq)
        end
        local cur = raw and decode(raw) or {}
        local cur_id = text(cur.id) or given_id
        if given_id ~= "" and given_id ~= cur_id then
            result = {"target_taken", seq, cur_id}
        elseif raw == false then
            result = {"target_taken", seq, ""}
        else
            local dis = text(cur.dis)
            if dis ~= nil and OPT_OUT[dis] then
                result = {"kept_unsubscribed", seq, dis}
                if want_records then
                    result[4] = raw
                end
            else
                local sec = given_sec
                if sec == "" then
                    sec = text(cur.sec)
                end
                local rec = join(cur_id, sec, dis, rest, carried(raw, cur))
                write_record(seq, rec)
                result = {"updated", seq, cur_id}
                if want_records then
                    result[4] = rec
                end
            end
        end
    else
        local id = line_ids[i]
        if new_id[id] or stored_id[i] then
            result = {"id_taken", "-", id}
        elseif cap > 0 and live >= cap then
            result = {"page_full", "-", tostring(cap)}
        else
            local s = tostring(next_seq)
            next_seq = next_seq + 1
            live = live + 1
            local sec = given_sec
            if sec == "" then
                sec = msecs[i]
            end
            local rec = join(id, sec, nil, rest, "")
            new_target[tkey] = s
            new_id[id] = s
            created = created + 2
            target_writes[created - 1] = tkey
            target_writes[created] = s
            id_writes[created - 1] = id
            id_writes[created] = s
            write_record(s, rec)
            created_any = true
            if want_records then
                result = {"created", s, id, rec}
            else
                out[i] = "created" .. RS .. s .. RS .. id .. RS -- the common line: no table
            end
        end
    end
    if result ~= nil then
        out[i] = table.concat(result, RS) .. RS
    end
end

hset_all(targets, target_writes)
hset_all(ids, id_writes)
for _, key in ipairs(bucket_order) do
    hset_all(key, bucket_writes[key])
end
if created_any then
    redis.call("set", seqkey, next_seq)
    redis.call("sadd", pages, page_id)
end
if #out == 0 then
    return ""
end
return table.concat(out, "\n") .. "\n"
