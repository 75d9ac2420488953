-- title: Admin and role changes
-- answers: Who changed whose role, who was added to or removed from a role, and which
--   roles were created, deleted or given other privileges.
-- parsing: "Change Role - <user>: from <old> to <new>" (User category) is a role change;
--   "Assign Role - <role>: add members <users>" / "remove members <users>" (Role
--   category) add or remove members; "Update Role - <role>: Privileges: from [a, b] to
--   [b, c]" lists the privileges before and after (privileges_added / _removed are the
--   differences); "Role - <role>" with action Add or Delete creates or deletes a role.
WITH ops AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    lower(operation_detail) AS detail,
    trim(regexp_extract(operation_detail, '^[^:]*? - ([^:]+)', 1)) AS head_target,
    trim(regexp_extract(operation_detail, ': from (.*?) to (.*)$', 1)) AS old_value,
    trim(regexp_extract(operation_detail, ': from (.*?) to (.*)$', 2)) AS new_value
  FROM operation_logs
  WHERE category_type = 'Role' OR lower(operation_detail) RLIKE '^ *change (user )?role'
),
changes AS (
  SELECT
    lw_id, time, operator, 'role changed' AS change, head_target AS target,
    old_value AS role_from, new_value AS role_to,
    CAST(NULL AS STRING) AS privileges_added, CAST(NULL AS STRING) AS privileges_removed
  FROM ops
  WHERE detail RLIKE '^ *change (user )?role' AND new_value <> ''
  UNION ALL
  SELECT
    lw_id, time, operator,
    CASE WHEN detail RLIKE ': *remove members?' THEN 'removed from role' ELSE 'added to role' END,
    trim(regexp_extract(operation_detail, ': *(add|remove) members? *(.*)$', 2)),
    CASE WHEN detail RLIKE ': *remove members?' THEN head_target END,
    CASE WHEN detail RLIKE ': *remove members?' THEN CAST(NULL AS STRING) ELSE head_target END,
    NULL, NULL
  FROM ops
  WHERE category_type = 'Role' AND detail RLIKE '^ *assign role.*: *(add|remove) members?'
  UNION ALL
  SELECT
    lw_id, time, operator, 'role privileges changed', head_target, head_target, head_target,
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
  WHERE category_type = 'Role' AND detail RLIKE '^ *update role.*: *privileges: from '
  UNION ALL
  SELECT
    lw_id, time, operator,
    CASE WHEN lower(action) = 'add' THEN 'role created' ELSE 'role deleted' END,
    head_target,
    CASE WHEN lower(action) = 'delete' THEN head_target END,
    CASE WHEN lower(action) = 'add' THEN head_target END,
    NULL, NULL
  FROM ops
  WHERE category_type = 'Role' AND lower(action) IN ('add', 'delete') AND detail RLIKE '^ *role - '
)
SELECT time, operator, change, target, role_from, role_to, privileges_added, privileges_removed, lw_id
FROM changes
ORDER BY time DESC, lw_id
