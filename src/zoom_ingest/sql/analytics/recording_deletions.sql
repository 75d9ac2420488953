-- title: Recording deletions
-- answers: Which cloud recordings were deleted or moved to the trash, by whom and when.
-- parsing: Recording-category operations whose action or detail says Delete or Trash.
--   meeting_id is the number after "ID" ("Meeting ID: 123 4567 890" or "(ID 123 456
--   789)"); topic follows "Topic:", or else sits between " - " and "(ID".
SELECT
  time,
  operator,
  action,
  nullif(trim(regexp_extract(operation_detail, 'ID:? *([0-9][0-9 ]*[0-9])', 1)), '') AS meeting_id,
  coalesce(
    nullif(trim(regexp_extract(operation_detail, 'Topic: *(.*)$', 1)), ''),
    nullif(trim(regexp_extract(operation_detail, ' - (.*?) *[(]ID', 1)), '')
  ) AS topic,
  operation_detail,
  lw_id
FROM operation_logs
WHERE
  category_type = 'Recording'
  AND (
    lower(action) RLIKE 'delete|trash'
    OR lower(operation_detail) RLIKE '^ *(delete|trash|move to trash|permanently delete)'
  )
ORDER BY time DESC, lw_id
