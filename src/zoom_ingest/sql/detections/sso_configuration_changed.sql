-- title: SSO / SAML configuration changed
-- severity: high
-- description: The single sign-on configuration was changed: the identity provider's
--   sign-in or sign-out URL, its certificate, the issuer (entity ID), the binding, SAML
--   attribute or group mappings, or the SSO settings as a whole. Whoever controls the
--   identity provider the account trusts can sign in as anyone. One alert per operation.
-- parsing: reads views/operation_changes.sql. A change (from/to, set to, or a value) whose
--   section or setting mentions single sign-on, SSO, SAML, identity provider or IdP, except
--   on/off switches of "sign in with SSO" (sign_in_methods_changed reports those).
-- alert_id: sha2 of "sso_configuration_changed|<lw_id>", 256 bits.
WITH changes AS (
  SELECT *, lower(setting) AS s, lower(section) AS sec
  FROM operation_changes
  WHERE
    time >= current_timestamp() - INTERVAL 30 DAYS
    AND setting IS NOT NULL
    AND lower(coalesce(old_value, '')) <> lower(coalesce(new_value, ''))
)
SELECT
  sha2(concat('sso_configuration_changed|', lw_id), 256) AS alert_id,
  'sso_configuration_changed' AS detection,
  'high' AS severity,
  time,
  operator AS actor,
  coalesce(target, level) AS target,
  array_join(
    array_sort(collect_list(change_text)),
    '; '
  ) AS change
FROM changes
WHERE
  concat(sec, ' | ', s) RLIKE 'single sign[- ]?on|(^|[^a-z])(sso|saml|idp)([^a-z]|$)|identity provider'
  AND NOT (s RLIKE '^(allow users to )?(sign|log)[- ]?in with' AND (turned_on OR turned_off))
GROUP BY lw_id, time, operator, coalesce(target, level)
ORDER BY time, alert_id
