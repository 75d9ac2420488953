-- title: Two-factor authentication, sign-in password rules or other sign-in security turned off
-- severity: high
-- description: A setting that makes users prove who they are at sign-in was weakened:
--   two-factor / multi-factor authentication, a requirement to sign in with a password, a
--   rule of the sign-in password requirements (letters, numbers, special characters, a
--   minimum length that went down, expiry, reuse), or account lockout after failed sign-ins,
--   for the account, a group or a user. Accounts then fall to a single stolen or guessed
--   factor. One alert per operation, listing every qualifying change of a multi-change detail.
-- parsing: reads views/changed_settings.sql (one row per change of a setting's value). A
--   change qualifies when it is turned_off, or a "minimum … length" whose number went down,
--   and its setting mentions two-factor, 2FA, multi-factor or MFA, or requires a password
--   for sign-in/login, or names a lockout/failed sign-in/password expiry or reuse rule, or
--   its section is a sign-in password requirement or policy ("Sign-In Password Requirement
--   - Have at least 1 letter: from On to Off").
-- alert_id: sha2 of "sign_in_security_disabled|<lw_id>", 256 bits.
SELECT
  sha2(concat('sign_in_security_disabled|', lw_id), 256) AS alert_id,
  'sign_in_security_disabled' AS detection,
  'high' AS severity,
  time,
  operator AS actor,
  coalesce(target, level) AS target,
  array_join(
    array_sort(collect_list(change_text)),
    '; '
  ) AS change
FROM changed_settings
WHERE
  time >= current_timestamp() - INTERVAL 30 DAYS
  AND (
    turned_off
    OR (
      setting_lower RLIKE 'minimum' AND setting_lower RLIKE 'length'
      AND try_cast(new_value AS INT) < try_cast(old_value AS INT)
    )
  )
  AND (
    setting_lower RLIKE '(two|2)[- ]?factor|2fa|multi[- ]?factor|(^|[^a-z])mfa([^a-z]|$)'
    OR (
      setting_lower RLIKE 'password'
      AND setting_lower RLIKE 'sign[- ]?in|log[- ]?in'
      AND setting_lower RLIKE 'require'
    )
    OR setting_lower RLIKE 'lock.*(fail|unsuccessful|attempt)|failed (sign|log)[- ]?in|password.*(expir|reuse|history)'
    OR (
      section_lower RLIKE 'password'
      AND section_lower RLIKE 'sign[- ]?in|log[- ]?in|requirement|policy|polic'
    )
  )
GROUP BY lw_id, time, operator, coalesce(target, level)
ORDER BY time, alert_id
