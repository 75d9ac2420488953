-- title: Data freshness
-- answers: Is ingestion keeping up? For each log table: how many records it holds, its
--   newest record, how many hours ago that was, how many records arrived for the last 24
--   hours, the committed checkpoint cursor and the outcome of the latest run.
--   Records dated after now (a clock far ahead, corrupt data) are counted but never
--   taken as the newest: freshness is never negative.
WITH logs AS (
  SELECT
    'activity_logs' AS table_name,
    count(*) AS total_records,
    max(CASE WHEN time <= current_timestamp() THEN time END) AS latest_time,
    count_if(
      time >= current_timestamp() - INTERVAL 24 HOURS AND time <= current_timestamp()
    ) AS records_last_24h
  FROM activity_logs
  UNION ALL
  SELECT
    'operation_logs',
    count(*),
    max(CASE WHEN time <= current_timestamp() THEN time END),
    count_if(time >= current_timestamp() - INTERVAL 24 HOURS AND time <= current_timestamp())
  FROM operation_logs
),
checkpoints AS (
  SELECT stream, max(cursor) AS checkpoint_cursor
  FROM zoom_ingest_checkpoints
  GROUP BY stream
),
runs AS (
  SELECT stream, max_by(status, started_at) AS last_run_status, max(started_at) AS last_run_started_at
  FROM zoom_ingest_runs
  GROUP BY stream
)
SELECT
  l.table_name,
  l.total_records,
  l.latest_time,
  round(greatest(unix_seconds(current_timestamp()) - unix_seconds(l.latest_time), 0) / 3600, 2)
    AS hours_since_latest,
  l.records_last_24h,
  c.checkpoint_cursor,
  r.last_run_status,
  r.last_run_started_at
FROM logs AS l
LEFT JOIN checkpoints AS c ON c.stream = l.table_name
LEFT JOIN runs AS r ON r.stream = l.table_name
ORDER BY l.table_name
