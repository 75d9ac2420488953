-- title: Impossible travel: one user in two countries within a short time
-- severity: high
-- description: Two consecutive activity records of one user (sign-ins and sign-outs) come
--   from addresses in two different countries less than 60 minutes apart (tune
--   travel_minutes in params, or the detections' --travel-window / ZOOM_INGEST_TRAVEL_WINDOW
--   setting). Nobody travels that fast: one of the sessions is someone else, or a VPN.
-- parsing: countries come from zoom_ip_countries (offline IP-to-country database, by the
--   registry that allocated the address); records whose address has no country are skipped
--   (they neither start nor end a trip). Alerts for the last 30 days, at the second record;
--   one per user, pair of countries and UTC day (the way back, or a VPN flapping between
--   two exits, repeats the first hop and is not raised again).
-- alert_id: sha2 of "impossible_travel|<lw_id of the second record>".
WITH params AS (
  SELECT 60 AS travel_minutes
),
located AS (
  SELECT a.lw_id, a.time, a.email, a.ip_address, c.country
  FROM activity_logs AS a
  JOIN zoom_ip_countries AS c ON c.ip_address = a.ip_address
  WHERE a.email IS NOT NULL AND c.country IS NOT NULL
),
hops AS (
  SELECT
    *,
    lag(time) OVER (PARTITION BY email ORDER BY time, lw_id) AS prev_time,
    lag(country) OVER (PARTITION BY email ORDER BY time, lw_id) AS prev_country,
    lag(ip_address) OVER (PARTITION BY email ORDER BY time, lw_id) AS prev_ip
  FROM located
),
trips AS (
  -- one alert per user, pair of countries and UTC day: the way back (A → B → A) and a
  -- VPN flapping between two exits repeat the first hop
  SELECT
    h.*,
    row_number() OVER (
      PARTITION BY h.email, least(h.country, h.prev_country), greatest(h.country, h.prev_country),
        CAST(h.time AS DATE)
      ORDER BY h.time, h.lw_id
    ) AS hop_number
  FROM hops AS h
  CROSS JOIN params AS p
  WHERE
    h.prev_country IS NOT NULL
    AND h.country <> h.prev_country
    AND unix_seconds(h.time) - unix_seconds(h.prev_time) < p.travel_minutes * 60
)
SELECT
  sha2(concat('impossible_travel|', h.lw_id), 256) AS alert_id,
  'impossible_travel' AS detection,
  'high' AS severity,
  h.time,
  h.ip_address AS actor,
  h.email AS target,
  concat(
    h.prev_country, ' → ', h.country, ' within ',
    CAST(CAST(floor((unix_seconds(h.time) - unix_seconds(h.prev_time)) / 60) AS BIGINT) AS STRING),
    ' minutes (', h.prev_ip, ' → ', h.ip_address, ')'
  ) AS change
FROM trips AS h
WHERE h.hop_number = 1 AND h.time >= current_timestamp() - INTERVAL 30 DAYS
ORDER BY time, alert_id
