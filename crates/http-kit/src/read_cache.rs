//! A read model at the HTTP edge: cached, already-encoded response bodies, checked against a generation.
//!
//! The routes a system serves most (a recipe, a page of recipes, a page of feed entries) should cost
//! no more on a hit than a lookup and a copy of bytes. So the cache holds each answer exactly as it
//! goes on the wire — its JSON body and its entity tag — never domain values that would be decoded and
//! re-encoded on every hit. That makes caching an edge concern: the use cases know no cache, and each
//! service says what a key is and how to load and encode a miss (ADR 0024).
//!
//! # Invalidation: one generation counter per data set, checked on every hit (ADR 0003, 0024)
//!
//! Every write of the data set bumps a counter (the `generation_key`), wherever the write happens — a
//! repository decorator in the writing process, or the reader's own reply handler when another process
//! wrote. A cached entry records the generation that was current *before* its store read; a hit is a
//! hit only while that is still the current generation. A reader that raced a write therefore stores an
//! entry nobody accepts, clients read their own writes, and pages whose membership any write may change
//! are invalidated without enumerating them. The counter and the entry are read together
//! ([`Cache::get_with_counter`]: one `MGET` round trip on Redis, two lock-free lookups in memory).
//!
//! The cache is an optimisation: when it fails, reads go to the store and the failure is logged. A
//! miss on a hot key is coalesced ([`LoadCoalescer`]): one reader loads, the others wait and re-read.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use galley_kernel::{Cache, LoadCoalescer};
use sha2::{Digest, Sha256};

use crate::etag::IfNoneMatch;

/// An answer ready for the wire: its entity tag (a complete `ETag` value) and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRead {
    pub etag: Bytes,
    pub body: Bytes,
}

impl EncodedRead {
    /// A JSON answer tagged by a digest of its bytes ([`weak_etag`]).
    pub fn json_with_weak_etag<T: serde::Serialize>(value: &T) -> Self {
        let body = json_bytes(value);
        Self { etag: weak_etag(&body), body }
    }

    /// The answer as a response: 304 with its ETag when `If-None-Match` lists it (weak comparison,
    /// as RFC 9110 prescribes for GET), else 200 with the bytes as they are.
    pub fn respond(self, if_none_match: &IfNoneMatch) -> Response {
        // Our tags are quoted ASCII, always a valid header value.
        let tag =
            HeaderValue::from_maybe_shared(self.etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let mut response = if if_none_match.lists(&tag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = Response::new(Body::from(self.body));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        };
        response.headers_mut().insert(header::ETAG, tag);
        response
    }
}

/// `value` as JSON bytes. Response DTOs (string keys, no I/O) cannot fail to serialize; should one
/// ever, the body is empty rather than a panic in a request.
pub fn json_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// `W/"l<first 16 bytes of SHA-256, hex>"`: a stable digest (not std's per-process hasher), so every
/// replica and every restart tags the same page the same way, and the tag changes exactly when the
/// bytes do — a client revalidating an unchanged page gets a 304 even after unrelated writes.
pub fn weak_etag(body: &[u8]) -> Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut tag = Vec::with_capacity(37);
    tag.extend_from_slice(b"W/\"l");
    for byte in &digest[..16] {
        tag.push(HEX[usize::from(byte >> 4)]);
        tag.push(HEX[usize::from(byte & 0x0f)]);
    }
    tag.push(b'"');
    Bytes::from(tag)
}

/// Cache-aside of encoded answers for one data set, invalidated by its generation counter.
#[derive(Debug, Clone)]
pub struct EncodedReads {
    cache: Arc<dyn Cache>,
    generation_key: &'static str,
    /// Shared by clones: one store load per missing key at a time.
    loads: Arc<LoadCoalescer>,
}

impl EncodedReads {
    /// Reads of the data set whose writers bump `generation_key`.
    pub fn new(cache: Arc<dyn Cache>, generation_key: &'static str) -> Self {
        Self { cache, generation_key, loads: Arc::new(LoadCoalescer::new()) }
    }

    /// The answer cached under `key` if it is current; otherwise one reader per key runs `load` and
    /// fills the cache for `ttl`, tagging the entry with the generation read before loading. Errors of
    /// `load` are returned and not cached.
    pub async fn read<E, F, Fut>(&self, key: &str, ttl: Duration, load: F) -> Result<EncodedRead, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<EncodedRead, E>>,
    {
        let mut generation = match self.lookup(key).await {
            Lookup::Hit(read) => return Ok(read),
            Lookup::Miss(generation) => generation,
            Lookup::Bypass => return load().await,
        };
        let turn = self.loads.turn(key).await;
        if turn.waited() {
            // Whoever loaded while we waited has filled the cache.
            generation = match self.lookup(key).await {
                Lookup::Hit(read) => return Ok(read),
                Lookup::Miss(generation) => generation,
                Lookup::Bypass => return load().await,
            };
        }
        let read = load().await?;
        if let Err(error) = self.cache.set(key, frame(generation, &read), ttl).await {
            tracing::warn!(%error, "cache write failed");
        }
        Ok(read)
    }

