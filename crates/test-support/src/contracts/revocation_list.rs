//! The revocation list contract (in-memory now, Redis later). Ids are random per case and nothing
//! assumes an empty list, so the suite runs against a server shared with other runs.

use std::sync::Arc;
use std::time::Duration;

use galley_identity::RevocationList;

type List = Arc<dyn RevocationList>;

fn id(kind: &str) -> String {
    format!("contract:{kind}:{}", uuid::Uuid::new_v4())
}

pub async fn revoked_ids_are_revoked_and_others_are_not(list: List) {
    let token = id("jti");
    let session = id("sid");
    let other = id("jti");
    assert!(!list.is_revoked(&token).await.expect("is_revoked"));

    list.revoke(&token, Duration::from_secs(60)).await.expect("revoke");
    list.revoke(&session, Duration::from_secs(60)).await.expect("revoke");
    assert!(list.is_revoked(&token).await.expect("is_revoked"));
    assert!(list.is_revoked(&session).await.expect("is_revoked"));
    assert!(!list.is_revoked(&other).await.expect("is_revoked"), "only the revoked ids");

    list.revoke(&token, Duration::from_secs(60)).await.expect("revoking twice is fine");
    assert!(list.is_revoked(&token).await.expect("is_revoked"));
}

pub async fn revocations_expire_after_their_ttl(list: List) {
    let short = id("short");
    let long = id("long");
    list.revoke(&short, Duration::from_millis(200)).await.expect("revoke");
    list.revoke(&long, Duration::from_secs(60)).await.expect("revoke");
    assert!(list.is_revoked(&short).await.expect("is_revoked"), "revoked until the TTL ends");
    // Bounded wait: expiry must happen within a few TTLs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while list.is_revoked(&short).await.expect("is_revoked") {
        assert!(tokio::time::Instant::now() < deadline, "revocation outlived its TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(list.is_revoked(&long).await.expect("is_revoked"), "a longer TTL keeps its revocation");
}

/// Expands into one `#[tokio::test]` per revocation list contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn RevocationList>, guard))`, the guard (a server
/// handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed.
#[macro_export]
macro_rules! revocation_list_contract_tests {
    ($make:expr) => {
        $crate::revocation_list_contract_tests!(@cases $make;
            revoked_ids_are_revoked_and_others_are_not,
            revocations_expire_after_their_ttl,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::revocation_list::$case).await;
            }
        )+
    };
}
