//! Test hygiene on a shared Redis: every test works under its own key prefix, and this guard deletes the
//! prefix's keys when the test ends, so the server keeps nothing between runs.

/// Deletes every key starting with `prefix` on `url` when dropped.
#[derive(Debug)]
pub struct PrefixCleanup {
    pub url: String,
    pub prefix: String,
}

impl PrefixCleanup {
    /// A fresh prefix (`galley-test:<uuid>:`) on `url`, with its cleanup.
    pub fn fresh(url: &str) -> Self {
        Self { url: url.to_owned(), prefix: format!("galley-test:{}:", uuid::Uuid::now_v7().simple()) }
    }
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let Ok(mut connection) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut connection).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}