    /// The current generation of the data set (what a fill would be tagged with now).
    pub async fn generation(&self) -> Result<u64, galley_kernel::CacheError> {
        self.cache.counter(self.generation_key).await
    }

    async fn lookup(&self, key: &str) -> Lookup {
        match self.cache.get_with_counter(self.generation_key, key).await {
            Ok((generation, Some(entry))) => match unframe(generation, entry) {
                Some(read) => Lookup::Hit(read),
                None => Lookup::Miss(generation),
            },
            Ok((generation, None)) => Lookup::Miss(generation),
            Err(error) => {
                tracing::warn!(%error, generation_key = self.generation_key, "cache unavailable; reading from the store");
                Lookup::Bypass
            }
        }
    }
}

/// What the cache holds for a key.
enum Lookup {
    /// A current entry.
    Hit(EncodedRead),
    /// Nothing current: load, then fill at this generation.
    Miss(u64),
    /// The cache is unavailable: load and do not fill.
    Bypass,
}

/// Cache entry layout: generation (8 bytes, little endian), ETag length (2 bytes), ETag, body.
fn frame(generation: u64, read: &EncodedRead) -> Bytes {
    let mut entry = BytesMut::with_capacity(10 + read.etag.len() + read.body.len());
    entry.put_u64_le(generation);
    entry.put_u16_le(u16::try_from(read.etag.len()).unwrap_or(u16::MAX));
    entry.put_slice(&read.etag);
    entry.put_slice(&read.body);
    entry.freeze()
}

