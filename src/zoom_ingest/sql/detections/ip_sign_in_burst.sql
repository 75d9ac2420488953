-- title: Many users signing in from one new IP address
-- severity: high
-- description: One IP address signed in to 5 or more distinct users within 60 minutes, and
--   the address had never appeared in the activity logs before the burst. Zoom's activity
--   log holds successful sign-ins only, so this is what password spraying or credential
--   stuffing looks like once it works, or a shared account. Office and VPN egress
--   addresses, which many users share every day, are already known and do not alert; nor
--   does the first day of data, when every address is new.
-- parsing: each sign-in closes a 60-minute window per address; overlapping windows with 5+
--   users form one burst, reported once with the users in it. Tune the 5 and the 60
--   minutes below; "known" looks back 60 days.
-- alert_id: sha2 of "ip_sign_in_burst|<ip_address>|<unix seconds of the first sign-in>".
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
known AS (
  SELECT ip_address, min(time) AS first_seen
  FROM activity_logs
  WHERE ip_address IS NOT NULL AND time >= current_timestamp() - INTERVAL 60 DAYS
  GROUP BY ip_address
),
history AS (
  SELECT min(time) AS since FROM activity_logs WHERE time >= current_timestamp() - INTERVAL 60 DAYS
),
windows AS (
  SELECT s.ip_address, s.lw_id, s.time AS window_end, count(DISTINCT p.email) AS users
  FROM sign_ins AS s
  JOIN sign_ins AS p
    ON p.ip_address = s.ip_address AND p.time > s.time - INTERVAL 60 MINUTES AND p.time <= s.time
  GROUP BY s.ip_address, s.lw_id, s.time
),
busy AS (
  SELECT
    ip_address,
    window_end,
    lw_id,
    CASE
      WHEN lag(window_end) OVER (PARTITION BY ip_address ORDER BY window_end, lw_id)
        > window_end - INTERVAL 60 MINUTES
      THEN 0
      ELSE 1
    END AS starts_burst
  FROM windows
  WHERE users >= 5
),
numbered AS (
  SELECT
    ip_address,
    window_end,
    sum(starts_burst) OVER (
      PARTITION BY ip_address ORDER BY window_end, lw_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS burst
  FROM busy
),
bounds AS (
  SELECT
    ip_address,
    burst,
    min(window_end) - INTERVAL 60 MINUTES AS range_start,
    max(window_end) AS range_end
  FROM numbered
  GROUP BY ip_address, burst
),
bursts AS (
  SELECT
    b.ip_address,
    b.range_start,
    min(s.time) AS first_time,
    count(DISTINCT s.email) AS users,
    count(*) AS sign_ins,
    array_join(array_sort(collect_set(s.email)), ', ') AS emails
  FROM bounds AS b
  JOIN sign_ins AS s
    ON s.ip_address = b.ip_address AND s.time > b.range_start AND s.time <= b.range_end
  GROUP BY b.ip_address, b.burst, b.range_start
)
SELECT
  sha2(
    concat('ip_sign_in_burst|', b.ip_address, '|', CAST(unix_seconds(b.first_time) AS STRING)), 256
  ) AS alert_id,
  'ip_sign_in_burst' AS detection,
  'high' AS severity,
  b.first_time AS time,
  b.ip_address AS actor,
  b.emails AS target,
  concat(
    CAST(b.users AS STRING), ' users signed in from a new address within 60 minutes (',
    CAST(b.sign_ins AS STRING), ' sign-ins)'
  ) AS change
FROM bursts AS b
JOIN known AS k ON k.ip_address = b.ip_address
CROSS JOIN history AS h
WHERE k.first_seen > b.range_start AND h.since <= b.range_start - INTERVAL 24 HOURS
ORDER BY time, alert_id
