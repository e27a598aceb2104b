-- Checkpoint one partition of the IoT alert processor, atomically: its next offset, its
-- detector state and the alert records the batch produced (the outbox, sent to Kafka next).
--
-- KEYS[1]: the partition's hash (fields `offset`, `state`, `outbox`)
-- ARGV[1]: the offset the batch starts at, as the processor believes Redis records it
--          ('' when Redis recorded none and the processor read the partition from its start)
-- ARGV[2]: the next offset; ARGV[3]: the state; ARGV[4]: the outbox (MessagePack)
--
-- A batch applies only if Redis records exactly its start: a replayed or zombie batch
-- (Redis is past it) or a Redis that lost writes (behind it, or -1: no offset at all) is
-- fenced and changes nothing; the processor then resumes from what Redis holds.
-- Returns {1, next} when applied, {0, stored} when fenced.

local stored = redis.call('HGET', KEYS[1], 'offset')
if stored == false then
  if ARGV[1] ~= '' then return {0, '-1'} end
elseif stored ~= ARGV[1] then
  return {0, stored}
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'state', ARGV[3], 'outbox', ARGV[4])
return {1, ARGV[2]}
