//! The user repository contract (embedded SQLite now, MongoDB later).
//!
//! Every case makes its own users with random usernames and emails, so the suite also runs against a
//! store shared with other runs. Instants are whole seconds: stores may keep less than nanosecond
//! precision (MongoDB keeps milliseconds).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use galley_identity::{InsertUserError, UniqueField, User, UserRepository};
use galley_kernel::UserId;

type Users = Arc<dyn UserRepository>;

/// `base` followed by twelve random lowercase letters: unique per call and still a valid username
/// (ASCII letters only), so fixtures look like what sign-up lets through.
fn unique_name(base: &str) -> String {
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .bytes()
        .take(12)
        .map(|hex| {
            let value = (hex as char).to_digit(16).unwrap_or_default();
            char::from(b'a' + u8::try_from(value).unwrap_or_default())
        })
        .collect();
    format!("{base}{suffix}")
}

fn now_whole_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

/// A user with a random id, the given username and email (already lower-cased, as the domain stores it).
fn user(username: &str, email: &str, given_name: Option<&str>) -> User {
    User {
        id: UserId::new(uuid::Uuid::now_v7().to_string()),
        username: username.to_owned(),
        email: email.to_owned(),
        given_name: given_name.map(str::to_owned),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        created_at: now_whole_seconds(),
    }
}

/// A fresh user whose username and email are unique.
fn fresh_user(base: &str) -> User {
    let username = unique_name(base);
    let email = format!("{}@example.com", username.to_lowercase());
    user(&username, &email, Some("Alice"))
}

/// The fields a refused insert reported, in a fixed order, or a panic naming what happened instead.
fn duplicates(result: Result<(), InsertUserError>) -> Vec<UniqueField> {
    match result {
        Err(InsertUserError::Duplicate(mut fields)) => {
            fields.sort_by_key(|field| field.as_str());
            fields
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

pub async fn inserted_users_read_back_by_id_and_username(users: Users) {
    let alice = fresh_user("Alice");
    let nameless = user(&unique_name("Bob"), &format!("{}@example.com", unique_name("bob")), None);
    users.insert(&alice).await.expect("insert alice");
    users.insert(&nameless).await.expect("insert a user without a given name");

    assert_eq!(users.find_by_id(&alice.id).await.expect("find"), Some(alice.clone()));
    assert_eq!(users.find_by_username(&alice.username).await.expect("find"), Some(alice.clone()));
    assert_eq!(
        users.find_by_id(&nameless.id).await.expect("find"),
        Some(nameless.clone()),
        "a missing given name reads back as None"
    );
}

pub async fn usernames_match_case_insensitively(users: Users) {
    let alice = fresh_user("AliCe");
    users.insert(&alice).await.expect("insert");
    for spelling in [alice.username.to_lowercase(), alice.username.to_uppercase()] {
        let found = users.find_by_username(&spelling).await.expect("find");
        assert_eq!(found.as_ref().map(|u| &u.id), Some(&alice.id), "looked up as {spelling}");
        assert_eq!(
            found.map(|u| u.username),
            Some(alice.username.clone()),
            "the display form is kept as typed"
        );
    }
}

pub async fn a_taken_username_is_reported_whatever_its_case(users: Users) {
    let first = fresh_user("Carol");
    users.insert(&first).await.expect("insert");
    let mut second = fresh_user("Dave");
    second.username = first.username.to_uppercase();
    assert_eq!(duplicates(users.insert(&second).await), [UniqueField::Username]);
    assert_eq!(users.find_by_id(&second.id).await.expect("find"), None, "a refused user is not stored");
    assert_eq!(
        users.find_by_username(&first.username).await.expect("find").map(|u| u.id),
        Some(first.id),
        "the first owner keeps the name"
    );
}

pub async fn a_taken_email_is_reported(users: Users) {
    let first = fresh_user("Erin");
    users.insert(&first).await.expect("insert");
    let mut second = fresh_user("Frank");
    second.email = first.email.clone();
    assert_eq!(duplicates(users.insert(&second).await), [UniqueField::Email]);
    assert_eq!(users.find_by_id(&second.id).await.expect("find"), None);
    assert_eq!(users.find_by_username(&second.username).await.expect("find"), None);
}

pub async fn every_taken_field_is_reported_at_once(users: Users) {
    let first = fresh_user("Grace");
    let other = fresh_user("Heidi");
    users.insert(&first).await.expect("insert");
    users.insert(&other).await.expect("insert");
    let both = [UniqueField::Email, UniqueField::Username];

    // Both fields of one existing user.
    let mut copy = fresh_user("Ivan");
    copy.username = first.username.clone();
    copy.email = first.email.clone();
    assert_eq!(duplicates(users.insert(&copy).await), both);

    // Each field taken by a different user.
    let mut mixed = fresh_user("Judy");
    mixed.username = first.username.to_lowercase();
    mixed.email = other.email.clone();
    assert_eq!(duplicates(users.insert(&mixed).await), both);
    assert_eq!(users.find_by_id(&mixed.id).await.expect("find"), None);
}

pub async fn concurrent_sign_ups_for_one_username_let_exactly_one_in(users: Users) {
    let username = unique_name("Mallory");
    let attempts = (0..8).map(|i| {
        let users = Arc::clone(&users);
        // Same name in varying case, distinct emails: only the username collides.
        let mut candidate = fresh_user("Racer");
        candidate.username = if i % 2 == 0 { username.clone() } else { username.to_uppercase() };
        tokio::spawn(async move { users.insert(&candidate).await })
    });
    let mut inserted = 0;
    for outcome in futures::future::join_all(attempts).await {
        match outcome.expect("insert task") {
            Ok(()) => inserted += 1,
            refused => assert_eq!(duplicates(refused), [UniqueField::Username]),
        }
    }
    assert_eq!(inserted, 1, "exactly one of the racing sign-ups gets the name");
    assert!(users.find_by_username(&username).await.expect("find").is_some());
}

pub async fn unknown_users_are_absent(users: Users) {
    let id = UserId::new(uuid::Uuid::now_v7().to_string());
    assert_eq!(users.find_by_id(&id).await.expect("find"), None);
    assert_eq!(users.find_by_username(&unique_name("Nobody")).await.expect("find"), None);
}

pub async fn answers_pings(users: Users) {
    users.ping().await.expect("ping");
}

/// Expands into one `#[tokio::test]` per user repository contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn UserRepository>, guard))`, the guard (a temp dir, a
/// server handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed. A leading
/// attribute (`#[ignore = "why"]`) is put on every case.
/// Cases run on a multi-threaded runtime so that concurrency is real, as in production.
#[macro_export]
macro_rules! user_repository_contract_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::user_repository_contract_tests!(@cases [$attr] $make;
            inserted_users_read_back_by_id_and_username,
            usernames_match_case_insensitively,
            a_taken_username_is_reported_whatever_its_case,
            a_taken_email_is_reported,
            every_taken_field_is_reported_at_once,
            concurrent_sign_ups_for_one_username_let_exactly_one_in,
            unknown_users_are_absent,
            answers_pings,
        );
    };
    ($make:expr) => {
        $crate::user_repository_contract_tests!(#[cfg_attr(any(), ignore)] $make);
    };
    (@cases [$attr:meta] $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[$attr]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::users::$case).await;
            }
        )+
    };
}
