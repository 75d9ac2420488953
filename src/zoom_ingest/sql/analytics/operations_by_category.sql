-- title: Operations per category, action and operator
-- answers: Who did what in the admin portal: how many operations of each category and
--   action each operator performed, and when they did so first and last.
SELECT
  category_type,
  action,
  operator,
  count(*) AS operations,
  min(time) AS first_time,
  max(time) AS last_time
FROM operation_logs
GROUP BY category_type, action, operator
ORDER BY operations DESC, category_type, action, operator
