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

    /// Creates a symmetric KMS key and returns its id. moto's KMS speaks the AWS JSON protocol and
    /// needs no real signature, so this is a plain HTTP call (no SDK in the harness).
    pub async fn create_kms_key(&self) -> String {
        let response: serde_json::Value = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(self.endpoint())
            .header("X-Amz-Target", "TrentService.CreateKey")
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body("{}")
            .send()
            .await
            .expect("moto answers")
            .json()
            .await
            .expect("json");
        response["KeyMetadata"]["KeyId"].as_str().expect("key id").to_owned()
    }

    /// Kills the server (its state is lost, as when moto restarts).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
