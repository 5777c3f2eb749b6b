//! A private moto server (a local AWS from PyPI `moto[server]`, installed by
//! `scripts/python-tools.sh`) on a free loopback port, for the SQS bus and KMS envelope encryption.
//! moto keeps everything in memory, so each server starts empty and forgets all when dropped.
//!
//! Every SDK client in tests points at [`MotoServer::endpoint`] with [`REGION`] and the static
//! credentials [`ACCESS_KEY_ID`]/[`SECRET_ACCESS_KEY`] (moto accepts any).

use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{OwnedProcess, free_port, temp_dir, tool, wait_for_port};

/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// moto accepts any credentials; these are the ones tests pass.
pub const ACCESS_KEY_ID: &str = "test";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "test";
/// moto is a Flask app; it starts in one to three seconds on a quiet machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    process: OwnedProcess,
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = temp_dir("moto");
        let port = free_port();
        let log = dir.join("moto.log");
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
        let mut process = OwnedProcess::spawn(&tool("moto_server"), &args, &[], dir, &log);
        wait_for_port(&mut process.child, port, START_TIMEOUT, "moto", &log);
        Self { port, process }
    }

    /// One moto for the whole test binary, started on first use and stopped when the binary exits
    /// (the watchdog sees its pipe close). Tests that share it use unique queue names or key aliases.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<MotoServer> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// `http://127.0.0.1:<port>`: the endpoint override for every AWS client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (its state is lost, as when moto restarts).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
