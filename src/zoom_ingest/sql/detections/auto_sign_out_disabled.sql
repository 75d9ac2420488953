-- title: Automatic sign-out disabled
-- severity: medium
-- description: Automatic sign-out after a period of inactivity was switched off, so
--   sessions on shared or lost devices stay signed in indefinitely.
-- parsing: a "<setting>: from <old> to <new>" change (see analytics/setting_changes.sql)
--   whose setting is about signing or logging users out (or an idle/session timeout)
--   automatically, and whose new value is Off (or Disabled, Never, …) while the old one
--   was not.
-- alert_id: sha2 of "auto_sign_out_disabled|<lw_id>", 256 bits.
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
  sha2(concat('auto_sign_out_disabled|', lw_id), 256) AS alert_id,
  'auto_sign_out_disabled' AS detection,
  'medium' AS severity,
  time,
  operator AS actor,
  target,
  concat(setting_name, ': ', old_value, ' → ', new_value) AS change
FROM changes
WHERE
  (
    (setting RLIKE 'sign[- ]?(users? )?out|signed out|log[- ]?(users? )?out|logged out'
      AND setting RLIKE 'auto|after|idle|inactiv')
    OR setting RLIKE '(idle|inactivity|session) ?time[- ]?out'
  )
  AND lower(new_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
  AND lower(old_value) NOT IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
ORDER BY time, alert_id
