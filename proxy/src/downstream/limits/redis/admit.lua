-- One admission of a client key, atomically: reads the key's windows and budget, and when
-- nothing is spent counts the request in its request windows. Mirrors `decide()`.
--
-- KEYS: one counter per window of the key (in its order), then the budget's if it has one.
-- ARGV[1]: the number of windows, n.
-- ARGV[3i-1], ARGV[3i], ARGV[3i+1] for window i: "r" (requests) or "t" (tokens), its limit,
--   and the milliseconds its counter lives (to the window's end, and a grace).
-- ARGV[3n+2]: the budget's tokens, when KEYS holds a budget counter.
-- Returns {admitted (1 or 0), count of window 1 .. count of window n, budget used}, the counts
-- as they were before this request.
local n = tonumber(ARGV[1])
local counts = {}
local admitted = 1
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if counts[i] >= tonumber(ARGV[3 * i]) then
    admitted = 0
  end
end
local used = 0
if #KEYS > n then
  used = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if used >= tonumber(ARGV[3 * n + 2]) then
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
