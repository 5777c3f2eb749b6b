//! The distributed shape on AWS SQS: recipes-api, rss-api and rss-worker as three OS processes
//! (`galley run <service>`, configured only by `GALLEY__*` and `AWS_*` variables as in production),
//! sharing Redis, SQS (a private moto on loopback, fetch requests and replies) and one SQLite file:
//! sign-in, RSS fetch → job done → entries, and sign-out honoured by rss-api. The RabbitMQ variant
//! with every flow is `distributed.rs`; the worker drills on SQS are in `services/rss-worker/tests/sqs.rs`.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use galley_test_support::accounts::PASSWORD;
use galley_test_support::feeds::FixtureServer;
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};
use galley_test_support::redis::PrefixCleanup;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Distributed, SHARED_REDIS, free_port, json_of};

#[tokio::test]
async fn three_processes_on_redis_sqs_and_a_shared_store_fetch_feeds_and_honour_sign_out() {
    let data = tempfile::tempdir().expect("temp dir");
    let moto = MotoServer::start();
    let redis = PrefixCleanup::fresh(SHARED_REDIS);
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let (recipes_port, rss_port, worker_port) = (free_port(), free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{recipes_port}/");
    let environment: Vec<(String, String)> = [
        ("GALLEY_CONFIG_DIR", data.path().join("no-config").display().to_string()),
        ("GALLEY__STORE__EMBEDDED__PATH", data.path().join("galley.db").display().to_string()),
        ("GALLEY__CACHE__BACKEND", "redis".into()),
        ("GALLEY__CACHE__REDIS__URL", SHARED_REDIS.into()),
        ("GALLEY__CACHE__REDIS__PREFIX", redis.prefix.clone()),
        ("GALLEY__BUS__BACKEND", "sqs".into()),
        ("GALLEY__BUS__SQS__REGION", REGION.into()),
        ("GALLEY__BUS__SQS__ENDPOINT", moto.endpoint()),
        ("GALLEY__BUS__SQS__VISIBILITY_TIMEOUT", "4".into()),
        ("GALLEY__BUS__SQS__WAIT_TIME", "2".into()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ("GALLEY__IDENTITY__ISSUER", issuer),
        ("GALLEY__IDENTITY__COOKIE_KEY", "Z2FsbGV5LXRlc3QtY29va2llLWtleS0zMi1ieXRlcy1sb25nLSEhIQ==".into()),
        ("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS", "127.0.0.1/32".into()),
        ("GALLEY__RECIPES__SEED_SAMPLES", "false".into()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();

    let Distributed { recipes, rss, worker } =
        Distributed::start(&client, (recipes_port, rss_port, worker_port), &environment).await;

    let signup = json!({"email": "alice@example.com", "username": "alice", "password": PASSWORD});
    let created =
        client.post(format!("{}/auth/signup", recipes.base)).json(&signup).send().await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signin = json!({"username": "alice", "password": PASSWORD});
    let tokens = json_of(client.post(format!("{}/auth/signin", recipes.base)).json(&signin)).await;
    let token = tokens["access_token"].as_str().expect("access token").to_owned();

    // rss-api queues the request on SQS, the worker process fetches and replies over SQS.
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let feed = feeds.url("/atom.xml");
    let fetch =
        || client.post(format!("{}/rss/fetch", rss.base)).bearer_auth(&token).json(&json!({"url": feed}));
    let accepted = fetch().send().await.expect("sent");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job_id = accepted.json::<Value>().await.expect("json")["job_id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
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

    // Sign out on recipes-api: the revocation lives in Redis, so rss-api refuses the token at once.
    let signed_out =
        client.post(format!("{}/auth/signout", recipes.base)).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    let refused = fetch().send().await.expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a signed-out token is refused by rss-api");

    for service in [worker, rss, recipes] {
        service.stop().await;
    }
}
