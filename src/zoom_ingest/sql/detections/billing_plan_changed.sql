-- title: Billing, plan or subscription changed
-- severity: medium
-- description: Something in the Billing category happened (a plan, the number of licenses,
--   add-ons, the billing contact or the payment method changed), or a plan or subscription
--   was changed anywhere else. Unexpected plan changes cost money; a changed billing
--   contact or payment method is a classic step of account takeover and invoice fraud.
--   One alert per operation.
-- parsing: Billing-category operations of any shape (free sentences included) except reads
--   (action View, Download or Export: invoices, reports), and any
--   change from views/operation_changes.sql whose section or setting names a plan, a
--   subscription or billing. change is the parsed changes, or the detail's first 200
--   characters when it has none.
-- alert_id: sha2 of "billing_plan_changed|<lw_id>", 256 bits.
WITH described AS (
  SELECT
    lw_id,
    array_join(
      array_sort(collect_list(change_text)),
      '; '
    ) AS changes,
    max(target) AS target,
    max(
      CASE
        WHEN concat(lower(section), ' | ', lower(setting)) RLIKE '(^|[^a-z])(plan|plans|subscription|subscriptions|billing)([^a-z]|$)'
        THEN 1 ELSE 0
      END
    ) AS about_billing
  FROM operation_changes
  WHERE time >= current_timestamp() - INTERVAL 30 DAYS AND setting IS NOT NULL
  GROUP BY lw_id
)
SELECT
  sha2(concat('billing_plan_changed|', o.lw_id), 256) AS alert_id,
  'billing_plan_changed' AS detection,
  'medium' AS severity,
  o.time,
  o.operator AS actor,
  coalesce(d.target, 'account') AS target,
  coalesce(nullif(d.changes, ''), left(o.operation_detail, 200)) AS change
FROM operation_logs AS o
LEFT JOIN described AS d ON d.lw_id = o.lw_id
WHERE
  o.time >= current_timestamp() - INTERVAL 30 DAYS
  AND (lower(o.category_type) = 'billing' OR d.about_billing = 1)
  AND NOT lower(coalesce(o.action, '')) IN ('view', 'download', 'export')
ORDER BY time, alert_id
