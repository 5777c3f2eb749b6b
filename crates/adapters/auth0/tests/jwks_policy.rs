//! The JWKS cache policy in numbers: how many times Auth0's key set is fetched per 1,000 verifications,
//! with a steady key, with a rotation in the middle, and under a flood of tokens naming unknown keys.
//! The counts are asserted (they are the policy) and printed for the record.

use std::sync::Arc;

use galley_auth0::auth0_verifier;
use galley_crypto::JwksIntervals;
use galley_identity::{AuthFailure, TokenVerifier as _};
use galley_kernel::SystemClock;
use galley_test_support::auth0::{AUDIENCE, FakeAuth0};

const VERIFICATIONS: usize = 1_000;

async fn setup() -> (FakeAuth0, galley_crypto::JwtVerifier) {
    let tenant = FakeAuth0::start().await;
    let (verifier, _) = auth0_verifier(
        tenant.base_url(),
        tenant.base_url(),
        AUDIENCE,
        Arc::new(SystemClock),
        JwksIntervals::default(),
    )
    .expect("verifier");
    (tenant, verifier)
}

#[tokio::test]
async fn a_steady_key_is_fetched_once_per_thousand_verifications() {
    let (tenant, verifier) = setup().await;
    let token = tenant.sign(&tenant.access_claims("auth0|steady"));
    for _ in 0..VERIFICATIONS {
        verifier.verify_access(&token).await.expect("valid");
    }
    eprintln!("JWKS fetches per {VERIFICATIONS} verifications, steady key: {}", tenant.jwks_fetches());
    assert_eq!(tenant.jwks_fetches(), 1);
}

#[tokio::test]
async fn a_rotation_costs_one_refetch() {
    let (tenant, verifier) = setup().await;
    let old = tenant.sign(&tenant.access_claims("auth0|rotating"));
    for _ in 0..VERIFICATIONS / 2 {
        verifier.verify_access(&old).await.expect("valid");
    }
    tenant.rotate_keys().await;
    let new = tenant.sign(&tenant.access_claims("auth0|rotating"));
    for i in 0..VERIFICATIONS / 2 {
        // Old and new tokens side by side, as during a real rotation.
        let token = if i % 2 == 0 { &old } else { &new };
        verifier.verify_access(token).await.expect("valid");
    }
    eprintln!("JWKS fetches per {VERIFICATIONS} verifications, one rotation: {}", tenant.jwks_fetches());
    assert_eq!(tenant.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_is_rate_limited() {
    let (tenant, verifier) = setup().await;
    let real = tenant.sign(&tenant.access_claims("auth0|victim"));
    verifier.verify_access(&real).await.expect("valid");
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    for i in 0..VERIFICATIONS {
        let mut forged_header = header.clone();
        forged_header["kid"] = serde_json::json!(format!("forged-{i}"));
        let forged = reencode_header(&real, &forged_header);
        assert_eq!(verifier.verify_access(&forged).await, Err(AuthFailure::UnknownKey));
    }
    eprintln!(
        "JWKS fetches per {VERIFICATIONS} forged kids (after the first load): {}",
        tenant.jwks_fetches() - 1
    );
    assert_eq!(tenant.jwks_fetches(), 2, "the first load, then one refetch per 10 s however many forgeries");
}

fn reencode_header(token: &str, header: &serde_json::Value) -> String {
    use base64::Engine as _;
    let rest = token.split_once('.').map(|(_, rest)| rest).unwrap_or_default();
    format!("{}.{rest}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string()))
}
