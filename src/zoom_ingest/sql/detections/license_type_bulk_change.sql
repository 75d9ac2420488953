-- title: Many users' license type changed in a short time
-- severity: medium
-- description: The user type or license of 10 or more distinct users was changed within 60
--   minutes (Licensed to Basic, Basic to Licensed, add-on licenses). Mass downgrades
--   disrupt the business; mass upgrades cost money; both are what a script with a stolen
--   admin token does. Reported once per episode, with the users in it.
-- parsing: reads views/operation_changes.sql: from/to and "set to" changes of a user's
--   "User Type", "License Type" or a setting naming a license, in any section ("Update User
--   <user>  - User Type: from Basic to Licensed", "Change Role"-style heads, multi-change
--   details). Users added with a type ("Add User <user>  - User Type: Basic") are new
--   users, not changes, and do not count. Each change closes a 60-minute window;
--   overlapping windows with 10+ users form one episode. Tune the 10 and the 60 in params.
-- alert_id: sha2 of "license_type_bulk_change|<unix seconds of the episode's first change>".
WITH params AS (
  SELECT 10 AS min_users, 60 AS window_minutes
),
changes AS (
  SELECT lw_id, time, operator, target, old_value, new_value
  FROM operation_changes
  WHERE
    time >= current_timestamp() - INTERVAL 30 DAYS
    AND target_type = 'user'
    AND value_kind IN ('from_to', 'set_to')
    AND lower(setting) RLIKE 'user type|licen[cs]e'
    AND lower(coalesce(old_value, '')) <> lower(new_value)
),
windows AS (
  SELECT c.lw_id, c.time AS window_end, count(DISTINCT e.target) AS users
  FROM changes AS c
  CROSS JOIN params AS p
  JOIN changes AS e
    ON unix_seconds(e.time) > unix_seconds(c.time) - p.window_minutes * 60 AND e.time <= c.time
  GROUP BY c.lw_id, c.time
),
busy AS (
  SELECT
    w.window_end,
    w.lw_id,
    CASE
      WHEN unix_seconds(lag(w.window_end) OVER (ORDER BY w.window_end, w.lw_id))
        > unix_seconds(w.window_end) - p.window_minutes * 60
      THEN 0
      ELSE 1
    END AS starts_episode
  FROM windows AS w
  CROSS JOIN params AS p
  WHERE w.users >= p.min_users
),
numbered AS (
  SELECT
    window_end,
    sum(starts_episode) OVER (
      ORDER BY window_end, lw_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS episode
  FROM busy
),
bounds AS (
  SELECT
    n.episode,
    unix_seconds(min(n.window_end)) - max(p.window_minutes) * 60 AS range_start,
    unix_seconds(max(n.window_end)) AS range_end
  FROM numbered AS n
  CROSS JOIN params AS p
  GROUP BY n.episode
),
episodes AS (
  SELECT
    b.episode,
    min(c.time) AS first_time,
    count(DISTINCT c.target) AS users,
    count(*) AS changes,
    array_join(array_sort(collect_set(c.operator)), ', ') AS operators,
    array_join(array_sort(collect_set(c.target)), ', ') AS targets,
    array_join(array_sort(collect_set(concat(coalesce(c.old_value, '(not set)'), ' → ', c.new_value))), ', ') AS moves
  FROM bounds AS b
  JOIN changes AS c ON unix_seconds(c.time) > b.range_start AND unix_seconds(c.time) <= b.range_end
  GROUP BY b.episode
)
SELECT
  sha2(concat('license_type_bulk_change|', CAST(unix_seconds(first_time) AS STRING)), 256) AS alert_id,
  'license_type_bulk_change' AS detection,
  'medium' AS severity,
  first_time AS time,
  operators AS actor,
  targets AS target,
  concat(
    CAST(users AS STRING), ' users had their license type changed within ',
    CAST((SELECT window_minutes FROM params) AS STRING), ' minutes (', CAST(changes AS STRING),
    ' changes: ', moves, ')'
  ) AS change
FROM episodes
ORDER BY time, alert_id
