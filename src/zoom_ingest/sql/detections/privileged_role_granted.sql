-- title: User granted admin or a privileged role
-- severity: high
-- description: A user's role was raised (Member < custom roles such as Auditor or Billing
--   Admin < Admin < Owner), or users were added to a role other than Member. Someone who
--   gains admin rights can change every security setting of the account.
-- parsing: "Change Role - <user>: from <old> to <new>" (User category) and "Assign Role -
--   <role>: add members <users>" (Role category); role names compare case-insensitively.
-- alert_id: sha2 of "privileged_role_granted|<lw_id>", 256 bits.
WITH ops AS (
  SELECT lw_id, time, operator, category_type, operation_detail, lower(operation_detail) AS detail
  FROM operation_logs
  WHERE time >= current_timestamp() - INTERVAL 30 DAYS
),
grants AS (
  SELECT
    lw_id,
    time,
    operator,
    trim(regexp_extract(operation_detail, '^[^:]*? - ([^:]+)', 1)) AS target,
    trim(regexp_extract(operation_detail, ': from (.*?) to (.*)$', 1)) AS role_from,
    trim(regexp_extract(operation_detail, ': from (.*?) to (.*)$', 2)) AS role_to
  FROM ops
  WHERE detail RLIKE '^ *change (user )?role' AND detail RLIKE ': from .* to '
  UNION ALL
  SELECT
    lw_id,
    time,
    operator,
    trim(regexp_extract(operation_detail, ': *add members? *(.*)$', 1)),
    CAST(NULL AS STRING),
    trim(regexp_extract(operation_detail, '^[^:]*? - ([^:]+)', 1))
  FROM ops
  WHERE category_type = 'Role' AND detail RLIKE '^ *assign role.*: *add members?'
),
ranked AS (
  SELECT
    *,
    CASE lower(coalesce(role_from, ''))
      WHEN 'owner' THEN 3 WHEN 'admin' THEN 2 WHEN 'member' THEN 0 WHEN '' THEN 0 ELSE 1
    END AS rank_from,
    CASE lower(role_to)
      WHEN 'owner' THEN 3 WHEN 'admin' THEN 2 WHEN 'member' THEN 0 WHEN '' THEN 0 ELSE 1
    END AS rank_to
  FROM grants
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
WHERE rank_to > rank_from
ORDER BY time, alert_id
