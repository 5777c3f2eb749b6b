//! Standalone recipes-api: configuration from `config/*.toml` and `GALLEY__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    recipes_api::app::run_from_config().await
}
