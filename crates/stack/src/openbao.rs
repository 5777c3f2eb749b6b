//! OpenBao sealed by moto's KMS: the key, the server configuration, initialisation and bootstrap.
//!
//! The server is `deploy/vault/server.hcl`'s shape on loopback: raft storage under the state directory,
//! the `awskms` seal (OpenBao 2.6.x) pointed at the stack's moto, no TLS (loopback only). A fresh data
//! directory is initialised with one recovery share (`STATE/data/openbao/init.json`, 0600: the root
//! token and recovery key) and bootstrapped with `galley vault bootstrap` (KV v2, AppRole per service,
//! the database and RabbitMQ engines; role ids in `approles.txt`).
//!
//! The pitfall: moto keeps KMS keys in memory only. When moto has restarted since the key was made,
//! OpenBao's data, sealed by that key, can never unseal again. The stack treats OpenBao's data as
//! derived state: it notices (the key file records which moto process made the key — pid and start
//! time), says so, and re-initialises an empty data directory under a new key (ADR 0025).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::state::{Plan, Record, StateDir};

/// Which KMS key seals OpenBao, and which moto process holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealKey {
    key_id: String,
    moto_pid: i32,
    moto_start_ticks: u64,
}

fn key_file(state: &StateDir) -> PathBuf {
    state.data("openbao").join("kms-key.json")
}

pub fn init_file(state: &StateDir) -> PathBuf {
    state.data("openbao").join("init.json")
}

/// Before OpenBao starts: a KMS key held by the running moto (re-initialising OpenBao's data when
/// moto lost the old one) and the server configuration. Returns a line to tell the user, if any.
pub async fn prepare(
    state: &StateDir,
    plan: &Plan,
    moto: &Record,
    client: &reqwest::Client,
) -> anyhow::Result<Option<String>> {
    let data = state.data("openbao");
    std::fs::create_dir_all(data.join("raft"))?;
    std::fs::create_dir_all(state.config("openbao"))?;
    let existing: Option<SealKey> =
        std::fs::read_to_string(key_file(state)).ok().and_then(|text| serde_json::from_str(&text).ok());
    let mut notice = None;
    let key = match existing {
        Some(key) if key.moto_pid == moto.pid && key.moto_start_ticks == moto.start_ticks => key,
        stale => {
            if stale.is_some() {
                // The data sealed by the lost key is unreadable: start over, and say so.
                std::fs::remove_dir_all(data.join("raft")).context("removing OpenBao's old data")?;
                std::fs::create_dir_all(data.join("raft"))?;
                let _ = std::fs::remove_file(init_file(state));
                notice = Some(
                    "moto restarted and lost its in-memory KMS key: OpenBao's sealed data cannot unseal, so it \
                     is re-initialised empty under a new key (re-run anything you stored in it)"
                        .to_owned(),
                );
            }
            let key_id = create_kms_key(client, plan.known_port("moto")).await?;
            let key = SealKey { key_id, moto_pid: moto.pid, moto_start_ticks: moto.start_ticks };
            std::fs::write(key_file(state), serde_json::to_string_pretty(&key)?)?;
            key
        }
    };
    let port = plan.known_port("openbao");
    let config = format!(
        "# Written by `galley stack up` (deploy/vault/server.hcl on loopback, sealed by the stack's moto KMS).\n\
         storage \"raft\" {{\n  path    = \"{raft}\"\n  node_id = \"galley-stack-1\"\n}}\n\
         listener \"tcp\" {{\n  address     = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
         seal \"awskms\" {{\n  region     = \"us-east-1\"\n  kms_key_id = \"{key_id}\"\n  endpoint   = \"http://127.0.0.1:{moto}\"\n  access_key = \"test\"\n  secret_key = \"test\"\n}}\n\
         api_addr      = \"http://127.0.0.1:{port}\"\ncluster_addr  = \"http://127.0.0.1:{cluster}\"\n\
         disable_mlock = true\nui            = false\n",
        raft = data.join("raft").display(),
        key_id = key.key_id,
        moto = plan.known_port("moto"),
        cluster = plan.known_port("openbao-cluster"),
    );
    std::fs::write(state.config("openbao/server.hcl"), config)?;
    Ok(notice)
}

/// moto's KMS speaks the AWS JSON protocol and checks no signature.
async fn create_kms_key(client: &reqwest::Client, moto_port: u16) -> anyhow::Result<String> {
    let response: serde_json::Value = client
        .post(format!("http://127.0.0.1:{moto_port}/"))
        .header("X-Amz-Target", "TrentService.CreateKey")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(r#"{"Description": "galley stack: OpenBao seal"}"#)
        .send()
        .await
        .context("asking moto for a KMS key")?
        .json()
        .await
        .context("moto's CreateKey answer")?;
    response["KeyMetadata"]["KeyId"]
        .as_str()
        .map(str::to_owned)
        .context("moto's CreateKey answer has no KeyId")
}

/// While OpenBao boots: when it answers "not initialised" (501), initialise it once (one recovery
/// share; the seal unseals it) and keep the result. Whether it initialised now.
pub async fn initialise_if_needed(
    state: &StateDir,
    plan: &Plan,
    client: &reqwest::Client,
) -> anyhow::Result<bool> {
    let port = plan.known_port("openbao");
    let health = client.get(format!("http://127.0.0.1:{port}/v1/sys/health")).send().await;
    if !health.is_ok_and(|response| response.status() == 501) {
        return Ok(false);
    }
    // Initialisation generates keys and writes through the KMS seal: far slower than a probe.
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(90)).build()?;
    let answer: serde_json::Value = patient
        .put(format!("http://127.0.0.1:{port}/v1/sys/init"))
        .json(&serde_json::json!({"recovery_shares": 1, "recovery_threshold": 1}))
        .send()
        .await
        .context("initialising OpenBao")?
        .error_for_status()
        .context("initialising OpenBao")?
        .json()
        .await?;
    crate::tls::write(&init_file(state), &serde_json::to_string_pretty(&answer)?, true)?;
    Ok(true)
}

/// After a fresh initialisation: `galley vault bootstrap` with the root token (engines, policies, an
/// AppRole per service); the role ids go to `approles.txt`.
pub async fn bootstrap(state: &StateDir, plan: &Plan) -> anyhow::Result<()> {
    let init: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(init_file(state))?)?;
    let token = init["root_token"].as_str().context("init.json has no root token")?;
    let galley = std::env::current_exe()?;
    let output = tokio::process::Command::new(galley)
        .args(["vault", "bootstrap"])
        .env("GALLEY_CONFIG_DIR", state.config("openbao"))
        .env("GALLEY__SECRETS__VAULT__ADDR", format!("http://127.0.0.1:{}", plan.known_port("openbao")))
        .env("GALLEY__SECRETS__VAULT__AUTH", "token")
        .env("GALLEY__SECRETS__VAULT__TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .context("running galley vault bootstrap")?;
    anyhow::ensure!(
        output.status.success(),
        "galley vault bootstrap failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    crate::tls::write(
        &state.data("openbao").join("approles.txt"),
        &String::from_utf8_lossy(&output.stdout),
        true,
    )
}
