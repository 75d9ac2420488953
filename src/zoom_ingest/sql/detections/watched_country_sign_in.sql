-- title: Sign-in from a watched country
-- severity: high
-- description: A user signed in from an address registered in one of the watched countries:
--   by default Cuba, Iran, North Korea and Syria (countries under comprehensive US
--   sanctions, where few companies have staff). Set your own list (ISO 3166 alpha-2 codes,
--   comma-separated) in params, or with the detections' --watched-countries /
--   ZOOM_INGEST_WATCHED_COUNTRIES setting.
-- parsing: countries come from zoom_ip_countries (offline IP-to-country database, by the
--   registry that allocated the address); the last 30 days of sign-ins.
-- alert_id: sha2 of "watched_country_sign_in|<lw_id>", 256 bits.
WITH params AS (
  SELECT 'CU,IR,KP,SY' AS watched_countries
),
watched AS (
  SELECT upper(trim(code)) AS country
  FROM params
  LATERAL VIEW explode(split(watched_countries, ',')) codes AS code
  WHERE trim(code) <> ''
)
SELECT
  sha2(concat('watched_country_sign_in|', a.lw_id), 256) AS alert_id,
  'watched_country_sign_in' AS detection,
  'high' AS severity,
  a.time,
  a.ip_address AS actor,
  a.email AS target,
  concat('sign-in from ', c.country, ' (', coalesce(a.client_type, '?'), ')') AS change
FROM activity_logs AS a
JOIN zoom_ip_countries AS c ON c.ip_address = a.ip_address
JOIN watched AS w ON w.country = c.country
WHERE a.type = 'Sign in' AND a.time >= current_timestamp() - INTERVAL 30 DAYS
ORDER BY time, alert_id
