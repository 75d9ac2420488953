-- title: User promoted into a privileged role
-- severity: high
-- description: A user was promoted from a lesser role into Owner, Co-Owner, Admin or Billing
--   Admin, or into a custom role with admin-level privileges (its latest privilege list
--   lets it edit users, roles, account settings, security, single sign-on, managed domains,
--   billing or the subscription). Someone who gains these rights can change every security
--   setting of the account. Moves between privileged roles (Co-Owner to Admin) and changes
--   between ordinary roles (Member to Auditor) are not grants and stay silent.
-- parsing: reads views/operation_changes.sql: a user's "Role" or "User Role" change
--   ("Change Role  - <user>: from <old> to <new>", "Update User <user>  - User Role: from
--   <old> to <new>"), and "Assign Role  - <role>: add members <users>" (the old role is
--   unknown and counts as lesser). A custom role's privileges come from its latest
--   "Privileges: from [...] to [...]" change. Role names compare case-insensitively.
-- alert_id: sha2 of "privileged_role_granted|<lw_id>", 256 bits.
WITH admin_roles AS (
  -- custom roles whose latest privilege list holds admin-level edit rights
  SELECT role
  FROM (
    SELECT
      lower(target) AS role,
      new_value,
      row_number() OVER (PARTITION BY lower(target) ORDER BY time DESC, lw_id DESC) AS newest
    FROM operation_changes
    WHERE target_type = 'role' AND lower(setting) = 'privileges'
  )
  WHERE
    newest = 1
    AND new_value RLIKE '(Users|Roles|Account Settings|Security|Single Sign-On|Managed Domains|Billing|Subscription):Edit'
),
grants AS (
  SELECT lw_id, time, operator, target, old_value AS role_from, new_value AS role_to
  FROM operation_changes
  WHERE
    time >= current_timestamp() - INTERVAL 30 DAYS
    AND target_type = 'user'
    AND lower(setting) IN ('role', 'user role')
    AND value_kind = 'from_to'
  UNION ALL
  SELECT
    lw_id,
    time,
    operator,
    trim(regexp_extract(new_value, '(?i)^add members? *(.*)$', 1)),
    CAST(NULL AS STRING),
    setting
  FROM operation_changes
  WHERE
    time >= current_timestamp() - INTERVAL 30 DAYS
    AND lower(section) = 'assign role'
    AND lower(new_value) RLIKE '^add members? '
),
ranked AS (
  SELECT
    g.*,
    lower(coalesce(g.role_from, '')) IN ('owner', 'co-owner', 'admin', 'billing admin')
      OR f.role IS NOT NULL AS from_privileged,
    lower(g.role_to) IN ('owner', 'co-owner', 'admin', 'billing admin')
      OR t.role IS NOT NULL AS to_privileged
  FROM grants AS g
  LEFT JOIN admin_roles AS f ON f.role = lower(g.role_from)
  LEFT JOIN admin_roles AS t ON t.role = lower(g.role_to)
)
SELECT
  sha2(concat('privileged_role_granted|', lw_id), 256) AS alert_id,
  'privileged_role_granted' AS detection,
  'high' AS severity,
  time,
  operator AS actor,
  target,
  concat('role: ', coalesce(role_from, '(none)'), ' → ', role_to) AS change
FROM ranked
WHERE to_privileged AND NOT from_privileged
ORDER BY time, alert_id
