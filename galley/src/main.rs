//! `galley`: every Galley service in one process on embedded defaults, for laptops and demos; or any one
//! of them on its own, so a single binary (and a single container image) can run every part of a
//! distributed deployment.
//!
//! - `galley serve --bind 127.0.0.1:8080 --data-dir data` (the defaults): everything in one process.
//!   Configuration files and `GALLEY__*` variables apply as for the standalone services; the flags win.
//! - `galley run recipes-api|rss-api|rss-worker`: one service, configured exactly like its own binary.
//! - `galley stack init|up|status|logs|restart|down|prune|debug`: the production-shaped stack on one
//!   machine (crate `galley-stack`; docs/OPERATIONS.md).
//! - `galley health URL`: exit 0 when `GET URL` answers 2xx within a short timeout, 1 otherwise; the
//!   container image's `HEALTHCHECK` (deploy/docker/Dockerfile), so the slim image needs no curl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use galley::{Application, Settings};
use galley_platform::{ConfigSource, Shutdown, telemetry};
use galley_wiring::secrets::Secrets;

#[derive(Debug, Parser)]
#[command(name = "galley", version, about = "Galley: recipes and RSS services in one process")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every service on one address (the default command).
    Serve(ServeArgs),
    /// Run one service on its own, configured by `config/*.toml` and `GALLEY__*` variables.
    Run {
        #[arg(value_enum)]
        service: Service,
    },
    /// Operate the Vault/OpenBao that holds Galley's secrets (`secrets.vault.*` settings).
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Run the whole stack locally: Redis, RabbitMQ, the services and nginx with TLS.
    Stack(galley_stack::StackArgs),
    /// Probe a health endpoint: exit 0 on a 2xx answer, 1 otherwise (container health checks).
    Health {
        /// The URL to GET, e.g. http://127.0.0.1:8080/health/ready.
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Enable KV v2, AppRole, the database and RabbitMQ engines; write each service's policy and
    /// AppRole; print each service's role id. Idempotent. Needs an operator token
    /// (`GALLEY__SECRETS__VAULT__TOKEN`, `auth = token`).
    Bootstrap,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Service {
    RecipesApi,
    RssApi,
    RssWorker,
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory for the embedded database; created if missing.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self { bind: SocketAddr::from(([127, 0, 0, 1], 8080)), data_dir: PathBuf::from("data") }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::Run { service: Service::RecipesApi } => recipes_api::app::run_from_config().await,
        Command::Run { service: Service::RssApi } => rss_api::app::run_from_config().await,
        Command::Run { service: Service::RssWorker } => rss_worker::app::run_from_config().await,
        Command::Vault { command: VaultCommand::Bootstrap } => vault_bootstrap().await,
        Command::Stack(args) => return galley_stack::run(args).await,
        Command::Health { url, timeout } => return Ok(health(&url, Duration::from_secs(timeout)).await),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// `galley vault bootstrap`: prints `<service> role_id=<id>` per service on stdout.
async fn vault_bootstrap() -> anyhow::Result<()> {
    use std::io::Write as _;
    let section: galley_vault::SecretsSection = galley_platform::load_settings(&ConfigSource::from_env())?;
    let vault = &section.secrets.vault;
    let client = galley_vault::VaultClient::connect(vault)
        .await
        .map_err(|error| anyhow::anyhow!("cannot log in to Vault at {}: {error}", vault.addr))?;
    let roles = galley_vault::bootstrap::bootstrap(&client, &vault.kv_mount).await?;
    let mut stdout = std::io::stdout().lock();
    for role in roles {
        writeln!(stdout, "{} role={} role_id={}", role.service, role.role, role.role_id)?;
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let source = ConfigSource::from_env();
    let secrets = Secrets::open(&source, &["recipes-api", "rss-api", "rss-worker"]).await?;
    let mut recipes: recipes_api::Settings = secrets.load(&source)?;
    recipes.http.bind = args.bind;
    let worker: rss_worker::Settings = secrets.load(&source)?;
    let _telemetry = telemetry::init("galley", &recipes.telemetry);
    secrets.log_origins();
    std::fs::create_dir_all(&args.data_dir)?;

    let settings = Settings { recipes, worker, data_dir: args.data_dir.clone() };
    let application =
        Application::build_with_secrets(settings, Arc::new(galley_kernel::SystemClock), &secrets).await?;
    announce(application.local_addr()?, &args.data_dir);
    application.run_until_stopped(Shutdown::on_signals()).await?;
    secrets.close().await;
    tracing::info!("galley stopped");
    Ok(())
}

/// The one piece of output meant for the person who started the binary, so it goes to stdout. Written
/// with `write!` rather than `println!` so a closed stdout (`galley | head -1`) cannot crash the server.
fn announce(address: SocketAddr, data_dir: &Path) {
    use std::io::Write as _;
    let base = format!("http://{address}");
    let text = format!(
        "Galley is running (data in {}). Press Ctrl-C to stop.\n\
         \x20 Recipes:        {base}/recipes\n\
         \x20 RSS entries:    {base}/rss/entries\n\
         \x20 API docs:       {base}/docs\n\
         \x20 OpenAPI:        {base}/openapi.json\n\
         \x20 Health:         {base}/health/live  {base}/health/ready\n",
        data_dir.display()
    );
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        tracing::warn!("stdout is closed; URLs not printed");
    }
}

/// `galley health URL`: the container image's `HEALTHCHECK`, so the slim image needs no curl. Uses the
/// reqwest client the binary already carries (`galley stack` probes with it); proxies are ignored, as the
/// probe targets the service's own listener. Any failure (bad URL, refused, timeout, non-2xx) is exit 1
/// with one line on stderr.
async fn health(url: &str, timeout: Duration) -> ExitCode {
    // The probe targets the container's own plain-HTTP listener; anything else is a mistake.
    if !url.starts_with("http://") {
        eprintln!("unhealthy: {url}: only http:// URLs are supported");
        return ExitCode::FAILURE;
    }
    let answer = match reqwest::Client::builder().no_proxy().timeout(timeout).build() {
        Ok(client) => client.get(url).send().await,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            return ExitCode::FAILURE;
        }
    };
    match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status().as_u16());
            ExitCode::FAILURE
        }
        Err(error) if error.is_timeout() => {
            eprintln!("unhealthy: {url} did not answer within {} s", timeout.as_secs());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
