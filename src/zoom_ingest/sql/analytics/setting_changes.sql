-- title: Setting changes (from X to Y, set to Y)
-- answers: Every change an operation made to a value, one row per change (a detail that
--   changes several settings gives several rows): account, group and user settings, roles,
--   user types, plans, room settings, with the section it was made in.
-- parsing: reads views/operation_changes.sql, the one parse of operation_detail: "<section>
--   - <setting>: from <old> to <new> - <setting>: set to <new> …", e.g. "Security  - Sign in
--   with Two-Factor Authentication: from On to Off" or "Edit Group Sales EMEA  - Personal
--   Meeting ID (PMI) Passcode: from On to Off". target is the user, group, role or room, or
--   the level ("account" for the Account category); old_value is empty for "set to".
SELECT
  time,
  operator,
  category_type,
  action,
  section,
  coalesce(target, level) AS target,
  setting,
  old_value,
  new_value,
  change_no,
  lw_id
FROM operation_changes
WHERE value_kind IN ('from_to', 'set_to') AND setting IS NOT NULL
ORDER BY time DESC, lw_id, change_no
