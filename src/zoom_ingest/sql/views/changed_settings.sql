-- title: Changed settings, one row per change of a setting's value
-- answers: The rows of operation_changes that change a setting's value, with the setting
--   and its section in lower case for matching: one definition of "a setting changed"
--   for the detections of a setting turned off or changed (auto_sign_out_disabled,
--   meeting_passcode_disabled, sign_in_methods_changed, sign_in_security_disabled). Each
--   adds its own time window and what the setting must be about.
-- parsing: reads views/operation_changes.sql. A change "<setting>: from <old> to <new>"
--   (from_to) or "<setting>: set to <new>" (set_to) that names a setting and whose new
--   value differs from the old one, ignoring case (a set_to's old value counts as empty).
--   turned_off and turned_on stay as operation_changes says; setting_lower and
--   section_lower are lower(setting) and lower(section).
SELECT
  *,
  lower(setting) AS setting_lower,
  lower(section) AS section_lower
FROM operation_changes
WHERE
  value_kind IN ('from_to', 'set_to')
  AND setting IS NOT NULL
  AND lower(coalesce(old_value, '')) <> lower(new_value)
