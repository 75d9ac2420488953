-- title: Admin and role changes
-- answers: Who changed whose role, who was added to or removed from a role, and which
--   roles were created, deleted or given other privileges.
-- parsing: reads views/operation_changes.sql: a user's "Role" or "User Role" change
--   ("Change Role  - <user>: from <old> to <new>", "Update User <user>  - User Role: from
--   <old> to <new>") is a role change; "Assign Role  - <role>: add members <users>" /
--   "remove members <users>" add or remove members; a role's "Privileges: from [a, b] to
--   [b, c]" lists the privileges before and after (privileges_added / _removed are the
--   differences); "Role - <role>" with action Add or Delete creates or deletes a role.
WITH ops AS (
  SELECT *, lower(new_value) AS lowered
  FROM operation_changes
),
changes AS (
  SELECT
    lw_id, time, operator, 'role changed' AS change, target,
    old_value AS role_from, new_value AS role_to,
    CAST(NULL AS STRING) AS privileges_added, CAST(NULL AS STRING) AS privileges_removed
  FROM ops
  WHERE
    target_type = 'user' AND lower(setting) IN ('role', 'user role')
    AND value_kind = 'from_to' AND new_value <> ''
  UNION ALL
  SELECT
    lw_id, time, operator,
    CASE WHEN lowered RLIKE '^remove members?' THEN 'removed from role' ELSE 'added to role' END,
    trim(regexp_extract(new_value, '(?i)^(add|remove) members? *(.*)$', 2)),
    CASE WHEN lowered RLIKE '^remove members?' THEN setting END,
    CASE WHEN lowered RLIKE '^remove members?' THEN CAST(NULL AS STRING) ELSE setting END,
    NULL, NULL
  FROM ops
  WHERE lower(section) = 'assign role' AND lowered RLIKE '^(add|remove) members? '
  UNION ALL
  SELECT
    lw_id, time, operator, 'role privileges changed', target, target, target,
    array_join(
      array_sort(array_except(
        split(trim(translate(new_value, '[]', '')), ' *, *'),
        split(trim(translate(old_value, '[]', '')), ' *, *')
      )),
      ', '
    ),
    array_join(
      array_sort(array_except(
        split(trim(translate(old_value, '[]', '')), ' *, *'),
        split(trim(translate(new_value, '[]', '')), ' *, *')
      )),
      ', '
    )
  FROM ops
  WHERE target_type = 'role' AND lower(setting) = 'privileges' AND value_kind = 'from_to'
  UNION ALL
  SELECT
    lw_id, time, operator,
    CASE WHEN lower(action) = 'add' THEN 'role created' ELSE 'role deleted' END,
    new_value,
    CASE WHEN lower(action) = 'delete' THEN new_value END,
    CASE WHEN lower(action) = 'add' THEN new_value END,
    NULL, NULL
  FROM ops
  WHERE
    category_type = 'Role' AND lower(action) IN ('add', 'delete')
    AND lower(section) = 'role' AND value_kind = 'bare'
)
SELECT time, operator, change, target, role_from, role_to, privileges_added, privileges_removed, lw_id
FROM changes
ORDER BY time DESC, lw_id
