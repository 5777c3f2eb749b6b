//! The distributed shape, for real: recipes-api, rss-api and rss-worker as three OS processes
//! (`galley run <service>`, configured only by `GALLEY__*` variables as in production), sharing Redis
//! (cache, sign-in counters, revoked tokens), RabbitMQ (fetch requests and replies) and one document
//! store: a SQLite file, or MongoDB when `GALLEY_TEST_MONGODB_URI` names a server. The full flows run
//! through them: sign-up, sign-in, recipes CRUD, RSS fetch → entries, sign-out honoured by both APIs,
//! and a clean stop on SIGTERM.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use galley_test_support::accounts::PASSWORD;
use galley_test_support::feeds::FixtureServer;
use galley_test_support::mongodb::{self, MongoTestDatabase};
use galley_test_support::rabbitmq::{QueuePrefix, shared_broker_url};
use galley_test_support::redis::PrefixCleanup;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Distributed, SHARED_REDIS, free_port, json_of, rabbitmq_environment};

#[tokio::test]
async fn three_processes_on_redis_rabbitmq_and_a_shared_store_serve_every_flow() {
    let data = tempfile::tempdir().expect("temp dir");
    let database = data.path().join("galley.db").display().to_string();
    run_flows(data.path(), &[("GALLEY__STORE__EMBEDDED__PATH", database)]).await;
}

#[tokio::test]
#[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
async fn three_processes_on_mongodb_redis_and_rabbitmq_serve_every_flow() {
    let Some(database) = MongoTestDatabase::from_env() else {
        eprintln!("SKIPPED: GALLEY_TEST_MONGODB_URI names no MongoDB server");
        return;
    };
    let data = tempfile::tempdir().expect("temp dir");
    let store = [
        ("GALLEY__STORE__BACKEND", "mongodb".to_owned()),
        ("GALLEY__STORE__MONGODB__URI", database.uri.clone()),
        ("GALLEY__STORE__MONGODB__DATABASE", database.name.clone()),
    ];
    tokio::time::timeout(mongodb::TEST_TIMEOUT, run_flows(data.path(), &store))
        .await
        .unwrap_or_else(|_| panic!("the flows on MongoDB did not finish within {:?}", mongodb::TEST_TIMEOUT));
}

async fn run_flows(data_dir: &Path, store: &[(&str, String)]) {
    let redis = PrefixCleanup::fresh(SHARED_REDIS);
    let queues = QueuePrefix::fresh(&shared_broker_url(), &["rss.fetch.requested", "rss.fetch.completed"]);
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let (recipes_port, rss_port, worker_port) = (free_port(), free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{recipes_port}/");
    let environment = rabbitmq_environment(data_dir, store, &redis.prefix, &queues, &issuer);

    let Distributed { recipes, rss, worker } =
        Distributed::start(&client, (recipes_port, rss_port, worker_port), &environment).await;

    // Accounts, on recipes-api.
    let signup = json!({"email": "alice@example.com", "username": "alice", "password": PASSWORD});
    let created =
        client.post(format!("{}/auth/signup", recipes.base)).json(&signup).send().await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signin = json!({"username": "alice", "password": PASSWORD});
    let tokens = json_of(client.post(format!("{}/auth/signin", recipes.base)).json(&signin)).await;
    let token = tokens["access_token"].as_str().expect("access token").to_owned();

    // Recipes CRUD.
    let recipe = json!({"name": "Phở bò", "tags": ["Vietnamese"], "ingredients": ["rice noodles"], "instructions": ["Simmer."]});
    let created = client
        .post(format!("{}/recipes", recipes.base))
        .bearer_auth(&token)
        .json(&recipe)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let etag = created.headers()["etag"].to_str().expect("etag").to_owned();
    let created: Value = created.json().await.expect("json");
    let path = format!("{}/recipes/{}", recipes.base, created["id"].as_str().expect("id"));
    let renamed = json!({"name": "Phở gà", "tags": ["vietnamese"], "ingredients": ["rice noodles"], "instructions": ["Simmer."]});
    // Both replacements are conditional on the ETag of the first version: the second one is stale.
    let replace_first_version =
        |body: &Value| client.put(&path).bearer_auth(&token).header("If-Match", &etag).json(body).send();
    assert_eq!(replace_first_version(&renamed).await.expect("sent").status(), StatusCode::OK);
    assert_eq!(replace_first_version(&recipe).await.expect("sent").status(), StatusCode::PRECONDITION_FAILED);
    let listed = json_of(client.get(format!("{}/recipes?q=phở", recipes.base))).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "Phở gà");

    // RSS: rss-api verifies the issuer's token, the worker process fetches, entries are listed.
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let feed = feeds.url("/atom.xml");
    let accepted = client
        .post(format!("{}/rss/fetch", rss.base))
        .bearer_auth(&token)
        .json(&json!({"url": feed}))
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job_id = accepted.json::<Value>().await.expect("json")["job_id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = json_of(client.get(format!("{}/rss/jobs/{job_id}", rss.base)).bearer_auth(&token)).await;
        if job["status"] == "done" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "job not final in time: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["inserted"], 2, "{job}");
    let entries =
        json_of(client.get(format!("{}/rss/entries", rss.base)).query(&[("feed_url", feed.as_str())])).await;
    assert_eq!(entries["total"], 2, "{entries}");

    // Delete, then sign out: the revocation lives in Redis, so rss-api refuses the token at once too.
    let deleted = client.delete(&path).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(client.get(&path).send().await.expect("sent").status(), StatusCode::NOT_FOUND);
    let signed_out =
        client.post(format!("{}/auth/signout", recipes.base)).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    let refused = client
        .post(format!("{}/rss/fetch", rss.base))
        .bearer_auth(&token)
        .json(&json!({"url": feed}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a signed-out token is refused by rss-api");

    for service in [worker, rss, recipes] {
        service.stop().await;
    }
}
