-- title: Automatic sign-out disabled
-- severity: medium
-- description: Automatic sign-out after a period of inactivity was switched off, so
--   sessions on shared or lost devices stay signed in indefinitely. One alert per operation.
-- parsing: reads views/changed_settings.sql. A turned_off change whose setting is about
--   signing or logging users out (or an idle/session timeout) automatically, in any section
--   and at any position of a multi-change detail.
-- alert_id: sha2 of "auto_sign_out_disabled|<lw_id>", 256 bits.
SELECT
  sha2(concat('auto_sign_out_disabled|', lw_id), 256) AS alert_id,
  'auto_sign_out_disabled' AS detection,
  'medium' AS severity,
  time,
  operator AS actor,
  coalesce(target, level) AS target,
  array_join(array_sort(collect_list(change_text)), '; ') AS change
FROM changed_settings
WHERE
  time >= current_timestamp() - INTERVAL 30 DAYS
  AND turned_off
  AND (
    (
      setting_lower RLIKE 'sign[- ]?(users? )?out|signed out|log[- ]?(users? )?out|logged out'
      AND setting_lower RLIKE 'auto|after|idle|inactiv'
    )
    OR setting_lower RLIKE '(idle|inactivity|session) ?time[- ]?out'
  )
GROUP BY lw_id, time, operator, coalesce(target, level)
ORDER BY time, alert_id
