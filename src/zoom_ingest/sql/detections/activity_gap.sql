-- title: No activity records for 24 hours
-- severity: medium
-- description: The activity log has no record for 24 hours or more, either up to now
--   (ingestion stopped, the Zoom app lost its scopes, or the account went silent) or
--   between two records in the last 30 days (a gap in the data that a re-run or a
--   reconcile run should fill). Sign-ins happen every day in any active account;
--   operation logs can be quiet for days and are not checked.
-- parsing: records dated after now (corrupt data) are left out, so no gap is measured
--   to or from the future; records are grouped by hour; a gap runs from the last record
--   of one hour to the first record of the next non-empty hour, or to now.
-- alert_id: sha2 of "activity_gap|activity_logs|<unix seconds of the last record before
--   the gap>": an ongoing gap keeps its id once records arrive again.
WITH hours AS (
  SELECT date_trunc('HOUR', time) AS hour, min(time) AS first_time, max(time) AS last_time
  FROM activity_logs
  WHERE time >= current_timestamp() - INTERVAL 30 DAYS AND time <= current_timestamp()
  GROUP BY date_trunc('HOUR', time)
),
gaps AS (
  SELECT
    last_time AS gap_start,
    lead(first_time) OVER (ORDER BY hour) AS next_time
  FROM hours
),
measured AS (
  SELECT
    gap_start,
    next_time,
    coalesce(next_time, current_timestamp()) AS gap_end
  FROM gaps
)
SELECT
  sha2(concat('activity_gap|activity_logs|', CAST(unix_seconds(gap_start) AS STRING)), 256)
    AS alert_id,
  'activity_gap' AS detection,
  'medium' AS severity,
  gap_start AS time,
  'zoom_ingest' AS actor,
  'activity_logs' AS target,
  concat(
    'no activity records for ',
    CAST(CAST(floor((unix_seconds(gap_end) - unix_seconds(gap_start)) / 3600) AS BIGINT) AS STRING),
    ' hours after ', date_format(gap_start, 'yyyy-MM-dd HH:mm:ss'), ' UTC',
    CASE
      WHEN next_time IS NULL THEN ' (none since)'
      ELSE concat(' (next at ', date_format(next_time, 'yyyy-MM-dd HH:mm:ss'), ' UTC)')
    END
  ) AS change
FROM measured
WHERE gap_end >= gap_start + INTERVAL 24 HOURS
ORDER BY time, alert_id
