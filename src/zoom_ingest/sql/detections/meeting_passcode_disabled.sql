-- title: Meeting passcode requirement disabled
-- severity: medium
-- description: A requirement for meeting passcodes was switched off (for scheduled,
--   instant or Personal Meeting ID meetings, webinars, phone dial-in, or the rule that
--   every meeting is secured by one security option), for the account or for a user.
--   Meetings without a passcode can be joined by anyone who learns the meeting ID.
-- parsing: a "<setting>: from <old> to <new>" change (see analytics/setting_changes.sql)
--   whose setting says "require" and mentions a passcode (or a password for meetings,
--   webinars, PMI or joining), or "secured with one security option", and whose new value
--   is Off (or Disabled, …) while the old one was not.
-- alert_id: sha2 of "meeting_passcode_disabled|<lw_id>", 256 bits.
WITH changes AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    operation_detail,
    lower(trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 1))) AS setting,
    trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 1)) AS setting_name,
    trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 2)) AS old_value,
    trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 3)) AS new_value,
    CASE
      WHEN category_type = 'Account' THEN 'account'
      ELSE coalesce(
        nullif(trim(regexp_extract(operation_detail, '^[^:]*? - ([^:]+):', 1)), ''),
        lower(category_type)
      )
    END AS target
  FROM operation_logs
  WHERE
    time >= current_timestamp() - INTERVAL 30 DAYS
    AND operation_detail RLIKE ': from .* to '
)
SELECT
  sha2(concat('meeting_passcode_disabled|', lw_id), 256) AS alert_id,
  'meeting_passcode_disabled' AS detection,
  'medium' AS severity,
  time,
  operator AS actor,
  target,
  concat(setting_name, ': ', old_value, ' → ', new_value) AS change
FROM changes
WHERE
  (
    (
      setting RLIKE 'require'
      AND (
        setting RLIKE 'passcode'
        OR (setting RLIKE 'password' AND setting RLIKE 'meeting|webinar|pmi|join')
      )
    )
    OR setting RLIKE 'secured with one security option'
  )
  AND lower(new_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
  AND lower(old_value) NOT IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
ORDER BY time, alert_id
