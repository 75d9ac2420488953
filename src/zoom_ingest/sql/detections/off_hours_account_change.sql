-- title: Account setting changed outside business hours
-- severity: low
-- description: An account-wide setting was changed at night or at the weekend. Admins
--   rarely change account settings then; an attacker with a stolen admin session might.
--   Business hours are Monday to Friday, 08:00 to 18:00 in the time zone below: edit the
--   params CTE to match the account (an IANA name such as 'Europe/Berlin'). One alert per
--   operation, listing its changes.
-- parsing: reads views/operation_changes.sql: every change at account level (the Account
--   category, no user or group target), whatever its section ("Security  - …",
--   "Account Settings - …", "Meeting  - …"); the local time is
--   from_utc_timestamp(time, time_zone).
-- alert_id: sha2 of "off_hours_account_change|<lw_id>", 256 bits.
WITH params AS (
  SELECT 'UTC' AS time_zone, 8 AS day_starts_at_hour, 18 AS day_ends_at_hour
),
changes AS (
  SELECT
    c.lw_id,
    c.time,
    c.operator,
    c.change_text,
    from_utc_timestamp(c.time, p.time_zone) AS local_time,
    p.time_zone,
    p.day_starts_at_hour,
    p.day_ends_at_hour
  FROM operation_changes AS c
  CROSS JOIN params AS p
  WHERE
    c.time >= current_timestamp() - INTERVAL 30 DAYS
    AND c.level = 'account'
    AND c.setting IS NOT NULL
)
SELECT
  sha2(concat('off_hours_account_change|', lw_id), 256) AS alert_id,
  'off_hours_account_change' AS detection,
  'low' AS severity,
  time,
  operator AS actor,
  'account' AS target,
  concat(
    array_join(
      array_sort(collect_list(left(change_text, 200))),
      '; '
    ),
    ' (at ', date_format(local_time, 'E HH:mm'), ' ', time_zone, ')'
  ) AS change
FROM changes
WHERE
  date_format(local_time, 'E') IN ('Sat', 'Sun')
  OR hour(local_time) < day_starts_at_hour
  OR hour(local_time) >= day_ends_at_hour
GROUP BY lw_id, time, operator, local_time, time_zone
ORDER BY time, alert_id
