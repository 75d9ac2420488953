-- title: Sign-ins from new IP addresses
-- answers: Which sign-ins in the last 30 days came from an IP address the user had never
--   used before (in any earlier activity record)? A user's very first address is not
--   "new": there is nothing to compare it with. prior_ips counts the addresses the user
--   had used before this one.
WITH addressed AS (
  SELECT lw_id, time, type, email, ip_address, client_type, version
  FROM activity_logs
  WHERE email IS NOT NULL AND ip_address IS NOT NULL AND trim(ip_address) <> ''
),
first_use AS (
  -- the first record of each (user, address) pair
  SELECT *
  FROM (
    SELECT
      *,
      row_number() OVER (PARTITION BY email, ip_address ORDER BY time, lw_id) AS use_number
    FROM addressed
  )
  WHERE use_number = 1
),
numbered AS (
  SELECT
    *,
    row_number() OVER (PARTITION BY email ORDER BY time, lw_id) - 1 AS prior_ips
  FROM first_use
)
SELECT time, email, ip_address, client_type, version, prior_ips
FROM numbered
WHERE
  type = 'Sign in'
  AND prior_ips > 0
  AND time >= current_timestamp() - INTERVAL 30 DAYS
ORDER BY time DESC, email, ip_address
