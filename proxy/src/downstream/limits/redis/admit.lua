-- One admission of a client key, atomically: reads the key's windows and budget, and when
-- nothing is spent counts the request in its request windows. Mirrors `decide()`.
--
-- KEYS: one counter per window of the key (in its order), then the budget's if it has one.
-- ARGV[1]: the number of windows, n.
-- ARGV[3i-1], ARGV[3i], ARGV[3i+1] for window i: "r" (requests) or "t" (tokens), its limit,
--   and the milliseconds its counter lives (to the window's end, and a grace).
-- ARGV[3n+2]: the budget's tokens, when KEYS holds a budget counter.
-- ARGV[#ARGV], last: the prompt's estimated tokens (0: not estimated); a token window or the
--   budget without room for them refuses, as `decide()` does.
-- Returns {admitted (1 or 0), count of window 1 .. count of window n, budget used}, the counts
-- as they were before this request.
local n = tonumber(ARGV[1])
local estimate = tonumber(ARGV[#ARGV])
local function no_room(count, limit)
  return count >= limit or (estimate > 0 and count + estimate > limit)
end
local counts = {}
local admitted = 1
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  local limit = tonumber(ARGV[3 * i])
  if ARGV[3 * i - 1] == 't' then
    if no_room(counts[i], limit) then
      admitted = 0
    end
  elseif counts[i] >= limit then
    admitted = 0
  end
end
local used = 0
if #KEYS > n then
  used = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if no_room(used, tonumber(ARGV[3 * n + 2])) then
    admitted = 0
  end
end
if admitted == 1 then
  for i = 1, n do
    if ARGV[3 * i - 1] == 'r' then
      redis.call('INCR', KEYS[i])
      redis.call('PEXPIRE', KEYS[i], ARGV[3 * i + 1])
    end
  end
end
local reply = {admitted}
for i = 1, n do
  reply[i + 1] = counts[i]
end
reply[n + 2] = used
return reply
