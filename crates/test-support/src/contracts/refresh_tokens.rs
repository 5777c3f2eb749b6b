//! The refresh-token store contract (embedded SQLite, MongoDB): single use, replay detection, atomic
//! consumption under concurrency and revocation of whole families, which stay revoked.
//!
//! Token hashes and family ids are random per case, so the suite also runs against a store shared with
//! other runs. Records are issued "now" (whole seconds) and expire in 30 days of real time, because
//! stores may purge long-expired tokens by the wall clock.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use galley_identity::{ConsumeOutcome, RefreshRecord, RefreshTokenStore};
use galley_kernel::UserId;

type Tokens = Arc<dyn RefreshTokenStore>;

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_whole_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

/// A new family (session) id.
fn family() -> String {
    format!("family-{}", random())
}

/// A live token of `family` with a random hash (the hash is what the store keys on).
fn record(family_id: &str) -> RefreshRecord {
    let issued_at = now_whole_seconds();
    RefreshRecord {
        token_hash: format!("hash-{}", random()),
        family_id: family_id.to_owned(),
        user_id: UserId::new(format!("user-{}", random())),
        issued_at,
        expires_at: issued_at + TimeDelta::days(30),
    }
}

async fn insert(tokens: &Tokens, record: &RefreshRecord) {
    tokens.insert(record).await.expect("insert refresh token");
}

pub async fn a_token_is_fresh_once_then_reported_reused(tokens: Tokens) {
    let token = record(&family());
    insert(&tokens, &token).await;
    assert_eq!(
        tokens.consume(&token.token_hash).await.expect("consume"),
        ConsumeOutcome::Fresh(token.clone()),
        "the first consumption returns the record as stored"
    );
    for _ in 0..2 {
        assert_eq!(
            tokens.consume(&token.token_hash).await.expect("consume"),
            ConsumeOutcome::Reused(token.clone()),
            "every later consumption is a replay, naming the family to revoke"
        );
    }
}

pub async fn concurrent_consumers_see_exactly_one_fresh(tokens: Tokens) {
    let token = record(&family());
    insert(&tokens, &token).await;
    let consumers = (0..8).map(|_| {
        let tokens = Arc::clone(&tokens);
        let hash = token.token_hash.clone();
        tokio::spawn(async move { tokens.consume(&hash).await.expect("consume") })
    });
    let outcomes: Vec<ConsumeOutcome> = futures::future::join_all(consumers)
        .await
        .into_iter()
        .map(|joined| joined.expect("consumer task"))
        .collect();
    let fresh = outcomes.iter().filter(|outcome| matches!(outcome, ConsumeOutcome::Fresh(_))).count();
    let reused = outcomes.iter().filter(|outcome| **outcome == ConsumeOutcome::Reused(token.clone())).count();
    assert_eq!((fresh, reused), (1, 7), "{outcomes:?}");
}

pub async fn revoking_a_family_revokes_all_its_tokens_and_no_others(tokens: Tokens) {
    let session = family();
    let used = record(&session);
    let unused = record(&session);
    let bystander = record(&family());
    for token in [&used, &unused, &bystander] {
        insert(&tokens, token).await;
    }
    assert!(matches!(tokens.consume(&used.token_hash).await.expect("consume"), ConsumeOutcome::Fresh(_)));

    tokens.revoke_family(&session).await.expect("revoke family");

    // Revoked wins over reused: a replay of a used token of a dead session is just revoked.
    for token in [&used, &unused] {
        for _ in 0..2 {
            assert_eq!(
                tokens.consume(&token.token_hash).await.expect("consume"),
                ConsumeOutcome::Revoked,
                "{}",
                token.token_hash
            );
        }
    }
    assert_eq!(
        tokens.consume(&bystander.token_hash).await.expect("consume"),
        ConsumeOutcome::Fresh(bystander.clone()),
        "another family is untouched"
    );
}

/// A refresh that consumed a token just before sign-out revoked its family then inserts the rotated
/// token: that token must not be usable, or the session would outlive its sign-out.
pub async fn a_revoked_family_stays_revoked_for_tokens_inserted_later(tokens: Tokens) {
    let session = family();
    let consumed = record(&session);
    insert(&tokens, &consumed).await;
    assert!(matches!(tokens.consume(&consumed.token_hash).await.expect("consume"), ConsumeOutcome::Fresh(_)));
    tokens.revoke_family(&session).await.expect("revoke family");

    let rotated = record(&session);
    insert(&tokens, &rotated).await;
    assert_eq!(
        tokens.consume(&rotated.token_hash).await.expect("consume"),
        ConsumeOutcome::Revoked,
        "a token born into a revoked family is revoked"
    );
    let bystander = record(&family());
    insert(&tokens, &bystander).await;
    assert!(matches!(
        tokens.consume(&bystander.token_hash).await.expect("consume"),
        ConsumeOutcome::Fresh(_)
    ));
}

pub async fn revoking_an_unknown_family_is_harmless(tokens: Tokens) {
    tokens.revoke_family(&family()).await.expect("revoking a family without tokens");
}

pub async fn unknown_tokens_are_unknown(tokens: Tokens) {
    assert_eq!(
        tokens.consume(&format!("hash-{}", random())).await.expect("consume"),
        ConsumeOutcome::Unknown
    );
}

/// Expands into one `#[tokio::test]` per refresh-token store contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn RefreshTokenStore>, guard))`, the guard (a temp dir,
/// a server handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is
/// printed. Cases run on a multi-threaded runtime so the concurrent consumers really race.
#[macro_export]
macro_rules! refresh_token_store_contract_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::refresh_token_store_contract_tests!(@cases [$attr] $make;
            a_token_is_fresh_once_then_reported_reused,
            concurrent_consumers_see_exactly_one_fresh,
            revoking_a_family_revokes_all_its_tokens_and_no_others,
            a_revoked_family_stays_revoked_for_tokens_inserted_later,
            revoking_an_unknown_family_is_harmless,
            unknown_tokens_are_unknown,
        );
    };
    ($make:expr) => {
        $crate::refresh_token_store_contract_tests!(#[cfg_attr(any(), ignore)] $make);
    };
    (@cases [$attr:meta] $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[$attr]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::refresh_tokens::$case).await;
            }
        )+
    };
}
