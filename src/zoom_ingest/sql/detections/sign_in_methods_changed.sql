-- title: Sign-in methods changed
-- severity: medium
-- description: The ways users may sign in were changed: SSO (SAML), Google, Apple,
--   Facebook, Microsoft, work email or other sign-in options were turned on or off. A new
--   method can open a path around SSO; a removed one can lock users out. One alert per
--   operation, saying which methods were turned on and which off.
-- parsing: reads views/changed_settings.sql. A change whose setting mentions "sign in
--   with", sign-in or login methods, single sign-on, SSO, SAML, Google, Apple, Facebook or
--   Microsoft that was turned on or off (or a sign-in methods list that changed). Two-factor
--   and password-requirement settings are left to sign_in_security_disabled; other SSO
--   values (URLs, certificates, mappings) to sso_configuration_changed. change reads "turned on: A, B; turned off: C; changed: D: x → y".
-- alert_id: sha2 of "sign_in_methods_changed|<lw_id>", 256 bits.
SELECT
  sha2(concat('sign_in_methods_changed|', lw_id), 256) AS alert_id,
  'sign_in_methods_changed' AS detection,
  'medium' AS severity,
  time,
  operator AS actor,
  coalesce(target, level) AS target,
  concat_ws(
    '; ',
    CASE WHEN count_if(turned_on) > 0 THEN concat('turned on: ', array_join(array_sort(collect_list(CASE WHEN turned_on THEN setting END)), ', ')) END,
    CASE WHEN count_if(turned_off) > 0 THEN concat('turned off: ', array_join(array_sort(collect_list(CASE WHEN turned_off THEN setting END)), ', ')) END,
    CASE
      WHEN count_if(NOT turned_on AND NOT turned_off) > 0 THEN concat(
        'changed: ',
        array_join(
          array_sort(collect_list(
            CASE WHEN NOT turned_on AND NOT turned_off
              THEN change_text END
          )),
          ', '
        )
      )
    END
  ) AS change
FROM changed_settings
WHERE
  time >= current_timestamp() - INTERVAL 30 DAYS
  AND setting_lower RLIKE 'sign[- ]?in with|sign[- ]?in method|log[- ]?in method|log[- ]?in with|single sign[- ]?on|(^|[^a-z])(sso|saml)([^a-z]|$)|google|apple|facebook|microsoft'
  AND NOT setting_lower RLIKE '(two|2)[- ]?factor|2fa|multi[- ]?factor|(^|[^a-z])mfa([^a-z]|$)'
  AND NOT (setting_lower RLIKE 'password' AND setting_lower RLIKE 'require')
  AND (
    turned_on
    OR turned_off
    OR setting_lower RLIKE 'sign[- ]?in method|log[- ]?in method'
  )
GROUP BY lw_id, time, operator, coalesce(target, level)
ORDER BY time, alert_id
