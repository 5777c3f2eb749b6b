//! `MongoStore::connect_following` against the server named by `GALLEY_TEST_MONGODB_URI`: two users
//! stand in for two leases Vault's MongoDB plugin would hand out (created in `admin` with `readWrite` on
//! the case's own database, as the README's role does), and a `watch` channel stands in for
//! `galley_vault::LeasedCredentials`.
//!
//! `#[ignore]`d without a server, like `contracts.rs`. Run by hand with
//! `GALLEY_TEST_MONGODB_URI=mongodb://127.0.0.1:27017` set:
//! `cargo test -p galley-mongo --test leased -- --include-ignored`.
//! The URI must name a loopback server (the test creates users on it) and, if the server enforces
//! authentication, carry a user allowed to create users (`userAdminAnyDatabase` or `root`); the store
//! itself connects with that URI's credentials removed.

use std::time::Duration;

use futures::TryStreamExt as _;
use galley_mongo::{MongoRecipeRepository, MongoStore};
use galley_platform::{Credentials, MongoDbSettings};
use galley_recipes::RecipeRepository;
use galley_test_support::contracts::CASE_TIMEOUT;
use galley_test_support::fixtures::recipe;
use galley_test_support::mongodb::{MongoTestDatabase, MongoTestUser};
use mongodb::bson::{Document, doc};
use mongodb::options::{ClientOptions, FindOptions};

/// How long a rotation may take to reach new operations (a connect and a ping on loopback).
const SWAP_WITHIN: Duration = Duration::from_secs(10);

/// `uri` without its user information (`user:password@`), keeping hosts, path and options.
fn without_credentials(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    format!("{scheme}://{hosts}{tail}")
}

fn leased(user: &MongoTestUser) -> Credentials {
    Credentials { username: user.username.clone(), password: user.password.as_str().into() }
}

/// The user the server says the operations on `store`'s current client authenticate as.
async fn authenticated_as(store: &MongoStore) -> String {
    let status = store
        .database()
        .run_command(doc! { "connectionStatus": 1 })
        .await
        .unwrap_or_else(|error| panic!("connectionStatus: {error}"));
    let users = status.get_document("authInfo").and_then(|info| info.get_array("authenticatedUsers"));
    let users = users.unwrap_or_else(|error| panic!("connectionStatus without authInfo: {error}: {status}"));
    let names: Vec<&str> = users.iter().filter_map(|user| user.as_document()?.get_str("user").ok()).collect();
    assert_eq!(names.len(), 1, "exactly one authenticated user: {status}");
    names[0].to_owned()
}

async fn eventually_authenticated_as(store: &MongoStore, expected: &str) {
    let deadline = tokio::time::Instant::now() + SWAP_WITHIN;
    loop {
        let current = authenticated_as(store).await;
        if current == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still authenticated as {current} {SWAP_WITHIN:?} after {expected} was published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
async fn new_operations_move_to_rotated_credentials_and_running_ones_finish() {
    let Some(database) = MongoTestDatabase::from_env() else { return };
    tokio::time::timeout(CASE_TIMEOUT, rotation_drill(&database))
        .await
        .unwrap_or_else(|_| panic!("the rotation drill did not finish within {CASE_TIMEOUT:?}"));
}

async fn rotation_drill(database: &MongoTestDatabase) {
    let admin_options = ClientOptions::parse(&database.uri).await.expect("GALLEY_TEST_MONGODB_URI parses");
    for host in &admin_options.hosts {
        let host = host.to_string();
        assert!(
            host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]"),
            "the leased-credentials drill creates users: it only runs against a loopback server, not {host}"
        );
    }
    let admin = mongodb::Client::with_options(admin_options).expect("admin client");
    let name = &database.name;
    let user_a =
        MongoTestUser::create(&admin, &database.uri, &format!("{name}_a"), name).await.expect("user a");
    let user_b =
        MongoTestUser::create(&admin, &database.uri, &format!("{name}_b"), name).await.expect("user b");

    let settings = MongoDbSettings {
        uri: without_credentials(&database.uri).into(),
        database: name.clone(),
        timeout: Duration::from_secs(5),
        ..MongoDbSettings::default()
    };
    let (publish, feed) = tokio::sync::watch::channel(leased(&user_a));
    let store = MongoStore::connect_following(&settings, feed).await.expect("connects as user a");
    let recipes = MongoRecipeRepository::new(&store);

    // As A: a repository writes and reads, and the server agrees who is asking.
    assert_eq!(authenticated_as(&store).await, user_a.username);
    let soup = recipe("Phở bò", &["soup"], &["beef"], 0);
    recipes.insert(&soup).await.expect("insert as a");
    assert_eq!(recipes.get(soup.id).await.expect("get as a").map(|r| r.name), Some("Phở bò".to_owned()));

    // An operation running across the swap: a cursor opened as A, one batch read before the swap and
    // the rest (getMore) after it. The server only lets the user who opened a cursor continue it, so
    // this passes only if the cursor stays on the client (and user) it started on.
    let probes = store.collection::<Document>("probes");
    probes.insert_many((0..6).map(|i| doc! { "_id": i })).await.expect("probes as a");
    let mut running = probes
        .find(doc! {})
        .with_options(FindOptions::builder().batch_size(2).sort(doc! { "_id": 1 }).build())
        .await
        .expect("cursor as a");
    let first = running.try_next().await.expect("first batch").expect("a probe");
    drop(probes);

    publish.send(leased(&user_b)).expect("the store follows the feed");
    eventually_authenticated_as(&store, &user_b.username).await;

    let mut rest = vec![first];
    while let Some(probe) = running.try_next().await.expect("the running cursor finishes on the old client") {
        rest.push(probe);
    }
    assert_eq!(rest.len(), 6, "every probe through the cursor opened before the swap");
    drop(running);

    // As B: repositories built before the swap take the new client for new operations.
    let stew = recipe("Bò kho", &["stew"], &["beef"], 1);
    recipes.insert(&stew).await.expect("insert as b");
    assert_eq!(recipes.count().await.expect("count as b"), 2);
    recipes.ping().await.expect("readiness as b");
    store.ping().await.expect("store readiness as b");

    // Credentials that do not work are not swapped in: B keeps serving.
    let wrong = Credentials { username: user_a.username.clone(), password: "not-the-password".into() };
    publish.send(wrong).expect("the store still follows the feed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(authenticated_as(&store).await, user_b.username, "a failed connect keeps the current client");
    assert_eq!(recipes.count().await.expect("count after a failed rotation"), 2);

    store.close().await;
    admin.shutdown().await;
    // `user_a`, `user_b` and then `database` drop here, each through a client of its own.
}

#[test]
fn the_drills_uri_loses_only_its_credentials() {
    assert_eq!(
        without_credentials("mongodb://root:pw@127.0.0.1:27017/?authSource=admin"),
        "mongodb://127.0.0.1:27017/?authSource=admin"
    );
    assert_eq!(without_credentials("mongodb://127.0.0.1:27017"), "mongodb://127.0.0.1:27017");
    assert_eq!(without_credentials("mongodb://u:p@a:1,b:2/db"), "mongodb://a:1,b:2/db");
}
