//! A fixture feed server: real HTTP on a loopback address, serving every kind of feed and every kind
//! of misbehaviour a feed fetcher must survive. Used by the HTTP fetcher's tests and by end-to-end
//! tests of the RSS pipeline.
//!
//! [`FixtureServer::start`] binds the given loopback address (refusing any other, so a test cannot
//! serve or send traffic off this machine) on a free port; two servers on 127.0.0.1 and 127.0.0.2
//! model "an allowed host" and "an internal host" for the SSRF tests. The server stops when dropped.
//! Every request is recorded ([`FixtureServer::requests`]) with its headers and the response's status
//! and `Content-Encoding`.
//!
//! Routes (entry links and images point back at the server itself):
//!
//! | path | answer |
//! |---|---|
//! | `/rss.xml` | RSS 2.0, 3 items: HTML in a title, a hostile description (`<script>`, `on*`), `media:thumbnail`, an image enclosure, an item without `guid` |
//! | `/atom.xml` | Atom 1.0, 2 entries: `media:thumbnail`; `media:content` image and xhtml content, no `published` |
//! | `/feed.json` | JSON Feed 1.1, 2 items: `image`, `content_html` with a script; `content_text` only |
//! | `/rss091.xml`, `/rdf.xml`, `/atom03.xml` | RSS 0.91, RSS 1.0 (RDF) and Atom 0.3, one entry each |
//! | `/latin1.xml` | ISO-8859-1 bytes, declared only in the XML prolog ([`LATIN1_TITLE`]) |
//! | `/cp1252.xml` | windows-1252 bytes (`€`, curly quotes), declared only in `Content-Type` ([`CP1252_TITLE`]) |
//! | `/gzip.xml` | `/rss.xml` compressed with gzip (when the client accepts it) |
//! | `/conditional.xml` | RSS with [`ETAG`] and [`LAST_MODIFIED`]; 304 to a matching `If-None-Match` or, without one, an `If-Modified-Since` not older |
//! | `/slow.xml?ms=N` | waits N ms (default 5000) before answering |
//! | `/slow-body.xml?ms=N` | sends headers and the start of the body, then waits N ms (default 5000) |
//! | `/large.xml?bytes=N` | N bytes (default [`LARGE_BYTES`], over the 10 MiB limit), streamed without `Content-Length` |
//! | `/large-declared.xml` | [`LARGE_BYTES`] bytes with `Content-Length` |
//! | `/bomb.xml` | a "billion laughs" XML entity bomb |
//! | `/malformed.xml` | RSS with mismatched tags |
//! | `/not-a-feed.html` | an HTML page |
//! | `/redirect?to=URL[&status=302]` | redirects to `URL` (see [`FixtureServer::redirect_url`]) |
//! | `/redirect-chain/{n}` | n redirects, then `/rss.xml`'s feed |
//! | `/loop` | redirects to itself forever |
//! | `/status/{code}[?retry_after=V]` | that status, with `Retry-After: V` if given |
//! | `/rate-limited` | 429 with `Retry-After: 2` |
//! | `/generated/{n}.xml` | RSS 2.0 with n items (n ≤ [`MAX_GENERATED`]), for benchmarks |
//! | `/hostile/divs.xml` | [`HOSTILE_BYTES`] of RSS whose one description is `<div/>` repeated (each opens a `div` in HTML) |
//! | `/hostile/deep.xml` | [`HOSTILE_BYTES`] of RSS whose one description nests XML elements about 1.5 million deep |

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::DateTime;
use futures::StreamExt as _;
use futures::stream;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;

/// `ETag` of `/conditional.xml`.
pub const ETAG: &str = "\"galley-fixture-v1\"";
/// `Last-Modified` of `/conditional.xml`.
pub const LAST_MODIFIED: &str = "Wed, 01 Jan 2025 00:00:00 GMT";
/// Default size of `/large.xml` and size of `/large-declared.xml`: 11 MiB, over the default limit.
pub const LARGE_BYTES: u64 = 11 * 1024 * 1024;
/// Size of the `/hostile/*` feeds: just under the fetcher's default 10 MiB limit, so they are
/// downloaded in full and the parser has to face them.
pub const HOSTILE_BYTES: usize = 10 * 1024 * 1024 - 4096;
/// Most items `/generated/{n}.xml` produces.
pub const MAX_GENERATED: usize = 5000;
/// The item title of `/latin1.xml`, as it must read once decoded.
pub const LATIN1_TITLE: &str = "Café crème brûlée, Ärger über Öl";
/// The item title of `/cp1252.xml`, as it must read once decoded.
pub const CP1252_TITLE: &str = "Prix : 5 € — “très” cher";

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    /// Header names are lower-case.
    pub headers: HashMap<String, String>,
    /// Status of the response.
    pub status: u16,
    /// `Content-Encoding` of the response, if any (`gzip` on `/gzip.xml`).
    pub content_encoding: Option<String>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    log: Mutex<Vec<RecordedRequest>>,
}

