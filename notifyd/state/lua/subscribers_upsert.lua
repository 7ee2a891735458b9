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
-- ARGV[6] = the lines, each ending in "\n", with seven fields each ending in "\30" (RS):
--           channel, target, given id ("" when none), generated id, given secret ("" when none),
--           generated secret ("" when none), and the record's other fields as a JSON object
--           ({"ch":..,"t":..,...}; no id, sec or dis). One argument, not seven per line:
--           packing thousands of arguments costs more than the script itself.
-- ARGV[7] = the record fields an import line owns, comma-separated ("ch,t,comp,..."): an update
--           replaces those, keeps id, sec (unless the line gives one) and dis, and carries every
--           other field over (state that other features keep in the record)
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

local function carried(raw)
    -- The record's top-level fields that no line owns, as their exact JSON text (",k:v" each):
    -- decoding and re-encoding would turn an empty list into {} (cjson cannot tell them apart).
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
local blob = ARGV[6]
local pos = 1
local f = {}
while pos <= #blob do
    for k = 1, 7 do
        local stop = string.find(blob, RS, pos, true)
        f[k] = string.sub(blob, pos, stop - 1)
        pos = stop + 1
    end
    pos = pos + 1 -- the line's "\n"
    local tkey = f[1] .. "\31" .. f[2]
    local given_id, gen_id, given_sec, gen_sec, rest = f[3], f[4], f[5], f[6], f[7]
    local result
    local seq = redis.call("hget", targets, tkey)
    if seq then
        local key = bucket(tonumber(seq))
        local raw = redis.call("hget", key, seq)
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
                local rec = join(cur_id, sec, dis, rest, carried(raw))
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
            result = {"id_taken", "-", id}
        elseif cap > 0 and live >= cap then
            result = {"page_full", "-", tostring(cap)}
        else
            local n = next_seq
            next_seq = next_seq + 1
            live = live + 1
            local sec = given_sec
            if sec == "" then
                sec = gen_sec
            end
            local rec = join(id, sec, nil, rest, "")
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
    out[#out + 1] = table.concat(result, RS) .. RS
end

if created_any then
    redis.call("set", seqkey, next_seq)
    redis.call("sadd", pages, page_id)
end
if #out == 0 then
    return ""
end
return table.concat(out, "\n") .. "\n"
