-- title: Users added and removed
-- answers: Which users were added, removed (deleted or disassociated), deactivated or
--   reactivated, by whom and when.
-- parsing: User-category operations by action (Add/Create, Delete/Remove/Disassociate,
--   Deactivate, Activate); the user is the target that views/operation_changes.sql reads
--   from the detail ("Add User ana@example.org  - User Type: Basic", "Delete User
--   ana@example.org", "delete user - ana@example.org"), one row per operation.
SELECT
  time,
  operator,
  CASE
    WHEN lower(action) IN ('add', 'create') THEN 'added'
    WHEN lower(action) IN ('delete', 'remove', 'disassociate') THEN 'removed'
    WHEN lower(action) = 'deactivate' THEN 'deactivated'
    ELSE 'reactivated'
  END AS change,
  CASE WHEN target_type = 'user' THEN target END AS user_email,
  operation_detail,
  lw_id
FROM operation_changes
WHERE
  lower(category_type) = 'user'
  AND lower(action) IN ('add', 'create', 'delete', 'remove', 'disassociate', 'deactivate', 'activate')
  AND change_no <= 1
ORDER BY time DESC, lw_id