/// A running fixture server; stops when dropped.
#[derive(Debug)]
pub struct FixtureServer {
    address: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl FixtureServer {
    /// Starts a server on `ip` (which must be a loopback address) and a free port.
    ///
    /// # Panics
    /// When the address is not loopback or cannot be bound: a broken test environment.
    pub async fn start(ip: IpAddr) -> Self {
        match Self::try_start(ip).await {
            Ok(server) => server,
            Err(error) => panic!("cannot start the fixture feed server on {ip}: {error}"),
        }
    }

    /// [`FixtureServer::start`], returning bind failures.
    pub async fn try_start(ip: IpAddr) -> io::Result<Self> {
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fixture servers only bind loopback addresses",
            ));
        }
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Inner { base_url: format!("http://{address}"), log: Mutex::new(Vec::new()) });
        let app = router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // Ends when the task is aborted on drop; an accept error would end it early and show up
            // as connection failures in the test.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, shared, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ip:port`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base_url)
    }

    /// A URL on this server that redirects (302) to `target`, which may be on another server.
    pub fn redirect_url(&self, target: &str) -> String {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("to", target).finish();
        self.url(&format!("/redirect?{query}"))
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The requests whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.split('?').next() == Some(path)).collect()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Inner>;

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/rss.xml", get(rss))
        .route("/atom.xml", get(atom))
        .route("/feed.json", get(json_feed))
        .route("/rss091.xml", get(rss091))
        .route("/rdf.xml", get(rdf))
        .route("/atom03.xml", get(atom03))
        .route("/latin1.xml", get(latin1))
        .route("/cp1252.xml", get(cp1252))
        .route("/gzip.xml", get(rss).layer(CompressionLayer::new()))
        .route("/conditional.xml", get(conditional))
        .route("/slow.xml", get(slow))
        .route("/slow-body.xml", get(slow_body))
        .route("/large.xml", get(large))
        .route("/large-declared.xml", get(large_declared))
        .route("/bomb.xml", get(bomb))
        .route("/malformed.xml", get(malformed))
        .route("/not-a-feed.html", get(not_a_feed))
        .route("/redirect", get(redirect))
        .route("/redirect-chain/{n}", get(redirect_chain))
        .route("/loop", get(redirect_loop))
        .route("/status/{code}", get(status))
        .route("/rate-limited", get(rate_limited))
        .route("/generated/{file}", get(generated))
        .route("/hostile/divs.xml", get(hostile_divs))
        .route("/hostile/deep.xml", get(hostile_deep))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record))
        .with_state(shared)
}

async fn record(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let response = next.run(request).await;
    let content_encoding =
        response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let entry =
        RecordedRequest { method, path, headers, status: response.status().as_u16(), content_encoding };
    shared.log.lock().unwrap_or_else(PoisonError::into_inner).push(entry);
    response
}

fn xml(content_type: &'static str, body: impl Into<Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

/// The RSS 2.0 fixture (also behind `/gzip.xml`, `/conditional.xml` and `/redirect-chain/0`).
pub fn rss_document(base: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Galley fixture (RSS 2.0)</title>
  <link>{base}/</link>
  <description>Fixture feed</description>
  <item>
    <title>First &lt;em&gt;post&lt;/em&gt; &amp;amp; more</title>
    <link>{base}/articles/1</link>
    <guid isPermaLink="false">rss-1</guid>
    <pubDate>Wed, 01 Jan 2025 10:00:00 GMT</pubDate>
    <description><![CDATA[<p onclick="steal()">Hello <b>world</b><script>alert('x')</script><img src="/images/inline.jpg" onerror="steal()"></p>]]></description>
    <media:thumbnail url="{base}/images/1-thumb.jpg"/>
  </item>
  <item>
    <title>Second post</title>
    <link>{base}/articles/2</link>
    <guid>rss-2</guid>
    <pubDate>Tue, 31 Dec 2024 09:30:00 +0100</pubDate>
    <description>Plain &amp;amp; simple</description>
    <enclosure url="{base}/images/2.png" type="image/png" length="1234"/>
  </item>
  <item>
    <title>No guid</title>
    <link>{base}/articles/3</link>
    <description>third</description>
  </item>
</channel>
</rss>
"#
    )
}

