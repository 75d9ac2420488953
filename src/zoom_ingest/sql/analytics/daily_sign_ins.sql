-- title: Sign-ins and sign-outs per day
-- answers: How many sign-ins and sign-outs were recorded on each UTC day, and how many
--   distinct users signed in? Dips show outages or ingestion gaps, spikes show migrations,
--   forced re-authentication or abuse.
SELECT
  to_date(time) AS day,
  count_if(type = 'Sign in') AS sign_ins,
  count_if(type = 'Sign out') AS sign_outs,
  count(DISTINCT CASE WHEN type = 'Sign in' THEN email END) AS users_signing_in
FROM activity_logs
GROUP BY to_date(time)
ORDER BY day
