//! `KmsEnvelope` against moto (a local KMS from PyPI, installed by `scripts/python-tools.sh`): one
//! moto server for the whole test binary on a free loopback port; each case creates its own keys.

use galley_aws::AwsClientSettings;
use galley_identity::{EnvelopeError, SecretContext, SecretEnvelope};
use galley_kms::KmsEnvelope;
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};

/// The SDK configuration for the shared moto, with static credentials (no process environment).
async fn config() -> aws_sdk_kms::config::Builder {
    let settings =
        AwsClientSettings { region: Some(REGION.into()), endpoint: Some(MotoServer::shared().endpoint()) };
    let sdk = galley_aws::load_sdk_config(&settings).await;
    let credentials =
        aws_sdk_kms::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "tests");
    aws_sdk_kms::config::Builder::from(&sdk).credentials_provider(credentials)
}

async fn envelope(key_id: &str) -> KmsEnvelope {
    KmsEnvelope::with_config(config().await, key_id).await.expect("the key is usable")
}

fn context(kid: &str) -> SecretContext {
    SecretContext::new("galley/signing-key").with("kid", kid)
}

const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n";

#[tokio::test]
async fn a_sealed_secret_holds_no_plaintext_and_opens_under_its_key_and_context_only() {
    let key_id = MotoServer::shared().create_kms_key().await;
    let kms = envelope(&key_id).await;
    let sealed = kms.seal(PEM, &context("k1")).await.expect("sealed");
    assert!(!sealed.windows(5).any(|window| window == b"BEGIN"), "no PEM in the envelope");
    assert_ne!(sealed, kms.seal(PEM, &context("k1")).await.expect("sealed"), "a fresh data key each time");
    assert_eq!(kms.open(&sealed, &context("k1")).await.expect("opens"), PEM);

    // A fresh client (empty data-key cache) opens it too: the wrapped key travels with the secret.
    assert_eq!(envelope(&key_id).await.open(&sealed, &context("k1")).await.expect("opens"), PEM);

    let moved = envelope(&key_id).await.open(&sealed, &context("k2")).await;
    assert!(matches!(moved, Err(EnvelopeError::Refused(_))), "KMS refuses another context: {moved:?}");
    // Once cached, the context still has to match (the cache is keyed by it, and the AEAD binds it).
    assert!(matches!(kms.open(&sealed, &context("k2")).await, Err(EnvelopeError::Refused(_))));
}

#[tokio::test]
async fn another_kms_key_refuses_to_open_it() {
    let moto = MotoServer::shared();
    let (right, wrong) = (moto.create_kms_key().await, moto.create_kms_key().await);
    let sealed = envelope(&right).await.seal(PEM, &context("k")).await.expect("sealed");
    match envelope(&wrong).await.open(&sealed, &context("k")).await {
        Err(EnvelopeError::Refused(reason)) => assert!(reason.contains("Decrypt refused"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(envelope(&wrong).await.wrapping_key(), format!("KMS key {wrong}"));
}

#[tokio::test]
async fn tampered_envelopes_do_not_open() {
    let key_id = MotoServer::shared().create_kms_key().await;
    let kms = envelope(&key_id).await;
    let sealed = kms.seal(PEM, &context("k")).await.expect("sealed");
    let mut tampered = sealed.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    assert!(matches!(kms.open(&tampered, &context("k")).await, Err(EnvelopeError::Refused(_))));
}

#[tokio::test]
async fn an_unknown_key_fails_at_connect_and_an_unreachable_kms_is_unavailable() {
    let missing = KmsEnvelope::with_config(config().await, "alias/galley-missing").await;
    assert!(matches!(missing, Err(EnvelopeError::Refused(_))), "{missing:?}");

    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let settings =
        AwsClientSettings { region: Some(REGION.into()), endpoint: Some("http://127.0.0.1:9".into()) };
    let sdk = galley_aws::load_sdk_config(&settings).await;
    let credentials =
        aws_sdk_kms::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "tests");
    let builder = aws_sdk_kms::config::Builder::from(&sdk).credentials_provider(credentials);
    let unreachable = KmsEnvelope::with_config(builder, "alias/anything").await;
    assert!(matches!(unreachable, Err(EnvelopeError::Unavailable(_))), "{unreachable:?}");
}
