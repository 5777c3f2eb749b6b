//! `galley stack`: the production-shaped stack on one machine — Redis, a private RabbitMQ node, moto
//! (KMS) and OpenBao sealed by it, the three services (with replicas), nginx terminating TLS in front and,
//! when it is installed, Prometheus scraping every replica — as native processes on loopback
//! ports, supervised by the CLI's own records rather than by a container engine or an init system.
//!
//! Module map:
//! - [`state`]: the state directory's layout, the plan (ports, replicas) and the supervision records.
//! - [`process`]: detached process groups, liveness from `/proc/PID/stat` (pid + start time, zombies
//!   dead), graceful-then-forceful stops.
//! - [`components`]: the components in dependency order, how each is started and probed, their
//!   configuration files.
//! - [`nginx`]: rendering `deploy/nginx/nginx.conf.template`.
//! - [`prometheus`]: the optional Prometheus (when installed): scrape configuration of every replica,
//!   the alert rules.
//! - [`openbao`]: OpenBao sealed by moto's KMS: key, configuration, initialisation, bootstrap.
//! - [`tls`]: the local CA and the `localhost` certificate (`rcgen`).
//! - [`commands`]: the subcommands.
//!
//! The decisions are in docs/adr/0025-local-production-shaped-stack.md; docs/OPERATIONS.md is the
//! user's guide.

pub mod commands;
pub mod components;
pub mod nginx;
pub mod openbao;
pub mod process;
pub mod prometheus;
pub mod state;
pub mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `galley stack [--state-dir DIR] COMMAND`
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Where the stack keeps certificates, configuration, records, logs and data.
    #[arg(long, global = true, default_value = "stack", env = "GALLEY_STACK_STATE_DIR")]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: StackCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum StackCommand {
    /// Create the state directory: local CA and certificate, cookie key, configuration. Idempotent.
    Init,
    /// Start what is not running (all components, or those named), in dependency order.
    Up(UpArgs),
    /// Health of every component; exits non-zero when one is not healthy.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a component's log.
    Logs {
        component: String,
        /// Keep printing what is appended (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
        /// How many lines from the end.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// Stop and start a component (or one replica, e.g. `rss-worker-2`).
    Restart { component: String },
    /// Stop components (all when none is named): SIGTERM, then SIGKILL after the grace period.
    Down {
        components: Vec<String>,
        /// Seconds to wait after SIGTERM.
        #[arg(long, default_value_t = 20)]
        grace: u64,
    },
    /// Stop everything and remove the state directory (certificates, data, logs).
    Prune {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Run a service in the foreground with debug logs (its background instance is stopped first).
    Debug { service: String },
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Components (or replicas) to start; all when none is named.
    pub components: Vec<String>,
    /// Replicas per service: `recipes-api=2,rss-worker=3` (kept for later runs).
    #[arg(long, value_delimiter = ',')]
    pub replicas: Vec<String>,
    /// nginx's HTTPS port (kept for later runs; default 8443).
    #[arg(long)]
    pub https_port: Option<u16>,
    /// nginx's plain-HTTP port, which only redirects (kept for later runs; default 8080).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// The fetcher's `fetch.allow_private_hosts`: private addresses or networks feeds may live on.
    #[arg(long, value_delimiter = ',')]
    pub allow_private_hosts: Option<Vec<String>>,
    /// Use this MongoDB server instead of the shared embedded store.
    #[arg(long, env = "GALLEY_STACK_MONGODB_URI")]
    pub mongodb_uri: Option<String>,
    /// Install missing server packages with apt-get (needs root).
    #[arg(long)]
    pub install: bool,
}

/// Runs one `galley stack` command.
pub async fn run(args: StackArgs) -> anyhow::Result<ExitCode> {
    let state = state::StateDir::new(&args.state_dir)?;
    match args.command {
        StackCommand::Init => commands::init(&state).map(|()| ExitCode::SUCCESS),
        StackCommand::Up(up) => commands::up(&state, &up).await.map(|()| ExitCode::SUCCESS),
        StackCommand::Status { json } => commands::status(&state, json).await,
        StackCommand::Logs { component, follow, lines } => {
            commands::logs(&state, &component, follow, lines).await.map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Restart { component } => {
            commands::restart(&state, &component).await.map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Down { components, grace } => {
            commands::down(&state, &components, std::time::Duration::from_secs(grace))
                .map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Prune { yes } => commands::prune(&state, yes),
        StackCommand::Debug { service } => commands::debug(&state, &service).await,
    }
}
