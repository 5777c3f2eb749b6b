//! The ceiling of `make bench`: the least an axum server can do to answer Galley's benchmarked
//! requests with the very bytes Galley answered them with. Whatever Galley spends beyond this is
//! ours to remove; `scripts/bench.sh` prints Galley's rate as a ratio of this one, measured in the
//! same run so that the shared machine's drift cancels out.
//!
//! It is also the ceiling of sign-in: `galley-bench-ceiling argon2 SECONDS THREADS` verifies a
//! password with Galley's default Argon2id parameters (m = 19 MiB, t = 2, p = 1) on THREADS threads
//! for SECONDS and prints the verifications per second: what `POST /auth/signin` could reach if
//! nothing but the hash cost anything.
//!
//! Usage: `galley-bench-ceiling ADDR MANIFEST` where each line of MANIFEST is tab-separated:
//! `PATH_AND_QUERY  STATUS  CONTENT_TYPE  ETAG  BODY_FILE` (`-` for no ETag / no body). A request is
//! answered by one hash lookup on its path and query; anything else is a bare 404. Benchmark-only
//! code: it panics on a bad manifest, which is a bug in the script.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// One captured answer.
struct Canned {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    etag: Option<HeaderValue>,
    body: axum::body::Bytes,
}

type Routes = Arc<HashMap<String, Canned>>;

#[allow(clippy::expect_used)]
fn load(manifest: &str) -> HashMap<String, Canned> {
    let text = std::fs::read_to_string(manifest).expect("manifest readable");
    let header = |value: &str| (value != "-").then(|| HeaderValue::from_str(value).expect("header value"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [path, status, content_type, etag, body] = fields[..] else {
                panic!("manifest line needs 5 tab-separated fields: {line}")
            };
            let body = if body == "-" { Vec::new() } else { std::fs::read(body).expect("body file") };
            let canned = Canned {
                status: status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .expect("status"),
                content_type: header(content_type),
                etag: header(etag),
                body: body.into(),
            };
            (path.to_owned(), canned)
        })
        .collect()
}

async fn answer(State(routes): State<Routes>, request: Request) -> Response {
    let key = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let Some(canned) = routes.get(key) else {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let mut response = Response::new(Body::from(canned.body.clone()));
    *response.status_mut() = canned.status;
    let headers = response.headers_mut();
    if let Some(value) = &canned.content_type {
        headers.insert(header::CONTENT_TYPE, value.clone());
    }
    if let Some(value) = &canned.etag {
        headers.insert(header::ETAG, value.clone());
    }
    response
}

/// Verifications per second of one password on `threads` threads for `seconds`.
#[allow(clippy::expect_used)]
fn argon2_rate(seconds: f64, threads: usize) -> f64 {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("parameters"),
    );
    let salt = SaltString::encode_b64(b"galley-bench-salt").expect("salt");
    let hash = argon.hash_password(b"correct horse!", &salt).expect("hash").to_string();
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs_f64(seconds);
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (argon, hash) = (argon.clone(), hash.clone());
                scope.spawn(move || {
                    let parsed = argon2::PasswordHash::new(&hash).expect("hash parses");
                    let mut done = 0;
                    while std::time::Instant::now() < deadline {
                        argon.verify_password(b"correct horse!", &parsed).expect("verifies");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("worker")).collect()
    });
    counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64()
}

#[allow(clippy::expect_used, clippy::print_stdout)]
#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    if std::env::args().nth(1).as_deref() == Some("argon2") {
        let seconds = args.nth(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
        let threads = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
        println!("{:.1}", argon2_rate(seconds, threads));
        return;
    }
    let (Some(addr), Some(manifest)) = (args.next(), args.next()) else {
        panic!("usage: galley-bench-ceiling ADDR MANIFEST")
    };
    let routes: Routes = Arc::new(load(&manifest));
    let app = axum::Router::new().fallback(answer).with_state(routes);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
