-- title: Meeting, webinar or PMI passcode requirement turned off
-- severity: medium
-- description: A passcode requirement was switched off for scheduled, instant or Personal
--   Meeting ID meetings, webinars or phone dial-in, or the rule that every meeting is
--   secured by one security option, at account, group or user level. Meetings without a
--   passcode can be joined by anyone who learns the meeting ID. One alert per operation.
-- parsing: reads views/changed_settings.sql. A turned_off change whose setting names a
--   passcode (or a password for meetings, webinars, PMI, joining or dial-in: "Personal
--   Meeting ID (PMI) Passcode", "Require a passcode when scheduling new meetings"), or
--   "secured with one security option". Settings about how a passcode is shown or sent
--   (embedded in the invite link, hidden, its length or characters) are not requirements
--   and are left out. target is the user or group, or "account".
-- alert_id: sha2 of "meeting_passcode_disabled|<lw_id>", 256 bits.
SELECT
  sha2(concat('meeting_passcode_disabled|', lw_id), 256) AS alert_id,
  'meeting_passcode_disabled' AS detection,
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
      (
        setting_lower RLIKE 'passcode'
        OR (
          setting_lower RLIKE 'password'
          AND setting_lower RLIKE 'meeting|webinar|pmi|join|dial|phone'
        )
      )
      AND NOT setting_lower RLIKE 'embed|invite link|one-click|hide|show|display|length|characters|letter|number|numeric|special|sign[- ]?in|log[- ]?in'
    )
    OR setting_lower RLIKE 'secured with one security option'
  )
GROUP BY lw_id, time, operator, coalesce(target, level)
ORDER BY time, alert_id
