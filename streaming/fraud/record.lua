-- Remember one decided transaction, once: the decision (for idempotent retries) and the
-- transaction in its holder's and its device's week of history, in one atomic step.
-- A transaction id already decided changes nothing and returns the stored decision, so a
-- retry (or two racing copies of one request) is counted once.
--
-- KEYS[1] decision key, KEYS[2] holder set, KEYS[3] device set (absent without a device)
-- ARGV[1] decision (JSON), ARGV[2] its TTL in seconds, ARGV[3] event time (ms, the score),
-- ARGV[4] the transaction member, ARGV[5] window in ms, ARGV[6] the sets' TTL in seconds
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local score = tonumber(ARGV[3])
local oldest = score - tonumber(ARGV[5])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], score, ARGV[4])
  -- Trim relative to this event, not the clock: a replay of old days keeps its windows.
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. oldest)
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return false
