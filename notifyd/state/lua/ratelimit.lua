-- SPDX-License-Identifier: MIT
-- Derived from limits (https://github.com/alisaifee/limits), acquire_moving_window.lua.
-- Copyright (c) 2023 Ali-Akber Saifee. Permission is hereby granted, free of charge, to any person
-- obtaining a copy of this software and associated documentation files (the "Software"), to deal in
-- the Software without restriction, including without limitation the rights to use, copy, modify,
-- merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to
-- whom the Software is furnished to do so, subject to the following conditions: The above copyright
-- notice and this permission notice shall be included in all copies or substantial portions of the
-- Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED. See NOTICE.
--
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
