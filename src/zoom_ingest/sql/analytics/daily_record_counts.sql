-- title: Records per day
-- answers: How many records each log table holds for every UTC day from the first record
--   to today, with days that have none listed as 0, so gaps in ingestion stand out.
WITH per_day AS (
  SELECT to_date(time) AS day, count(*) AS activity_logs, 0 AS operation_logs
  FROM activity_logs
  GROUP BY to_date(time)
  UNION ALL
  SELECT to_date(time), 0, count(*)
  FROM operation_logs
  GROUP BY to_date(time)
),
first_day AS (
  SELECT min(day) AS day FROM per_day
),
calendar AS (
  SELECT CAST(day AS DATE) AS day
  FROM (SELECT explode(sequence(day, greatest(day, current_date()), INTERVAL 1 DAY)) AS day FROM first_day)
)
SELECT
  c.day,
  CAST(coalesce(sum(p.activity_logs), 0) AS BIGINT) AS activity_logs,
  CAST(coalesce(sum(p.operation_logs), 0) AS BIGINT) AS operation_logs
FROM calendar AS c
LEFT JOIN per_day AS p ON p.day = c.day
GROUP BY c.day
ORDER BY c.day
