-- title: Sign-in methods changed
-- severity: medium
-- description: The ways users may sign in were changed: SSO (SAML), Google, Apple,
--   Facebook, Microsoft, work email or other sign-in options were turned on or off. A new
--   method can open a path around SSO; a removed one can lock users out.
-- parsing: a "<setting>: from <old> to <new>" change (see analytics/setting_changes.sql)
--   whose setting mentions "sign in with", sign-in or login methods, single sign-on, SSO,
--   SAML, Google, Apple, Facebook or Microsoft, and whose value changed. Two-factor and
--   password-requirement settings are left to sign_in_security_disabled.
-- alert_id: sha2 of "sign_in_methods_changed|<lw_id>", 256 bits.
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
  sha2(concat('sign_in_methods_changed|', lw_id), 256) AS alert_id,
  'sign_in_methods_changed' AS detection,
  'medium' AS severity,
  time,
  operator AS actor,
  target,
  concat(setting_name, ': ', old_value, ' → ', new_value) AS change
FROM changes
WHERE
  setting RLIKE 'sign[- ]?in with|sign[- ]?in method|log[- ]?in method|single sign[- ]?on|(^|[^a-z])(sso|saml)([^a-z]|$)|google|apple|facebook|microsoft'
  AND NOT setting RLIKE '(two|2)[- ]?factor|2fa|multi[- ]?factor|(^|[^a-z])mfa([^a-z]|$)'
  AND NOT (setting RLIKE 'password' AND setting RLIKE 'require')
  AND lower(old_value) <> lower(new_value)
ORDER BY time, alert_id
