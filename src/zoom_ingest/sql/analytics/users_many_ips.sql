-- title: Users signing in from many IP addresses in a short time
-- answers: Which users signed in from 3 or more distinct IP addresses within 60 minutes
--   during the last 30 days (impossible travel, shared or stolen credentials)?
-- parsing: each sign-in closes a 60-minute window; windows with 3+ addresses that
--   overlap are merged into one episode per user. Tune the 3 and the 60 minutes below.
WITH sign_ins AS (
  SELECT lw_id, time, email, ip_address
  FROM activity_logs
  WHERE
    type = 'Sign in'
    AND email IS NOT NULL
    AND ip_address IS NOT NULL
    AND trim(ip_address) <> ''
    AND time >= current_timestamp() - INTERVAL 30 DAYS
),
windows AS (
  SELECT s.email, s.lw_id, s.time AS window_end, count(DISTINCT p.ip_address) AS addresses
  FROM sign_ins AS s
  JOIN sign_ins AS p
    ON p.email = s.email AND p.time > s.time - INTERVAL 60 MINUTES AND p.time <= s.time
  GROUP BY s.email, s.lw_id, s.time
),
busy AS (
  SELECT
    email,
    window_end,
    CASE
      WHEN lag(window_end) OVER (PARTITION BY email ORDER BY window_end, lw_id)
        > window_end - INTERVAL 60 MINUTES
      THEN 0
      ELSE 1
    END AS starts_episode,
    lw_id
  FROM windows
  WHERE addresses >= 3
),
episodes AS (
  SELECT
    email,
    window_end,
    sum(starts_episode) OVER (
      PARTITION BY email ORDER BY window_end, lw_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS episode
  FROM busy
),
bounds AS (
  SELECT email, episode, min(window_end) - INTERVAL 60 MINUTES AS range_start, max(window_end) AS range_end
  FROM episodes
  GROUP BY email, episode
)
SELECT
  b.email,
  min(s.time) AS first_sign_in,
  max(s.time) AS last_sign_in,
  count(DISTINCT s.ip_address) AS ip_addresses,
  count(*) AS sign_ins,
  array_join(array_sort(collect_set(s.ip_address)), ', ') AS addresses
FROM bounds AS b
JOIN sign_ins AS s ON s.email = b.email AND s.time > b.range_start AND s.time <= b.range_end
GROUP BY b.email, b.episode
ORDER BY first_sign_in DESC, b.email
