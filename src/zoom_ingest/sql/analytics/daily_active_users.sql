-- title: Active users per day
-- answers: How many distinct users signed in or out on each UTC day, and how many of them
--   appear for the first time in the table (first_seen_users)?
WITH first_seen AS (
  SELECT email, to_date(min(time)) AS first_day
  FROM activity_logs
  WHERE email IS NOT NULL
  GROUP BY email
)
SELECT
  to_date(a.time) AS day,
  count(DISTINCT a.email) AS active_users,
  count(DISTINCT CASE WHEN f.first_day = to_date(a.time) THEN a.email END) AS first_seen_users
FROM activity_logs AS a
JOIN first_seen AS f ON f.email = a.email
GROUP BY to_date(a.time)
ORDER BY day