async fn rss(State(shared): State<Shared>) -> Response {
    xml("application/rss+xml; charset=utf-8", rss_document(&shared.base_url))
}

async fn atom(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    xml(
        "application/atom+xml",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
  <title>Galley fixture (Atom 1.0)</title>
  <id>urn:galley:fixture:atom</id>
  <updated>2025-01-02T09:00:00Z</updated>
  <link href="{base}/"/>
  <entry>
    <title type="html">Atom &lt;b&gt;one&lt;/b&gt;</title>
    <id>urn:galley:fixture:atom:1</id>
    <link rel="alternate" type="text/html" href="{base}/atom/1"/>
    <published>2025-01-02T08:00:00Z</published>
    <updated>2025-01-02T09:00:00Z</updated>
    <summary type="html">&lt;p&gt;Summary &lt;a href="/x" onmouseover="steal()"&gt;one&lt;/a&gt;&lt;/p&gt;</summary>
    <media:thumbnail url="{base}/images/atom-1-thumb.jpg" width="120" height="90"/>
  </entry>
  <entry>
    <title>Atom two</title>
    <id>urn:galley:fixture:atom:2</id>
    <link href="{base}/atom/2"/>
    <updated>2025-01-01T12:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Content two</p></div></content>
    <media:content url="{base}/images/atom-2.jpg" medium="image" type="image/jpeg"/>
  </entry>
</feed>
"#
        ),
    )
}

async fn json_feed(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    xml(
        "application/feed+json",
        format!(
            r#"{{"version": "https://jsonfeed.org/version/1.1", "title": "Galley fixture (JSON Feed)", "home_page_url": "{base}/",
  "items": [
    {{"id": "json-1", "url": "{base}/json/1", "title": "JSON <i>one</i>", "summary": "Short one",
      "content_html": "<p>JSON one</p><script>x()</script>", "image": "{base}/images/json-1.png",
      "date_published": "2025-01-03T10:00:00Z"}},
    {{"id": "json-2", "url": "{base}/json/2", "title": "JSON two", "content_text": "Two & text",
      "date_published": "2025-01-03T11:00:00+02:00"}}
  ]}}"#
        ),
    )
}

async fn rss091(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    xml(
        "application/rss+xml",
        format!(
            r#"<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Galley fixture (RSS 0.91)</title><link>{base}/</link><description>d</description><language>en</language>
  <item><title>Old school</title><link>{base}/rss091/1</link><description>From &lt;b&gt;1999&lt;/b&gt;</description></item>
</channel></rss>
"#
        ),
    )
}

async fn rdf(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    xml(
        "application/rdf+xml",
        format!(
            r#"<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="{base}/"><title>Galley fixture (RSS 1.0)</title><link>{base}/</link><description>d</description>
    <items><rdf:Seq><rdf:li resource="{base}/rdf/1"/></rdf:Seq></items>
  </channel>
  <item rdf:about="{base}/rdf/1"><title>RDF item</title><link>{base}/rdf/1</link><description>RDF description</description><dc:date>2025-01-04T10:00:00Z</dc:date></item>
</rdf:RDF>
"#
        ),
    )
}

async fn atom03(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    xml(
        "application/atom+xml",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#">
  <title>Galley fixture (Atom 0.3)</title>
  <link rel="alternate" type="text/html" href="{base}/"/>
  <modified>2025-01-05T10:00:00Z</modified>
  <entry>
    <title mode="xml">Atom 0.3 entry</title>
    <link rel="alternate" type="text/html" href="{base}/atom03/1"/>
    <id>urn:galley:fixture:atom03:1</id>
    <issued>2025-01-05T10:00:00Z</issued>
    <modified>2025-01-05T10:00:00Z</modified>
    <summary type="text/plain">Old &lt;Atom&gt;</summary>
  </entry>
</feed>
"#
        ),
    )
}