/// The entry's answer if it was stored at `generation` (and is well formed); slices, no copies.
fn unframe(generation: u64, entry: Bytes) -> Option<EncodedRead> {
    let stored = u64::from_le_bytes(entry.get(..8)?.try_into().ok()?);
    if stored != generation {
        return None;
    }
    let etag_len = usize::from(u16::from_le_bytes(entry.get(8..10)?.try_into().ok()?));
    let body_start = 10 + etag_len;
    if entry.len() < body_start {
        return None;
    }
    Some(EncodedRead { etag: entry.slice(10..body_start), body: entry.slice(body_start..) })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::HeaderMap;

    use async_trait::async_trait;
    use galley_kernel::CacheError;

    use super::*;

    const GENERATION: &str = "things:generation";

    /// The smallest in-memory cache honouring the port (the real ones have their contract suite).
    #[derive(Debug, Default)]
    struct MapCache {
        entries: std::sync::Mutex<std::collections::HashMap<String, Bytes>>,
        counters: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    }

    #[async_trait]
    impl Cache for MapCache {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            Ok(self.entries.lock().expect("lock").get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes, _: Duration) -> Result<(), CacheError> {
            self.entries.lock().expect("lock").insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.entries.lock().expect("lock").remove(key);
            Ok(())
        }
        async fn increment(&self, key: &str) -> Result<u64, CacheError> {
            let mut counters = self.counters.lock().expect("lock");
            let counter = counters.entry(key.to_owned()).or_default();
            *counter += 1;
            Ok(*counter)
        }
        async fn counter(&self, key: &str) -> Result<u64, CacheError> {
            Ok(self.counters.lock().expect("lock").get(key).copied().unwrap_or(0))
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
    }

    /// A cache that is down.
    #[derive(Debug)]
    struct DownCache;

    #[async_trait]
    impl Cache for DownCache {
        async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn set(&self, _: &str, _: Bytes, _: Duration) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn delete(&self, _: &str) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn increment(&self, _: &str) -> Result<u64, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn counter(&self, _: &str) -> Result<u64, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
    }

    /// A loader that counts its calls and answers with the current `value`.
    #[derive(Debug, Default)]
    struct Source {
        loads: AtomicUsize,
        value: std::sync::Mutex<String>,
    }

    impl Source {
        async fn load(&self) -> Result<EncodedRead, String> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(EncodedRead::json_with_weak_etag(&*self.value.lock().expect("lock")))
        }

        fn loads(&self) -> usize {
            self.loads.load(Ordering::SeqCst)
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_hit_serves_the_same_bytes_without_loading() {
        let reads = EncodedReads::new(Arc::new(MapCache::default()), GENERATION);
        let source = Source::default();
        *source.value.lock().expect("lock") = "tea".into();
        let first = reads.read("k", TTL, || source.load()).await.expect("loaded");
        let second = reads.read("k", TTL, || source.load()).await.expect("cached");
        assert_eq!(first, second);
        assert_eq!(&first.body[..], b"\"tea\"");
        assert_eq!(source.loads(), 1);
    }

    #[tokio::test]
    async fn a_bumped_generation_makes_every_entry_stale() {
        let cache = Arc::new(MapCache::default());
        let reads = EncodedReads::new(cache.clone(), GENERATION);
        let source = Source::default();
        *source.value.lock().expect("lock") = "old".into();
        let old = reads.read("k", TTL, || source.load()).await.expect("loaded");
        *source.value.lock().expect("lock") = "new".into();
        cache.increment(GENERATION).await.expect("bump");
        let new = reads.read("k", TTL, || source.load()).await.expect("reloaded");
        assert_eq!(&new.body[..], b"\"new\"");
        assert_ne!(old.etag, new.etag, "a changed body gets a new tag");
        assert_eq!(reads.generation().await.expect("generation"), 1);
    }

    #[tokio::test]
    async fn an_entry_filled_by_a_reader_that_raced_a_write_is_not_served() {
        let cache = Arc::new(MapCache::default());
        let reads = EncodedReads::new(cache.clone(), GENERATION);
        // A slow reader read generation 0, then the store (old data); meanwhile a write bumped the
        // generation; the slow reader now fills its old answer, tagged with 0.
        let stale = EncodedRead::json_with_weak_etag(&"old");
        cache.increment(GENERATION).await.expect("the write");
        cache.set("k", frame(0, &stale), TTL).await.expect("late fill");
        let source = Source::default();
        *source.value.lock().expect("lock") = "new".into();
        assert_eq!(&reads.read("k", TTL, || source.load()).await.expect("read").body[..], b"\"new\"");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_a_hot_key_load_once() {
        let reads = EncodedReads::new(Arc::new(MapCache::default()), GENERATION);
        let source = Arc::new(Source::default());
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let (reads, source) = (reads.clone(), Arc::clone(&source));
                tokio::spawn(async move { reads.read("hot", TTL, || source.load()).await })
            })
            .collect();
        for reader in readers {
            reader.await.expect("task").expect("read");
        }
        assert_eq!(source.loads(), 1);
    }

    #[tokio::test]
    async fn a_failing_cache_is_bypassed_and_errors_are_not_cached() {
        let reads = EncodedReads::new(Arc::new(DownCache), GENERATION);
        let source = Source::default();
        reads.read("k", TTL, || source.load()).await.expect("served without a cache");
        reads.read("k", TTL, || source.load()).await.expect("again");
        assert_eq!(source.loads(), 2, "every read loaded");

        let reads = EncodedReads::new(Arc::new(MapCache::default()), GENERATION);
        let failing = || async { Err::<EncodedRead, _>("store down".to_owned()) };
        assert!(reads.read("k", TTL, failing).await.is_err());
        assert_eq!(source.loads(), 2);
        reads.read("k", TTL, || source.load()).await.expect("the next read loads");
        assert_eq!(source.loads(), 3);
    }

    #[test]
    fn malformed_entries_are_misses() {
        let read = EncodedRead { etag: Bytes::from_static(b"\"1\""), body: Bytes::from_static(b"{}") };
        assert_eq!(unframe(3, frame(3, &read)), Some(read.clone()));
        assert_eq!(unframe(4, frame(3, &read)), None, "another generation");
        assert_eq!(unframe(3, Bytes::from_static(b"short")), None);
        let mut truncated = frame(3, &read).to_vec();
        truncated.truncate(11);
        assert_eq!(unframe(3, Bytes::from(truncated)), None);
    }

    #[test]
    fn weak_tags_are_stable_digests_of_the_bytes() {
        let tag = weak_etag(b"{\"items\":[]}");
        assert_eq!(tag.len(), 37, "W/\"l + 32 hex digits + \"");
        assert!(tag.starts_with(b"W/\"l") && tag.ends_with(b"\""));
        assert_eq!(tag, weak_etag(b"{\"items\":[]}"));
        assert_ne!(tag, weak_etag(b"{\"items\":[1]}"));
        // SHA-256 of the empty string starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
        assert_eq!(&weak_etag(b"")[..], b"W/\"le3b0c44298fc1c149afbf4c8996fb924\"");
    }

    #[test]
    fn a_listed_tag_is_answered_304_without_a_body() {
        let read = EncodedRead::json_with_weak_etag(&"tea");
        let mut headers = HeaderMap::new();
        let plain = read.clone().respond(&IfNoneMatch::from_headers(&headers));
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()[header::CONTENT_TYPE], "application/json");
        headers
            .insert(header::IF_NONE_MATCH, HeaderValue::from_maybe_shared(read.etag.clone()).expect("tag"));
        let revalidated = read.respond(&IfNoneMatch::from_headers(&headers));
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert!(revalidated.headers().contains_key(header::ETAG));
    }
}
