-- title: Two-factor authentication or sign-in password requirement turned off
-- severity: high
-- description: A setting that makes users prove who they are at sign-in was switched off:
--   two-factor / multi-factor authentication, or a requirement to sign in with a password.
--   Accounts then fall to a single stolen or guessed factor.
-- parsing: a "<setting>: from <old> to <new>" change (see analytics/setting_changes.sql)
--   whose setting mentions two-factor, 2FA, multi-factor or MFA, or requires a password
--   for sign-in/login, and whose new value is Off (or Disabled, False, No, None, Never)
--   while the old one was not.
-- alert_id: sha2 of "sign_in_security_disabled|<lw_id>", 256 bits.
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
  sha2(concat('sign_in_security_disabled|', lw_id), 256) AS alert_id,
  'sign_in_security_disabled' AS detection,
  'high' AS severity,
  time,
  operator AS actor,
  target,
  concat(setting_name, ': ', old_value, ' → ', new_value) AS change
FROM changes
WHERE
  (
    setting RLIKE '(two|2)[- ]?factor|2fa|multi[- ]?factor|(^|[^a-z])mfa([^a-z]|$)'
    OR (setting RLIKE 'password' AND setting RLIKE 'sign[- ]?in|log[- ]?in' AND setting RLIKE 'require')
  )
  AND lower(new_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
  AND lower(old_value) NOT IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
ORDER BY time, alert_id
