-- title: First sign-in from a new country for a user
-- severity: medium
-- description: A user signed in from a country never seen for them before, after a
--   learning period: the user's first sign-in with a known country is at least 14 days
--   older (tune learning_days in params, or the detections' --country-learning-days /
--   ZOOM_INGEST_COUNTRY_LEARNING_DAYS setting). A session from an unfamiliar country is the
--   commonest sign of a stolen password; travel and new VPN exits are the usual benign
--   causes.
-- parsing: countries come from zoom_ip_countries (filled by the ingest job from an offline
--   IP-to-country database, by the registry that allocated the address); addresses without
--   a country (private, shared, unknown) are left out. Every sign-in since the start of the
--   data counts as history; alerts are for the last 30 days.
-- alert_id: sha2 of "new_country_sign_in|<lw_id of the first sign-in from that country>".
WITH params AS (
  SELECT 14 AS learning_days
),
located AS (
  SELECT a.lw_id, a.time, a.email, a.ip_address, c.country
  FROM activity_logs AS a
  JOIN zoom_ip_countries AS c ON c.ip_address = a.ip_address
  WHERE a.type = 'Sign in' AND a.email IS NOT NULL AND c.country IS NOT NULL
),
firsts AS (
  SELECT
    *,
    row_number() OVER (PARTITION BY email, country ORDER BY time, lw_id) AS use_number,
    min(time) OVER (PARTITION BY email) AS user_first_time
  FROM located
),
candidates AS (
  SELECT f.lw_id, f.time, f.email, f.ip_address, f.country
  FROM firsts AS f
  CROSS JOIN params AS p
  WHERE
    f.use_number = 1
    AND f.time >= current_timestamp() - INTERVAL 30 DAYS
    AND unix_seconds(f.time) - unix_seconds(f.user_first_time) >= p.learning_days * 86400
),
known AS (
  SELECT
    n.lw_id,
    n.time,
    n.email,
    n.ip_address,
    n.country,
    array_join(array_sort(collect_set(k.country)), ', ') AS earlier_countries
  FROM candidates AS n
  JOIN located AS k ON k.email = n.email AND k.time < n.time
  GROUP BY n.lw_id, n.time, n.email, n.ip_address, n.country
)
SELECT
  sha2(concat('new_country_sign_in|', lw_id), 256) AS alert_id,
  'new_country_sign_in' AS detection,
  'medium' AS severity,
  time,
  ip_address AS actor,
  email AS target,
  concat('first sign-in from ', country, ' (before: ', coalesce(earlier_countries, 'none'), ')') AS change
FROM known
ORDER BY time, alert_id
