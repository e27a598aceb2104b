-- Remember a batch of decided payments, each once: the decision (for idempotent retries)
-- and the payment in its holder's and its device's week of history, in one atomic step.
-- A payment whose id was already decided changes nothing and gets the stored decision
-- back, so a retry (or two racing copies of one request) is counted once.
--
-- KEYS: per payment 3 keys: decision, holder set, device set
-- ARGV[1] the decisions' TTL (s), ARGV[2] the window (ms), ARGV[3] the sets' TTL (s);
-- then per payment: its decision (JSON), its event time (ms, the score), its member
local decision_ttl, window, set_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local key, arg = i * 3, 4 + i * 3
  local existing = redis.call('GET', KEYS[key + 1])
  if existing then
    out[#out + 1] = existing
  else
    redis.call('SET', KEYS[key + 1], ARGV[arg], 'EX', decision_ttl)
    local score = tonumber(ARGV[arg + 1])
    for k = 2, 3 do
      redis.call('ZADD', KEYS[key + k], score, ARGV[arg + 2])
      -- Trim relative to this payment, not the clock: a replay of old days keeps its windows.
      redis.call('ZREMRANGEBYSCORE', KEYS[key + k], '-inf', '(' .. (score - window))
      redis.call('EXPIRE', KEYS[key + k], set_ttl)
    end
    out[#out + 1] = false
  end
end
return out
