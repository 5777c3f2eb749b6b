//! Standalone rss-worker: configuration from `config/*.toml` and `GALLEY__*` variables.

use galley_platform::{ConfigSource, Shutdown, load_settings, telemetry};
use rss_worker::Settings;
use rss_worker::app::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = load_settings(&ConfigSource::from_env())?;
    telemetry::init(&settings.telemetry);
    let application = Application::build(settings).await?;
    tracing::info!(health = %application.local_addr()?, "rss-worker running");
    application.run_until_stopped(Shutdown::on_signals()).await?;
    tracing::info!("rss-worker stopped");
    Ok(())
}