/// Encodes `text` as ISO-8859-1 / windows-1252 bytes: code points below 256 map to themselves, and the
/// few windows-1252 extras used here to their bytes.
fn single_byte(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            '—' => 0x97,
            '“' => 0x93,
            '”' => 0x94,
            c => u8::try_from(u32::from(c)).unwrap_or(b'?'),
        })
        .collect()
}

async fn latin1(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    let document = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<rss version="2.0"><channel><title>Flux latin-1</title><link>{base}/</link><description>d</description>
  <item><title>{LATIN1_TITLE}</title><link>{base}/latin1/1</link><guid>latin1-1</guid><description>Prix : 5 £ ou ½ kg</description></item>
</channel></rss>
"#
    );
    xml("application/rss+xml", single_byte(&document))
}

async fn cp1252(State(shared): State<Shared>) -> Response {
    let base = &shared.base_url;
    let document = format!(
        r#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>Flux windows-1252</title><link>{base}/</link><description>d</description>
  <item><title>{CP1252_TITLE}</title><link>{base}/cp1252/1</link><guid>cp1252-1</guid></item>
</channel></rss>
"#
    );
    xml("text/xml; charset=windows-1252", single_byte(&document))
}

/// Whether a conditional request matches the current version (RFC 9110: `If-None-Match` wins when
/// present).
fn not_modified(headers: &HeaderMap) -> bool {
    if let Some(tags) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == ETAG);
    }
    let since = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok());
    match (
        since.and_then(|s| DateTime::parse_from_rfc2822(s).ok()),
        DateTime::parse_from_rfc2822(LAST_MODIFIED),
    ) {
        (Some(since), Ok(modified)) => since >= modified,
        _ => false,
    }
}

async fn conditional(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let validators = [
        (header::ETAG, HeaderValue::from_static(ETAG)),
        (header::LAST_MODIFIED, HeaderValue::from_static(LAST_MODIFIED)),
    ];
    if not_modified(&headers) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (validators, xml("application/rss+xml", rss_document(&shared.base_url))).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct Delay {
    ms: Option<u64>,
}

const DEFAULT_DELAY_MS: u64 = 5000;

async fn slow(State(shared): State<Shared>, Query(delay): Query<Delay>) -> Response {
    tokio::time::sleep(Duration::from_millis(delay.ms.unwrap_or(DEFAULT_DELAY_MS))).await;
    xml("application/rss+xml", rss_document(&shared.base_url))
}

async fn slow_body(State(shared): State<Shared>, Query(delay): Query<Delay>) -> Response {
    let document = rss_document(&shared.base_url);
    let (head, tail) = document.split_at(document.len() / 2);
    let (head, tail) = (Bytes::from(head.to_owned()), Bytes::from(tail.to_owned()));
    let wait = Duration::from_millis(delay.ms.unwrap_or(DEFAULT_DELAY_MS));
    let body = stream::iter([Ok::<_, io::Error>(head)]).chain(stream::once(async move {
        tokio::time::sleep(wait).await;
        Ok(tail)
    }));
    xml("application/rss+xml", Body::from_stream(body))
}

#[derive(Debug, serde::Deserialize)]
struct Size {
    bytes: Option<u64>,
}

const CHUNK: usize = 64 * 1024;

async fn large(Query(size): Query<Size>) -> Response {
    let total = size.bytes.unwrap_or(LARGE_BYTES);
    let head =
        Bytes::from_static(b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>big</title><!--");
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let mut remaining = total.saturating_sub(head.len() as u64);
    let mut chunks = vec![head];
    while remaining > 0 {
        let take = remaining.min(CHUNK as u64);
        chunks.push(filler.slice(..usize::try_from(take).unwrap_or(CHUNK)));
        remaining -= take;
    }
    xml("application/rss+xml", Body::from_stream(stream::iter(chunks.into_iter().map(Ok::<_, io::Error>))))
}

async fn large_declared() -> Response {
    let length = usize::try_from(LARGE_BYTES).unwrap_or(usize::MAX);
    xml("application/rss+xml", Bytes::from(vec![b' '; length]))
}

async fn bomb() -> Response {
    let mut entities = String::from("  <!ENTITY lol0 \"lol\">\n");
    for level in 1..=9 {
        let previous = format!("&lol{};", level - 1);
        entities.push_str(&format!("  <!ENTITY lol{level} \"{}\">\n", previous.repeat(10)));
    }
    xml(
        "application/rss+xml",
        format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n{entities}]>\n<rss version=\"2.0\"><channel><title>&lol9;</title><link>http://127.0.0.1/</link><description>&lol9;</description>\n<item><title>&lol9;</title><description>&lol9;</description></item></channel></rss>\n"
        ),
    )
}

