-- Apply one micro-batch of session-feature deltas and its Kafka offsets, atomically.
--
-- KEYS[1]: the offsets hash (`topic:partition` -> next offset to apply)
-- KEYS[2]: the product popularity sorted set
-- ARGV[1]: the batch, MessagePack (streaming/session/store.py builds it). Numbers travel
--          as strings, so Lua's doubles never round an id, a timestamp or a price.
--
-- A partition's deltas apply only if Redis records exactly the batch's first offset, or
-- records none and the processor expects none (part[4] == '1': it read the partition from
-- the start); then its offset moves to the batch's next. Anything else is fenced and
-- changes nothing: a replayed or zombie batch (Redis is past it), or Redis having lost
-- writes (behind it; -1 when it lost the offset altogether), and the processor seeks to
-- what Redis holds (the start for -1), so a Redis that lost data is rebuilt from Kafka.
-- User keys are built here, not declared in KEYS: a single Redis is assumed (no Cluster).
-- Returns {events applied, {fenced "topic:partition=stored", ...}}.

local batch = cmsgpack.unpack(ARGV[1])
local offsets, popularity = KEYS[1], KEYS[2]
local ttl, cap, purchases_cap = tonumber(batch.ttl), tonumber(batch.cap), tonumber(batch.purchases_cap)
local ttl_ms, trending_ttl = tonumber(batch.ttl_ms), tonumber(batch.trending_ttl)

local live, fenced = {}, {}
for index, part in ipairs(batch.parts) do
  local stored = redis.call('HGET', offsets, part[1])
  if stored == false then
    if part[4] == '1' then live[index] = true else fenced[#fenced + 1] = part[1] .. '=-1' end
  elseif tonumber(stored) == tonumber(part[2]) then
    live[index] = true
  else
    fenced[#fenced + 1] = part[1] .. '=' .. stored
  end
  if live[index] then redis.call('HSET', offsets, part[1], part[3]) end
end

local function features(user) return 'user:' .. user .. ':features' end
local function recent(user) return 'user:' .. user .. ':recent' end
local function sessions(user) return 'user:' .. user .. ':sessions' end
local function purchased(user) return 'user:' .. user .. ':purchased' end

local touched, applied = {}, 0
for _, row in ipairs(batch.users) do
  if live[row[1]] then
    local user, key = row[2], features(row[2])
    touched[user] = true
    applied = applied + tonumber(row[3])
    redis.call('HINCRBY', key, 'events', row[3])
    local seen = redis.call('HGET', key, 'last_seen')
    if not seen or tonumber(row[4]) > tonumber(seen) then
      redis.call('HSET', key, 'last_seen', row[4])
    end
    if row[5] ~= '' then
      local low = redis.call('HGET', key, 'price_min')
      if not low or tonumber(row[5]) < tonumber(low) then redis.call('HSET', key, 'price_min', row[5]) end
      local high = redis.call('HGET', key, 'price_max')
      if not high or tonumber(row[6]) > tonumber(high) then redis.call('HSET', key, 'price_max', row[6]) end
    end
  end
end
for _, row in ipairs(batch.products) do
  if live[row[1]] then
    redis.call('HINCRBYFLOAT', features(row[2]), 'p:' .. row[3], row[4])
    redis.call('ZADD', recent(row[2]), 'GT', row[5], row[3])
  end
end
for _, row in ipairs(batch.categories) do
  if live[row[1]] then redis.call('HINCRBYFLOAT', features(row[2]), 'c:' .. row[3], row[4]) end
end
for _, row in ipairs(batch.sessions) do
  if live[row[1]] then redis.call('ZADD', sessions(row[2]), 'GT', row[4], row[3]) end
end
for _, row in ipairs(batch.purchases) do
  if live[row[1]] then redis.call('ZADD', purchased(row[2]), 'GT', row[4], row[3]) end
end
for _, row in ipairs(batch.popularity) do
  if live[row[1]] then redis.call('ZINCRBY', popularity, row[3], row[2]) end
end
local hours = {}
for _, row in ipairs(batch.trending) do
  if live[row[1]] then
    local key = 'products:trending:' .. row[2]
    redis.call('ZINCRBY', key, row[4], row[3])
    hours[key] = true
  end
end
for key in pairs(hours) do redis.call('EXPIRE', key, trending_ttl) end

-- Per touched user: the caps, the session count, and the TTL of all four keys.
for user in pairs(touched) do
  local key, products = features(user), recent(user)
  local extra = redis.call('ZCARD', products) - cap
  if extra > 0 then
    local dropped = redis.call('ZRANGE', products, 0, extra - 1)
    for i = 1, #dropped do dropped[i] = 'p:' .. dropped[i] end
    for i = 1, #dropped, 1000 do
      redis.call('HDEL', key, unpack(dropped, i, math.min(i + 999, #dropped)))
    end
    redis.call('ZREMRANGEBYRANK', products, 0, extra - 1)
  end
  redis.call('ZREMRANGEBYRANK', purchased(user), 0, -(purchases_cap + 1))
  local cutoff = string.format('%.0f', tonumber(redis.call('HGET', key, 'last_seen')) - ttl_ms)
  redis.call('ZREMRANGEBYSCORE', sessions(user), '-inf', '(' .. cutoff)
  redis.call('HSET', key, 'session_count', redis.call('ZCOUNT', sessions(user), cutoff, '+inf'))
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', products, ttl)
  redis.call('EXPIRE', sessions(user), ttl)
  redis.call('EXPIRE', purchased(user), ttl)
end
return {applied, fenced}
