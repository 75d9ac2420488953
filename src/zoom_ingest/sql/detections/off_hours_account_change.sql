-- title: Account setting changed outside business hours
-- severity: low
-- description: An account-wide setting was changed at night or at the weekend. Admins
--   rarely change account settings then; an attacker with a stolen admin session might.
--   Business hours are Monday to Friday, 08:00 to 18:00 in the time zone below: edit the
--   params CTE to match the account (an IANA name such as 'Europe/Berlin').
-- parsing: Account-category operations whose detail starts with "Account Settings" (or
--   "Update Account Settings"); the local time is from_utc_timestamp(time, time_zone).
-- alert_id: sha2 of "off_hours_account_change|<lw_id>", 256 bits.
WITH params AS (
  SELECT 'UTC' AS time_zone, 8 AS day_starts_at_hour, 18 AS day_ends_at_hour
),
changes AS (
  SELECT
    o.lw_id,
    o.time,
    o.operator,
    o.operation_detail,
    trim(regexp_extract(o.operation_detail, '([^:]+): from (.*?) to (.*)$', 1)) AS setting_name,
    trim(regexp_extract(o.operation_detail, '([^:]+): from (.*?) to (.*)$', 2)) AS old_value,
    trim(regexp_extract(o.operation_detail, '([^:]+): from (.*?) to (.*)$', 3)) AS new_value,
    from_utc_timestamp(o.time, p.time_zone) AS local_time,
    p.time_zone,
    p.day_starts_at_hour,
    p.day_ends_at_hour
  FROM operation_logs AS o
  CROSS JOIN params AS p
  WHERE
    o.time >= current_timestamp() - INTERVAL 30 DAYS
    AND o.category_type = 'Account'
    AND lower(o.operation_detail) RLIKE '^ *(update )?account settings'
)
SELECT
  sha2(concat('off_hours_account_change|', lw_id), 256) AS alert_id,
  'off_hours_account_change' AS detection,
  'low' AS severity,
  time,
  operator AS actor,
  'account' AS target,
  concat(
    CASE
      WHEN setting_name <> '' THEN concat(setting_name, ': ', old_value, ' → ', new_value)
      ELSE left(operation_detail, 200)
    END,
    ' (at ', date_format(local_time, 'E HH:mm'), ' ', time_zone, ')'
  ) AS change
FROM changes
WHERE
  date_format(local_time, 'E') IN ('Sat', 'Sun')
  OR hour(local_time) < day_starts_at_hour
  OR hour(local_time) >= day_ends_at_hour
ORDER BY time, alert_id
