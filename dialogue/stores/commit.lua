-- One atomic commit of a conversation step (see dialogue/stores/redis.py for the key layout).
--
-- KEYS  1 state hash   2 turns list   3 profile hash   4 hand-off hash   5 events stream
--       6 hand-off stream   7..9 hand-off status sets (pending, claimed, released)
-- ARGV  1 commit id   2 hand-off last changed (ms)   3 conversation TTL (s)   4 profile TTL (s)   5 stream max length
--       6 consumer group   7 state JSON ('' = none)   8 state version   9 profile JSON ('' = none)
--       10 profile version   11 hand-off JSON ('' = none)   12 hand-off version   13 hand-off status
--       14 hand-off id   15 conversation id   16 hand-off created (ms)   17 number of turns
--       then the turns, then the number of events, then (type, conversation id, data) per event
--
-- Returns 'OK', 'DUP' (this commit id was already applied), or 'CONFLICT <what> <stored version>'.
-- Every check runs before the first write, so a refused commit writes nothing.

local commit_id = ARGV[1]
local items = {}
if ARGV[7] ~= '' then table.insert(items, {'conversation', KEYS[1], tonumber(ARGV[8])}) end
if ARGV[9] ~= '' then table.insert(items, {'profile', KEYS[3], tonumber(ARGV[10])}) end
if ARGV[11] ~= '' then table.insert(items, {'hand-off', KEYS[4], tonumber(ARGV[12])}) end

local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

for _, item in ipairs(items) do
  local t = key_type(item[2])
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('CORRUPT ' .. item[1] .. ' key holds a ' .. t)
  end
end
for _, spec in ipairs({{KEYS[2], 'list'}, {KEYS[5], 'stream'}, {KEYS[6], 'stream'}}) do
  local t = key_type(spec[1])
  if t ~= spec[2] and t ~= 'none' then
    return redis.error_reply('CORRUPT ' .. spec[1] .. ' holds a ' .. t)
  end
end

if #items > 0 then
  local first = redis.call('HMGET', items[1][2], 'v', 'c')
  if tonumber(first[1] or '0') == items[1][3] and first[2] == commit_id then
    return 'DUP'
  end
end
for _, item in ipairs(items) do
  local stored = tonumber(redis.call('HGET', item[2], 'v') or '0')
  if stored ~= item[3] - 1 then
    return 'CONFLICT ' .. item[1] .. ' ' .. stored
  end
end

local conv_ttl = tonumber(ARGV[3])
local n_turns = tonumber(ARGV[17])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[8], 'd', ARGV[7], 'c', commit_id)
  redis.call('EXPIRE', KEYS[1], conv_ttl)
  if n_turns > 0 then
    redis.call('RPUSH', KEYS[2], unpack(ARGV, 18, 17 + n_turns))
  end
  redis.call('EXPIRE', KEYS[2], conv_ttl)
end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[3], 'v', ARGV[10], 'd', ARGV[9], 'c', commit_id)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
end
if ARGV[11] ~= '' then
  local id, status = ARGV[14], ARGV[13]
  redis.call('HSET', KEYS[4], 'v', ARGV[12], 'd', ARGV[11], 'c', commit_id)
  redis.call('EXPIRE', KEYS[4], conv_ttl)
  if tonumber(ARGV[12]) == 1 then
    redis.pcall('XGROUP', 'CREATE', KEYS[6], ARGV[6], '0', 'MKSTREAM')
    local sid = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'handoff_id', id, 'conversation_id', ARGV[15])
    redis.call('HSET', KEYS[4], 'sid', sid)
  elseif status ~= 'pending' then
    local sid = redis.call('HGET', KEYS[4], 'sid')
    if sid then redis.call('XACK', KEYS[6], ARGV[6], sid) end
  end
  local horizon = tonumber(ARGV[2]) - conv_ttl * 1000
  for i, key in ipairs({KEYS[7], KEYS[8], KEYS[9]}) do
    redis.call('ZREM', key, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', horizon)
  end
  local by_status = {pending = KEYS[7], claimed = KEYS[8], released = KEYS[9]}
  redis.call('ZADD', by_status[status], ARGV[16], id)
end

local at = 18 + n_turns
local n_events = tonumber(ARGV[at])
for i = 0, n_events - 1 do
  local base = at + 1 + i * 3
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*',
             'type', ARGV[base], 'conversation_id', ARGV[base + 1], 'data', ARGV[base + 2])
end
return 'OK'
