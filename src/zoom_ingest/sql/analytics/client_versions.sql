-- title: Clients and versions in use
-- answers: Which Zoom clients and versions signed in during the last 30 days, by how many
--   users, and which versions are outdated?
-- parsing: a version such as "6.2.5 (41233)" is ranked by major, minor, patch and build
--   number. A version is outdated when a newer one of the same client type signed in
--   during the same 30 days. Versions that do not parse ("-" for browsers, blanks) have
--   no rank and are never outdated.
WITH sign_ins AS (
  SELECT
    email,
    time,
    client_type,
    coalesce(nullif(trim(version), ''), '-') AS version,
    try_cast(regexp_extract(version, '^ *([0-9]+)[.]([0-9]+)[.]([0-9]+)', 1) AS BIGINT) AS major,
    try_cast(regexp_extract(version, '^ *([0-9]+)[.]([0-9]+)[.]([0-9]+)', 2) AS BIGINT) AS minor,
    try_cast(regexp_extract(version, '^ *([0-9]+)[.]([0-9]+)[.]([0-9]+)', 3) AS BIGINT) AS patch,
    coalesce(try_cast(regexp_extract(version, '[(]([0-9]+)[)]', 1) AS BIGINT), 0) AS build
  FROM activity_logs
  WHERE
    type = 'Sign in'
    AND client_type IS NOT NULL
    AND time >= current_timestamp() - INTERVAL 30 DAYS
),
ranked AS (
  SELECT
    *,
    -- one sortable number: 6.2.5 (41233) -> 6_002_005_041233 (build below one million)
    major * 1000000000000 + minor * 1000000000 + patch * 1000000 + least(build, 999999)
      AS version_rank
  FROM sign_ins
),
versions AS (
  SELECT
    client_type,
    version,
    max(version_rank) AS version_rank,
    count(DISTINCT email) AS users,
    count(*) AS sign_ins,
    max(time) AS last_seen
  FROM ranked
  GROUP BY client_type, version
),
newest AS (
  SELECT client_type, max_by(version, version_rank) AS latest_version, max(version_rank) AS latest_rank
  FROM versions
  WHERE version_rank IS NOT NULL
  GROUP BY client_type
)
SELECT
  v.client_type,
  v.version,
  v.users,
  v.sign_ins,
  v.last_seen,
  n.latest_version,
  coalesce(v.version_rank < n.latest_rank, false) AS is_outdated
FROM versions AS v
LEFT JOIN newest AS n ON n.client_type = v.client_type
ORDER BY v.client_type, v.version_rank DESC NULLS LAST, v.version