async fn malformed() -> Response {
    xml(
        "application/rss+xml",
        "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Broken</title><item><title>unclosed</item></channel></rss>\n",
    )
}

async fn not_a_feed() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<!DOCTYPE html><html><head><title>Hi</title></head><body>No feed here</body></html>",
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct RedirectTo {
    to: String,
    status: Option<u16>,
}

fn redirect_response(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (status, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect target").into_response(),
    }
}

async fn redirect(Query(params): Query<RedirectTo>) -> Response {
    let status = params.status.and_then(|code| StatusCode::from_u16(code).ok()).unwrap_or(StatusCode::FOUND);
    redirect_response(status, &params.to)
}

async fn redirect_chain(State(shared): State<Shared>, Path(n): Path<u32>) -> Response {
    if n == 0 {
        return xml("application/rss+xml", rss_document(&shared.base_url));
    }
    redirect_response(StatusCode::FOUND, &format!("/redirect-chain/{}", n - 1))
}

async fn redirect_loop() -> Response {
    redirect_response(StatusCode::FOUND, "/loop")
}

#[derive(Debug, serde::Deserialize)]
struct RetryAfter {
    retry_after: Option<String>,
}

async fn status(Path(code): Path<u16>, Query(params): Query<RetryAfter>) -> Response {
    let Ok(status) = StatusCode::from_u16(code) else {
        return (StatusCode::BAD_REQUEST, "not a status code").into_response();
    };
    let mut response = (status, format!("status {code}")).into_response();
    if let Some(value) = params.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn rate_limited() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "2")], "slow down").into_response()
}

/// An RSS 2.0 document with `n` items (`gen-0` first), deterministic so benchmarks compare like with
/// like.
pub fn generated_document(base: &str, n: usize) -> String {
    let mut document = String::with_capacity(300 + n * 400);
    document.push_str(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><title>Generated ({n})</title><link>{base}/</link><description>d</description>\n"
    ));
    for i in 0..n {
        let minute = i % 60;
        let hour = (i / 60) % 24;
        document.push_str(&format!(
            "<item><title>Entry {i} &amp; friends</title><link>{base}/generated/entries/{i}</link><guid>gen-{i}</guid>\
             <pubDate>Wed, 01 Jan 2025 {hour:02}:{minute:02}:00 GMT</pubDate>\
             <description>&lt;p&gt;Paragraph &lt;b&gt;{i}&lt;/b&gt; with a &lt;a href=\"/x/{i}\"&gt;link&lt;/a&gt;.&lt;/p&gt;</description>\
             <media:thumbnail url=\"{base}/images/gen-{i}.jpg\"/></item>\n"
        ));
    }
    document.push_str("</channel></rss>\n");
    document
}

async fn generated(State(shared): State<Shared>, Path(file): Path<String>) -> Response {
    match file.strip_suffix(".xml").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if n <= MAX_GENERATED => xml("application/rss+xml", generated_document(&shared.base_url, n)),
        _ => (StatusCode::BAD_REQUEST, format!("expected /generated/{{n}}.xml with n <= {MAX_GENERATED}"))
            .into_response(),
    }
}

/// An RSS document with one item whose description is `filler` repeated to fill [`HOSTILE_BYTES`]
/// (between `open` and `close`, then `closing` once per repetition when given).
fn hostile_document(
    base: &str,
    name: &str,
    open: &str,
    unit: &str,
    closing: Option<&str>,
    close: &str,
) -> String {
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>Hostile ({name})</title><link>{base}/</link>\
         <item><title>Hostile {name}</title><link>{base}/hostile/{name}</link><guid>hostile-{name}</guid><description>{open}"
    );
    let tail = format!("{close}</description></item></channel></rss>\n");
    let per_unit = unit.len() + closing.map_or(0, str::len);
    let units = HOSTILE_BYTES.saturating_sub(head.len() + tail.len()) / per_unit;
    let mut document = String::with_capacity(HOSTILE_BYTES);
    document.push_str(&head);
    document.push_str(&unit.repeat(units));
    if let Some(closing) = closing {
        document.push_str(&closing.repeat(units));
    }
    document.push_str(&tail);
    document
}

