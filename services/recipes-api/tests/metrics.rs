//! `GET /metrics`: scripted requests against a real recipes-api, then a scrape parsed with a
//! Prometheus text-format parser. Each app has its own registry, so counts are exact even with other
//! tests running in the same process.

mod support;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, Sample};
use reqwest::Method;
use support::{AppOptions, spawn_app, spawn_app_with};

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

async fn scrape(client: &reqwest::Client, url: &str) -> Exposition {
    let response = client.get(url).send().await.expect("scrape sent");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let body = response.text().await.expect("body");
    parse_prometheus(&body).unwrap_or_else(|error| panic!("not Prometheus text ({error:?}):\n{body}"))
}

/// The samples of family `name` (counters may be filed with or without their `_total`).
fn samples<'a>(scrape: &'a Exposition, name: &str) -> Vec<&'a Sample<PrometheusValue>> {
    scrape
        .families
        .get(name)
        .or_else(|| scrape.families.get(name.trim_end_matches("_total")))
        .map(|family| family.iter_samples().collect())
        .unwrap_or_default()
}

fn label(sample: &Sample<PrometheusValue>, name: &str) -> Option<String> {
    sample.get_labelset().ok().and_then(|labels| labels.get_label_value(name).map(str::to_owned))
}

fn number(sample: &Sample<PrometheusValue>) -> f64 {
    match &sample.value {
        PrometheusValue::Counter(counter) => counter.value.as_f64(),
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
        other => panic!("not a number: {other:?}"),
    }
}

/// The counter `galley_http_requests_total{method,route,status}`, 0 when absent.
fn requests(scrape: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    samples(scrape, "galley_http_requests_total")
        .into_iter()
        .filter(|s| {
            label(s, "method").as_deref() == Some(method)
                && label(s, "route").as_deref() == Some(route)
                && label(s, "status").as_deref() == Some(status)
        })
        .map(number)
        .sum()
}

#[tokio::test]
async fn red_metrics_count_each_request_by_route_template_and_status() {
    let app = spawn_app().await;
    let user = app.user("metricscook").await;
    let recipe = app.create_recipe_as(&user, "Phở bò", &["soup"], &["beef"]).await;
    let id = recipe["id"].as_str().expect("id").to_owned();
    for _ in 0..2 {
        assert_eq!(app.get(&format!("/recipes/{id}")).await.status(), 200);
    }
    let missing = "0192f0c4-0000-7000-8000-000000000000";
    assert_eq!(app.get(&format!("/recipes/{missing}")).await.status(), 404);
    assert_eq!(app.get("/no/such/route/12345").await.status(), 404);
    let put = app.as_user(Method::PUT, &format!("/recipes/{id}"), &user).send().await.expect("sent");
    assert!(put.status().is_client_error(), "a PUT without a body fails: {}", put.status());

    assert_eq!(app.sign_in("metricscook", "wrong password!").await.status(), 401);
    let scrape = scrape(&app.client, &app.url("/metrics")).await;

    // Sign-in outcomes, the cache in front of the reads, the Argon2 pool.
    let outcome = |value: &str| {
        samples(&scrape, "galley_auth_sign_ins_total")
            .into_iter()
            .filter(|s| label(s, "outcome").as_deref() == Some(value))
            .map(number)
            .sum::<f64>()
    };
    assert_eq!((outcome("success"), outcome("invalid_credentials"), outcome("locked_out")), (1.0, 1.0, 0.0));
    let cache = |result: &str| {
        samples(&scrape, "galley_cache_operations_total")
            .into_iter()
            .filter(|s| {
                label(s, "operation").as_deref() == Some("get")
                    && label(s, "result").as_deref() == Some(result)
            })
            .map(number)
            .sum::<f64>()
    };
    assert!(cache("miss") >= 1.0, "the first read of the recipe misses");
    assert!(cache("hit") >= 1.0, "the second read of the recipe hits");
    let waits = samples(&scrape, "galley_auth_hashing_wait_seconds");
    let PrometheusValue::Histogram(waits) = &waits.first().expect("hashing waits").value else {
        panic!("histogram")
    };
    assert_eq!(waits.count, Some(4), "the start-up dummy hash, the sign-up hash, two sign-in verifications");
    assert_eq!(
        samples(&scrape, "galley_auth_hashing_queued").iter().map(|s| number(s)).collect::<Vec<_>>(),
        [0.0]
    );

    assert_eq!(requests(&scrape, "POST", "/recipes", "201"), 1.0, "exactly one 201 on POST /recipes");
    assert_eq!(requests(&scrape, "POST", "/auth/signup", "201"), 1.0);
    assert_eq!(requests(&scrape, "POST", "/auth/signin", "200"), 1.0);
    assert_eq!(requests(&scrape, "GET", "/recipes/{id}", "200"), 2.0);
    assert_eq!(requests(&scrape, "GET", "/recipes/{id}", "404"), 1.0);
    assert_eq!(requests(&scrape, "GET", "unmatched", "404"), 1.0);
    assert_eq!(
        samples(&scrape, "galley_http_requests_total")
            .into_iter()
            .filter(|s| label(s, "method").as_deref() == Some("PUT"))
            .count(),
        1
    );

    // Durations are real histograms with explicit buckets, one observation per request.
    let duration = samples(&scrape, "galley_http_request_duration_seconds")
        .into_iter()
        .find(|s| {
            label(s, "route").as_deref() == Some("/recipes") && label(s, "method").as_deref() == Some("POST")
        })
        .expect("duration of POST /recipes");
    let PrometheusValue::Histogram(histogram) = &duration.value else {
        panic!("not a histogram: {duration:?}")
    };
    assert!(histogram.buckets.len() >= 10, "explicit buckets: {histogram:?}");
    let total = histogram.buckets.iter().find(|b| b.upper_bound.is_infinite()).map(|b| b.count.as_f64());
    assert_eq!(histogram.count.or(total.map(|t| t as u64)), Some(1));

    // Only this scrape is in flight while it renders.
    let in_flight = samples(&scrape, "galley_http_requests_in_flight");
    assert_eq!(in_flight.iter().map(|s| number(s)).collect::<Vec<_>>(), [1.0]);

    let build = samples(&scrape, "galley_build_info");
    let build = build.first().expect("build info");
    assert_eq!(label(build, "service").as_deref(), Some("recipes-api"));
    assert_eq!(label(build, "version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert!(label(build, "git_sha").is_some_and(|sha| !sha.is_empty()));

    // No raw path, id or user name ever becomes a label value.
    let all = scrape.families.values().flat_map(|family| family.iter_samples());
    for sample in all {
        let labels = sample.get_labelset().expect("labels");
        for value in labels.iter_values() {
            assert!(
                !value.contains(&id) && !value.contains(missing) && !value.contains("12345"),
                "raw id in a label: {sample:?}"
            );
            assert!(!value.contains("metricscook"), "user name in a label: {sample:?}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_bind_moves_the_endpoint_off_the_api_address() {
    let app = spawn_app_with(AppOptions { separate_metrics_listener: true, ..AppOptions::default() }).await;
    let metrics_address = app.metrics_address.expect("separate metrics listener");
    assert_ne!(metrics_address, app.address);
    assert_eq!(app.get("/recipes").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 404, "not on the API's router");
    let scrape = scrape(&app.client, &format!("http://{metrics_address}/metrics")).await;
    assert_eq!(requests(&scrape, "GET", "/recipes", "200"), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let app = spawn_app_with(AppOptions { metrics: Some(false), ..AppOptions::default() }).await;
    assert_eq!(app.get("/recipes").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 404);
    app.stop().await;
}
