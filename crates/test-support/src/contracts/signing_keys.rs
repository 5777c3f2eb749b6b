//! The signing-key store contract (embedded SQLite now, MongoDB later). Kids are random per case and
//! every check looks only at the case's own keys, so the suite runs against a store shared with other
//! runs. Instants are whole seconds (stores may keep only milliseconds).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use galley_identity::{SigningKeyStore, StoredSigningKey};

type Keys = Arc<dyn SigningKeyStore>;

fn now_whole_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

/// A key created `minutes_after` `base`; the PEM is a stand-in (stores do not parse it).
fn key(base: DateTime<Utc>, minutes_after: i64) -> StoredSigningKey {
    let kid = format!("contract-{}", uuid::Uuid::new_v4());
    StoredSigningKey {
        private_pem: format!("-----BEGIN PRIVATE KEY-----\n{kid}\n-----END PRIVATE KEY-----\n"),
        kid,
        created_at: base + TimeDelta::minutes(minutes_after),
        retired_at: None,
    }
}

/// The stored keys among `mine`, in the order `load` returned them.
async fn load_mine(keys: &Keys, mine: &[&StoredSigningKey]) -> Vec<StoredSigningKey> {
    keys.load()
        .await
        .expect("load")
        .into_iter()
        .filter(|stored| mine.iter().any(|key| key.kid == stored.kid))
        .collect()
}

pub async fn keys_read_back_oldest_first(keys: Keys) {
    let base = now_whole_seconds();
    let middle = key(base, 1);
    let newest = key(base, 2);
    let oldest = key(base, 0);
    // Inserted out of order: the order must come from the creation time.
    for key in [&middle, &newest, &oldest] {
        keys.insert(key).await.expect("insert");
    }
    assert_eq!(load_mine(&keys, &[&oldest, &middle, &newest]).await, [oldest, middle, newest]);
}

pub async fn retired_keys_keep_their_retirement_time(keys: Keys) {
    let base = now_whole_seconds();
    let retiring = key(base, 0);
    let current = key(base, 1);
    keys.insert(&retiring).await.expect("insert");
    keys.insert(&current).await.expect("insert");
    let at = base + TimeDelta::minutes(5);
    keys.retire(&retiring.kid, at).await.expect("retire");

    let expected = StoredSigningKey { retired_at: Some(at), ..retiring.clone() };
    assert_eq!(
        load_mine(&keys, &[&retiring, &current]).await,
        [expected, current],
        "only the retired key changes, and it stays published"
    );
}

pub async fn keys_inserted_already_retired_read_back_so(keys: Keys) {
    let base = now_whole_seconds();
    let retired = StoredSigningKey { retired_at: Some(base + TimeDelta::minutes(1)), ..key(base, 0) };
    keys.insert(&retired).await.expect("insert");
    assert_eq!(load_mine(&keys, &[&retired]).await, [retired]);
}

pub async fn deleted_keys_are_gone(keys: Keys) {
    let base = now_whole_seconds();
    let doomed = key(base, 0);
    let kept = key(base, 1);
    keys.insert(&doomed).await.expect("insert");
    keys.insert(&kept).await.expect("insert");
    keys.delete(&doomed.kid).await.expect("delete");
    assert_eq!(load_mine(&keys, &[&doomed, &kept]).await, [kept]);
}

pub async fn retiring_or_deleting_unknown_keys_is_harmless(keys: Keys) {
    let ghost = key(now_whole_seconds(), 0);
    keys.retire(&ghost.kid, ghost.created_at).await.expect("retire unknown");
    keys.delete(&ghost.kid).await.expect("delete unknown");
    assert!(load_mine(&keys, &[&ghost]).await.is_empty(), "retiring does not create a key");
}

pub async fn replacing_the_private_key_keeps_the_times(keys: Keys) {
    let base = now_whole_seconds();
    let retired = StoredSigningKey { retired_at: Some(base + TimeDelta::minutes(1)), ..key(base, 0) };
    let other = key(base, 1);
    keys.insert(&retired).await.expect("insert");
    keys.insert(&other).await.expect("insert");
    keys.replace_private_pem(&retired.kid, "sealed:v1:opaque").await.expect("replace");
    let expected = StoredSigningKey { private_pem: "sealed:v1:opaque".into(), ..retired.clone() };
    assert_eq!(load_mine(&keys, &[&retired, &other]).await, [expected, other], "only that key changes");

    let ghost = key(base, 2);
    keys.replace_private_pem(&ghost.kid, "sealed:v1:ghost").await.expect("replace unknown");
    assert!(load_mine(&keys, &[&ghost]).await.is_empty(), "replacing does not create a key");
}

/// Expands into one `#[tokio::test]` per signing-key store contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn SigningKeyStore>, guard))`, the guard (a temp dir, a
/// server handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed. A leading
/// attribute (`#[ignore = "why"]`) is put on every case.
#[macro_export]
macro_rules! signing_key_store_contract_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::signing_key_store_contract_tests!(@cases [$attr] $make;
            keys_read_back_oldest_first,
            retired_keys_keep_their_retirement_time,
            keys_inserted_already_retired_read_back_so,
            deleted_keys_are_gone,
            retiring_or_deleting_unknown_keys_is_harmless,
            replacing_the_private_key_keeps_the_times,
        );
    };
    ($make:expr) => {
        $crate::signing_key_store_contract_tests!(#[cfg_attr(any(), ignore)] $make);
    };
    (@cases [$attr:meta] $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[$attr]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::signing_keys::$case).await;
            }
        )+
    };
}
