//! The verifier of Auth0 access tokens, shared by recipes-api (and its Auth0 provider) and rss-api.

use std::sync::Arc;

use galley_crypto::{JwksIntervals, JwtVerifier, RemoteJwks};
use galley_identity::StoreError;
use galley_kernel::Clock;

/// Auth0's keys at `{base}.well-known/jwks.json` (no discovery round trip), cached by `RemoteJwks`
/// (snapshot, single flight, one refetch per unknown `kid` per interval), checked for `issuer` (the
/// base URL, trailing slash included) and `audience`. Auth0 does not type access tokens (`at+jwt`)
/// unless its RFC 9068 profile is on, and names no Galley session in them: the token's digest names it.
pub fn auth0_verifier(
    base_url: &str,
    issuer: &str,
    audience: &str,
    clock: Arc<dyn Clock>,
    intervals: JwksIntervals,
) -> Result<(JwtVerifier, Arc<RemoteJwks>), StoreError> {
    let jwks_uri = format!("{}/.well-known/jwks.json", base_url.trim_end_matches('/'));
    let keys = Arc::new(RemoteJwks::at_jwks_uri(issuer, &jwks_uri, intervals)?);
    let verifier = JwtVerifier::new(keys.clone(), clock, issuer.to_owned(), audience.to_owned())
        .accepting_untyped_tokens()
        .naming_sessions_by_token_digest();
    Ok((verifier, keys))
}