/// `/hostile/divs.xml`: `<div/>` is an open tag in HTML (the `/` is ignored on non-void elements), so
/// this is one description nesting 1.7 million `div`s for the HTML sanitizer.
pub fn hostile_divs_document(base: &str) -> String {
    hostile_document(base, "divs", "<![CDATA[", "<div/>", None, "]]>")
}

/// `/hostile/deep.xml`: XML elements nested about 1.5 million deep inside a description.
pub fn hostile_deep_document(base: &str) -> String {
    hostile_document(base, "deep", "", "<x>", Some("</x>"), "")
}

async fn hostile_divs(State(shared): State<Shared>) -> Response {
    xml("application/rss+xml", hostile_divs_document(&shared.base_url))
}

async fn hostile_deep(State(shared): State<Shared>) -> Response {
    xml("application/rss+xml", hostile_deep_document(&shared.base_url))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[tokio::test]
    async fn only_loopback_addresses_can_be_bound() {
        for ip in [IpAddr::from([0, 0, 0, 0]), IpAddr::from([10, 0, 0, 1]), IpAddr::from([192, 168, 1, 1])] {
            let error = FixtureServer::try_start(ip).await.expect_err("refused without binding");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
        let server = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        assert!(server.base_url().starts_with("http://127.0.0.1:"));
        assert_eq!(server.url("/rss.xml"), format!("{}/rss.xml", server.base_url()));
        assert!(
            server
                .redirect_url("http://127.0.0.2:1/a?b=c")
                .ends_with("/redirect?to=http%3A%2F%2F127.0.0.2%3A1%2Fa%3Fb%3Dc")
        );
    }

    #[test]
    fn conditional_requests_match_on_etag_first() {
        let headers = |pairs: &[(header::HeaderName, &'static str)]| {
            pairs
                .iter()
                .map(|(name, value)| (name.clone(), HeaderValue::from_static(value)))
                .collect::<HeaderMap>()
        };
        assert!(not_modified(&headers(&[(header::IF_NONE_MATCH, ETAG)])));
        assert!(not_modified(&headers(&[(header::IF_NONE_MATCH, "\"other\", W/\"galley-fixture-v1\"")])));
        assert!(!not_modified(&headers(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, LAST_MODIFIED)
        ])));
        assert!(not_modified(&headers(&[(header::IF_MODIFIED_SINCE, LAST_MODIFIED)])));
        assert!(not_modified(&headers(&[(header::IF_MODIFIED_SINCE, "Thu, 02 Jan 2025 00:00:00 GMT")])));
        assert!(!not_modified(&headers(&[(header::IF_MODIFIED_SINCE, "Tue, 31 Dec 2024 23:59:59 GMT")])));
        assert!(!not_modified(&HeaderMap::new()));
    }

    #[test]
    fn single_byte_encoding_covers_the_fixture_titles() {
        assert_eq!(single_byte("é€—“”"), vec![0xe9, 0x80, 0x97, 0x93, 0x94]);
        assert!(!single_byte(LATIN1_TITLE).contains(&b'?'));
        assert!(!single_byte(CP1252_TITLE).contains(&b'?'));
    }

    #[test]
    fn hostile_feeds_are_just_under_the_default_body_limit() {
        for document in
            [hostile_divs_document("http://127.0.0.1:1"), hostile_deep_document("http://127.0.0.1:1")]
        {
            assert!(
                document.len() <= HOSTILE_BYTES && document.len() > HOSTILE_BYTES - 16,
                "{}",
                document.len()
            );
            assert!(document.ends_with("</rss>\n"));
        }
    }

    #[test]
    fn generated_feeds_have_the_requested_size() {
        let document = generated_document("http://127.0.0.1:1", 3);
        assert_eq!(document.matches("<item>").count(), 3);
        assert!(document.contains("<guid>gen-2</guid>"));
    }
}
