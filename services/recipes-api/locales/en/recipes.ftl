# recipes-api messages (English).

problem-recipe_not_found-title = Recipe not found
problem-recipe_not_found-detail = No recipe exists at { $path }.
problem-invalid_credentials-title = Sign-in failed
problem-invalid_credentials-detail = The username or password is incorrect.
problem-invalid_refresh_token-title = Invalid refresh token
problem-invalid_refresh_token-detail = The refresh token is unknown, expired, revoked or was already used. Sign in again.
problem-sign_in_busy-title = Server busy
problem-sign_in_busy-detail = Too many passwords are being checked right now; try again in { $seconds ->
    [one] one second
   *[other] { $seconds } seconds
}.
violation-too_many_bytes = must be at most { $max } bytes long
problem-account_exists-title = Account already exists
problem-account_exists-detail = { $count ->
    [one] This value is already used by another account; see errors.
   *[other] These values are already used by other accounts; see errors.
}
problem-account_blocked-title = Account blocked
problem-account_blocked-detail = This account has been blocked. Contact support to have it unblocked.
violation-password_too_weak = is too weak for the identity provider's password policy
violation-password_leaked = has appeared in a data breach; choose another password
violation-signup_rejected = was refused by the identity provider
