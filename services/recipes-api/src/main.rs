//! Standalone recipes-api: configuration from `config/*.toml` and `GALLEY__*` variables.

use galley_platform::{ConfigSource, Shutdown, load_settings, telemetry};
use recipes_api::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = load_settings(&ConfigSource::from_env())?;
    telemetry::init(&settings.telemetry);
    let application = Application::build(settings).await?;
    tracing::info!(address = %application.local_addr()?, "recipes-api listening");
    application.run_until_stopped(Shutdown::on_signals()).await?;
    tracing::info!("recipes-api stopped");
    Ok(())
}
