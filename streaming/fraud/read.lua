-- Everything a batch of decisions needs, in one command: per payment, whether its id was
-- decided, the holder's profile, and the holder's and the device's payments of the week
-- before it (newest first, capped). One command rather than four per payment: the
-- client's cost is per command, Redis's per key.
--
-- KEYS: per payment 4 keys: decision, profile, holder set, device set
-- ARGV[1] most members per set; then per payment its event time (ms) and the oldest
local limit = tonumber(ARGV[1])
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local key, newest, oldest = i * 4, ARGV[2 + i * 2], ARGV[3 + i * 2]
  out[#out + 1] = redis.call('GET', KEYS[key + 1])
  out[#out + 1] = redis.call('GET', KEYS[key + 2])
  out[#out + 1] = redis.call('ZREVRANGEBYSCORE', KEYS[key + 3], newest, oldest, 'LIMIT', 0, limit)
  out[#out + 1] = redis.call('ZREVRANGEBYSCORE', KEYS[key + 4], newest, oldest, 'LIMIT', 0, limit)
end
return out
