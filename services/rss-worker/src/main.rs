//! Standalone rss-worker: configuration from `config/*.toml` and `GALLEY__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rss_worker::app::run_from_config().await
}
