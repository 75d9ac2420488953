-- title: Setting changes (from X to Y)
-- answers: Every operation that changed a value, split into the setting, its old and its
--   new value: account and user settings, roles, user types, plans, room settings.
-- parsing: Zoom writes changes as "<what> - <target>: <section>: <setting>: from <old>
--   to <new>", e.g. "Update User Settings - jane@x.com: Meeting > Security: Require
--   passcode for instant meetings: from On to Off" or "Account Settings: Sign in with
--   two-factor authentication: from On to Off". setting is the text between the last
--   colon before ": from " and it (when that text is the "<what> - <target>" head, the
--   part before " - "); old_value runs to the first " to ", new_value to the end. target
--   is "account" for the Account category, else the text between " - " and the next colon.
WITH parsed AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 1) AS setting_text,
    trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 2)) AS old_value,
    trim(regexp_extract(operation_detail, '([^:]+): from (.*?) to (.*)$', 3)) AS new_value,
    trim(regexp_extract(operation_detail, '^[^:]*? - ([^:]+):', 1)) AS head_target
  FROM operation_logs
  WHERE operation_detail RLIKE ': from .* to '
)
SELECT
  time,
  operator,
  category_type,
  action,
  CASE
    WHEN category_type = 'Account' THEN 'account'
    ELSE coalesce(nullif(head_target, ''), lower(category_type))
  END AS target,
  trim(
    CASE
      WHEN setting_text LIKE '% - %' THEN regexp_extract(setting_text, '^(.*?) +- ', 1)
      ELSE setting_text
    END
  ) AS setting,
  old_value,
  new_value,
  lw_id
FROM parsed
WHERE setting_text <> ''
ORDER BY time DESC, lw_id
