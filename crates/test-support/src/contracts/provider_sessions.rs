//! The provider-session store contract (embedded SQLite, MongoDB): records are found by key until they
//! expire, replaced by a second `put` under the same key, and gone after `delete`.
//!
//! Keys are random per case, so the suite also runs against a store shared with other runs. Instants are
//! whole seconds of real time, because stores may purge expired records by the wall clock.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use galley_identity::{ProviderSession, ProviderSessionStore};
use galley_kernel::UserId;

type Sessions = Arc<dyn ProviderSessionStore>;

fn now_whole_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

fn session(expires_in: TimeDelta) -> ProviderSession {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let now = now_whole_seconds();
    ProviderSession {
        key: format!("digest:{id}"),
        user_id: UserId::new(format!("auth0|{id}")),
        sealed_refresh_token: Some(format!("sealed-{id}")),
        username: "alice".into(),
        email: "alice@example.com".into(),
        given_name: Some("Alice".into()),
        created_at: now - TimeDelta::days(3),
        expires_at: now + expires_in,
    }
}

pub async fn a_stored_session_is_found_by_its_key(sessions: Sessions) {
    let stored = session(TimeDelta::minutes(15));
    sessions.put(&stored).await.expect("put");
    assert_eq!(sessions.find(&stored.key).await.expect("find"), Some(stored.clone()));
    let mut without_secret = session(TimeDelta::minutes(15));
    without_secret.sealed_refresh_token = None;
    without_secret.given_name = None;
    sessions.put(&without_secret).await.expect("put");
    assert_eq!(sessions.find(&without_secret.key).await.expect("find"), Some(without_secret));
    assert_eq!(sessions.find("digest:unknown").await.expect("find"), None);
}

pub async fn a_second_put_replaces_the_record(sessions: Sessions) {
    let mut stored = session(TimeDelta::minutes(15));
    sessions.put(&stored).await.expect("put");
    stored.sealed_refresh_token = Some("rotated".into());
    sessions.put(&stored).await.expect("put again");
    assert_eq!(sessions.find(&stored.key).await.expect("find"), Some(stored));
}

pub async fn deleted_and_expired_sessions_are_not_found(sessions: Sessions) {
    let stored = session(TimeDelta::minutes(15));
    let other = session(TimeDelta::minutes(15));
    sessions.put(&stored).await.expect("put");
    sessions.put(&other).await.expect("put");
    sessions.delete(&stored.key).await.expect("delete");
    sessions.delete("digest:never-stored").await.expect("deleting nothing is harmless");
    assert_eq!(sessions.find(&stored.key).await.expect("find"), None);
    assert!(sessions.find(&other.key).await.expect("find").is_some(), "only that record went");

    let expired = session(TimeDelta::seconds(-1));
    sessions.put(&expired).await.expect("put");
    assert_eq!(sessions.find(&expired.key).await.expect("find"), None);
}

/// Expands into one `#[tokio::test]` per provider-session store contract case; `$make` as in
/// [`crate::refresh_token_store_contract_tests`].
#[macro_export]
macro_rules! provider_session_store_contract_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::provider_session_store_contract_tests!(@cases [$attr] $make;
            a_stored_session_is_found_by_its_key,
            a_second_put_replaces_the_record,
            deleted_and_expired_sessions_are_not_found,
        );
    };
    ($make:expr) => {
        $crate::provider_session_store_contract_tests!(#[cfg_attr(any(), ignore)] $make);
    };
    (@cases [$attr:meta] $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            #[$attr]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::provider_sessions::$case).await;
            }
        )+
    };
}
