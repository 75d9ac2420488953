-- title: Users added and removed
-- answers: Which users were added, removed (deleted or disassociated), deactivated or
--   reactivated, by whom and when.
-- parsing: User-category operations by action (Add/Create, Delete/Remove/Disassociate,
--   Deactivate, Activate); the user is the first email address in operation_detail,
--   e.g. "Add User - jane@x.com".
SELECT
  time,
  operator,
  CASE
    WHEN lower(action) IN ('add', 'create') THEN 'added'
    WHEN lower(action) IN ('delete', 'remove', 'disassociate') THEN 'removed'
    WHEN lower(action) = 'deactivate' THEN 'deactivated'
    ELSE 'reactivated'
  END AS change,
  nullif(regexp_extract(operation_detail, '([^ :,;()]+@[^ :,;()]+)', 1), '') AS user_email,
  operation_detail,
  lw_id
FROM operation_logs
WHERE
  category_type = 'User'
  AND lower(action) IN ('add', 'create', 'delete', 'remove', 'disassociate', 'deactivate', 'activate')
ORDER BY time DESC, lw_id
