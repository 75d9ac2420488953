-- title: Operation-log changes, one row per change
-- answers: The one parse of operation_detail that every analytics query and detection reads:
--   each change an operation made, with its section, target, setting, old and new value.
-- parsing: Zoom writes "<head>  - <change> - <change> …" (two spaces before the first dash;
--   changes joined by " - "). The head is a section ("Security", "Sign-In Password
--   Requirement") or an action on a user, group, role or channel ("Update User
--   ana@example.org", "Edit Group Sales EMEA", "Change Role"). A change is "<setting>: from
--   <old> to <new>" (value_kind from_to), "<setting>: set to <new>" (set_to), "<key>:
--   <value>" (value) or a bare value (bare). A piece without "<key>: " continues the value
--   before it ("Search Date: 03/02/2023 - 03/30/2023"). Older single-dash and colon forms
--   ("Account Settings - Security: <setting>: from A to B", "Update User Settings -
--   <user>: Meeting > Security: <setting>: from A to B") are read too: the setting is the
--   text after the last ": " of the key, what comes before it is the target (a user, or
--   the first segment outside the Account category) or part of the section. target is a
--   user (an email address), group, role or channel; level is user, group, account (the
--   Account category without a target) or the category. old_value runs to the first " to ".
--   turned_off: the new value is Off, Disabled, False, No, None, Never or Not required and
--   the old one was not (or was not given); turned_on: the reverse. A record without any
--   change (a head only, "Delete User ana@example.org", or a free sentence) has one row
--   with change_no 0 and value_kind none: its section and target, no setting. change_text is
--   the change as one line ("<setting>: <old> → <new>", "<setting>: <new>", or the bare
--   value) for alerts and reports, so every query describes a change the same way.
WITH ops AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    trim(operation_detail) AS detail
  FROM operation_logs
  WHERE operation_detail IS NOT NULL
),
headed AS (
  SELECT
    *,
    CASE
      WHEN detail RLIKE '  - ' THEN regexp_extract(detail, '^(.*?)  - ', 1)
      WHEN detail RLIKE '^[^:]*? - ' THEN regexp_extract(detail, '^([^:]*?) - ', 1)
      WHEN detail RLIKE '^[^:]+: .*: ' THEN regexp_extract(detail, '^([^:]+): ', 1)
      WHEN detail RLIKE '(?i)^change account setting .+ from .+ to ' THEN 'Account Settings'
      ELSE detail
    END AS head,
    CASE
      WHEN detail RLIKE '  - ' THEN regexp_extract(detail, '^.*?  - (.*)$', 1)
      WHEN detail RLIKE '^[^:]*? - ' THEN regexp_extract(detail, '^[^:]*? - (.*)$', 1)
      WHEN detail RLIKE '^[^:]+: .*: ' THEN regexp_extract(detail, '^[^:]+: (.*)$', 1)
      WHEN detail RLIKE '(?i)^change account setting .+ from .+ to ' THEN concat(
        regexp_extract(detail, '(?i)^change account setting (.+?) from .+ to ', 1),
        ': from ',
        regexp_extract(detail, '(?i)^change account setting .+? from (.+ to .*)$', 1)
      )
    END AS body
  FROM ops
),
pieces AS (
  SELECT
    h.lw_id,
    h.time,
    h.operator,
    h.category_type,
    h.action,
    h.operation_detail,
    trim(h.head) AS head,
    split(h.body, ' - ') AS parts,
    pos,
    part
  FROM headed AS h
  LATERAL VIEW posexplode(split(h.body, ' - ')) p AS pos, part
  WHERE h.body IS NOT NULL AND trim(h.body) <> ''
),
starts AS (
  SELECT
    *,
    lead(pos) OVER (PARTITION BY lw_id ORDER BY pos) AS next_pos
  FROM pieces
  WHERE pos = 0 OR trim(part) RLIKE '^[^:]+:( |$)'
),
items AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    head,
    CAST(row_number() OVER (PARTITION BY lw_id ORDER BY pos) AS INT) AS change_no,
    trim(array_join(slice(parts, pos + 1, coalesce(next_pos, size(parts)) - pos), ' - ')) AS item
  FROM starts
  UNION ALL
  -- a detail without any change (a head only, a free sentence): one row, change_no 0
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    trim(head) AS head,
    CAST(0 AS INT) AS change_no,
    CAST(NULL AS STRING) AS item
  FROM headed
  WHERE body IS NULL OR trim(body) = ''
),
kinds AS (
  SELECT
    *,
    CASE
      WHEN item IS NULL THEN 'none'
      WHEN item RLIKE ': from .* to ' THEN 'from_to'
      WHEN item RLIKE '^[^:]+?: set to( |$)' THEN 'set_to'
      WHEN item RLIKE '^[^:]+: ' THEN 'value'
      ELSE 'bare'
    END AS value_kind
  FROM items
  WHERE item IS NULL OR item <> ''
),
values_ AS (
  SELECT
    *,
    CASE value_kind
      WHEN 'from_to' THEN trim(regexp_extract(item, '^(.*): from (.*?) to (.*)$', 1))
      WHEN 'set_to' THEN trim(regexp_extract(item, '^([^:]+?): set to ?(.*)$', 1))
      WHEN 'value' THEN trim(regexp_extract(item, '^([^:]+): (.*)$', 1))
    END AS key_path,
    CASE value_kind
      WHEN 'from_to' THEN trim(regexp_extract(item, '^(.*): from (.*?) to (.*)$', 2))
    END AS old_value,
    trim(
      CASE value_kind
        WHEN 'from_to' THEN regexp_extract(item, '^(.*): from (.*?) to (.*)$', 3)
        WHEN 'set_to' THEN regexp_extract(item, '^([^:]+?): set to ?(.*)$', 2)
        WHEN 'value' THEN regexp_extract(item, '^([^:]+): (.*)$', 2)
        ELSE item
      END
    ) AS new_value,
    regexp_extract(head, '(?i)^([a-z]+( a)? (user|group|role|channel)) (.+)$', 1) AS head_action,
    lower(regexp_extract(head, '(?i)^[a-z]+( a)? (user|group|role|channel) (.+)$', 2)) AS head_kind,
    trim(regexp_extract(head, '(?i)^[a-z]+( a)? (user|group|role|channel) (.+)$', 3)) AS head_name
  FROM kinds
),
segmented AS (
  SELECT
    *,
    trim(regexp_extract(key_path, '^([^:]*)', 1)) AS first_segment,
    trim(regexp_extract(key_path, '([^:]*)$', 1)) AS last_segment,
    key_path RLIKE ':' AS has_path,
    CASE
      WHEN head_kind = 'user' AND head_name RLIKE '@' THEN head_name
      WHEN head_kind IN ('group', 'role', 'channel') THEN head_name
    END AS named_target
  FROM values_
),
targeted AS (
  SELECT
    *,
    CASE
      WHEN named_target IS NOT NULL THEN named_target
      WHEN first_segment RLIKE '^[^ @]+@[^ @]+$' THEN first_segment
      WHEN has_path AND category_type <> 'Account' THEN first_segment
      WHEN value_kind = 'bare' AND new_value RLIKE '^[^ @]+@[^ @]+$' THEN new_value
    END AS target,
    CASE
      WHEN named_target IS NOT NULL THEN head_kind
      WHEN first_segment RLIKE '^[^ @]+@[^ @]+$' THEN 'user'
      WHEN has_path AND category_type <> 'Account' THEN lower(category_type)
      WHEN value_kind = 'bare' AND new_value RLIKE '^[^ @]+@[^ @]+$' THEN 'user'
    END AS target_type
  FROM segmented
),
parsed AS (
  SELECT
    lw_id,
    time,
    operator,
    category_type,
    action,
    operation_detail,
    change_no,
    CASE
      WHEN named_target IS NOT NULL THEN head_action
      WHEN has_path AND (target IS NULL OR target <> first_segment)
        THEN concat(head, ': ', regexp_extract(key_path, '^(.*):[^:]*$', 1))
      WHEN has_path AND key_path RLIKE '^[^:]*:.*:'
        THEN concat(head, ': ', trim(regexp_extract(key_path, '^[^:]*:(.*):[^:]*$', 1)))
      ELSE head
    END AS section,
    target_type,
    target,
    CASE
      WHEN value_kind = 'bare' THEN CAST(NULL AS STRING)
      WHEN key_path = target AND NOT has_path
        THEN coalesce(nullif(regexp_extract(head, '(?i)^(change|update|edit|set) (.+)$', 2), ''), head)
      ELSE last_segment
    END AS setting,
    old_value,
    new_value,
    value_kind,
    CASE
      WHEN target_type IN ('user', 'group') THEN target_type
      WHEN category_type = 'Account' THEN 'account'
      WHEN category_type IN ('User', 'User Settings') THEN 'user'
      ELSE lower(category_type)
    END AS level,
    value_kind IN ('from_to', 'set_to')
      AND lower(new_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
      AND NOT lower(coalesce(old_value, '')) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
      AS turned_off,
    value_kind = 'from_to'
      AND lower(old_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
      AND NOT lower(new_value) IN ('off', 'disabled', 'disable', 'false', 'no', 'none', 'never', 'not required')
      AS turned_on
  FROM targeted
)
SELECT
  *,
  -- the change as one line for alerts and reports: "<setting>: <old> → <new>" (from_to),
  -- "<setting>: <new>" (set_to, value), the value itself (bare); none has no change
  CASE value_kind
    WHEN 'none' THEN CAST(NULL AS STRING)
    WHEN 'bare' THEN new_value
    WHEN 'from_to' THEN concat(coalesce(setting, ''), ': ', old_value, ' → ', new_value)
    ELSE concat(coalesce(setting, ''), ': ', coalesce(new_value, ''))
  END AS change_text
FROM parsed
