//! OpenBao sealed by moto's KMS: the key, the server configuration, initialisation and bootstrap.
//!
//! The server is `deploy/vault/server.hcl`'s shape on loopback: raft storage under the state directory,
//! the `awskms` seal (OpenBao 2.6.x) pointed at the stack's moto, no TLS (loopback only). A fresh data
//! directory is initialised with one recovery share (`STATE/data/openbao/init.json`, 0600: the root
//! token and recovery key). Every start provisions it ([`provision`]): `galley vault bootstrap` (KV v2,
//! AppRole per service, the database and RabbitMQ engines; role ids in `approles.txt`), the shared KV
//! secrets, the Redis and RabbitMQ lease roles on the stack's servers and a secret id per service; the
//! services then log in with AppRole and lease their Redis and RabbitMQ users ([`service_environment`]).
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

/// The secrets every service reads from OpenBao, and how (the environment of each service's process).
///
/// Written by [`provision`]; read by [`service_environment`] when a service starts.
fn secret_id_file(state: &StateDir, service: &str) -> PathBuf {
    state.secrets_dir().join(format!("{service}.secret-id"))
}

fn approles_file(state: &StateDir) -> PathBuf {
    state.data("openbao").join("approles.txt")
}

/// Redis lease role: the stack's key prefix only, no `@dangerous` command (README "Dynamic
/// credentials"); `+@scripting` for the sign-in tracker's Lua.
const REDIS_ACL: &str = r#"["~galley:*", "+@read", "+@write", "+@scripting", "-@dangerous", "+ping"]"#;
/// RabbitMQ lease role: Galley's queues (prefix `galley.`) and the default exchange only.
const RABBITMQ_PERMISSIONS: &str = r#"{"/": {"configure": "^galley\\..*", "write": "^(galley\\..*|amq\\.default)$", "read": "^galley\\..*"}}"#;
/// Lease lifetimes of the dynamic credentials: renewed at two thirds, replaced before the max.
const LEASE_TTL: &str = "1h";
const LEASE_MAX_TTL: &str = "24h";
pub const CACHE_LEASE: &str = "database/creds/galley-cache";
pub const BUS_LEASE: &str = "rabbitmq/creds/galley-bus";

/// Every time the stack starts OpenBao: `galley vault bootstrap` with the root token (engines,
/// policies, an AppRole per service; role ids in `approles.txt`), then what only the stack knows —
/// the shared static secrets in KV (`secret/galley/shared`: the cookie key), the database engine's
/// connection to the stack's Redis (as its password-protected `default` user) with the `galley-cache`
/// role, the RabbitMQ engine's connection to the node's management API with the `galley-bus` role,
/// and a fresh AppRole secret id per service in `STATE/secrets/<service>.secret-id` (0600). Every
/// step overwrites: running it again converges, and a re-initialised OpenBao gets everything back.
pub async fn provision(state: &StateDir, plan: &Plan, cookie_key: &str) -> anyhow::Result<()> {
    let init: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(init_file(state))?)?;
    let token = init["root_token"].as_str().context("init.json has no root token")?;
    let galley = std::env::current_exe()?;
    let output = tokio::process::Command::new(galley)
        .args(["vault", "bootstrap"])
        .env("GALLEY_CONFIG_DIR", state.config("openbao"))
        .env("GALLEY__SECRETS__VAULT__ADDR", address(plan))
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
    crate::tls::write(&approles_file(state), &String::from_utf8_lossy(&output.stdout), true)?;

    let bao = Operator::new(plan, token)?;
    bao.write("secret/data/galley/shared", serde_json::json!({"data": {"identity.cookie_key": cookie_key}}))
        .await?;
    let redis_password = crate::state::read_secret(&state.redis_password())?;
    bao.write(
        "database/config/galley-cache",
        serde_json::json!({
            "plugin_name": "redis-database-plugin",
            "host": "127.0.0.1",
            "port": plan.known_port("redis"),
            "username": "default",
            "password": redis_password,
            "allowed_roles": "galley-cache",
        }),
    )
    .await?;
    bao.write(
        "database/roles/galley-cache",
        serde_json::json!({
            "db_name": "galley-cache",
            "creation_statements": REDIS_ACL,
            "default_ttl": LEASE_TTL,
            "max_ttl": LEASE_MAX_TTL,
        }),
    )
    .await?;
    bao.write(
        "rabbitmq/config/connection",
        serde_json::json!({
            "connection_uri": format!("http://127.0.0.1:{}", plan.known_port("rabbitmq-management")),
            "username": "guest",
            "password": "guest",
            "verify_connection": true,
        }),
    )
    .await?;
    bao.write("rabbitmq/config/lease", serde_json::json!({"ttl": 3600, "max_ttl": 86400})).await?;
    bao.write("rabbitmq/roles/galley-bus", serde_json::json!({"vhosts": RABBITMQ_PERMISSIONS})).await?;

    std::fs::create_dir_all(state.secrets_dir())?;
    for service in SERVICES {
        let answer = bao
            .write(&format!("auth/approle/role/galley-{service}/secret-id"), serde_json::json!({}))
            .await?;
        let secret_id = answer["data"]["secret_id"]
            .as_str()
            .with_context(|| format!("OpenBao gave no secret id for galley-{service}"))?;
        crate::tls::write(&secret_id_file(state, service), secret_id, true)?;
    }
    Ok(())
}

const SERVICES: [&str; 3] = ["recipes-api", "rss-api", "rss-worker"];

fn address(plan: &Plan) -> String {
    format!("http://127.0.0.1:{}", plan.known_port("openbao"))
}

/// The environment that makes `service` read its secrets from the stack's OpenBao: AppRole login
/// (role id from `approles.txt`, secret id from its file), leased Redis credentials for every
/// service (recipes-api's cache, rss-api's revocation list, the worker's entries invalidation) and
/// leased RabbitMQ credentials for the two that use the bus. Fails when OpenBao was never
/// provisioned (`galley stack up openbao` first).
pub fn service_environment(
    state: &StateDir,
    plan: &Plan,
    service: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let approles = std::fs::read_to_string(approles_file(state)).with_context(|| {
        format!("{service} reads its secrets from OpenBao: start it first (`galley stack up openbao`)")
    })?;
    let role_id = role_id(&approles, service)
        .with_context(|| format!("{} names no role id for {service}", approles_file(state).display()))?;
    let mut env = vec![
        ("GALLEY__SECRETS__BACKEND", "vault".to_owned()),
        ("GALLEY__SECRETS__VAULT__ADDR", address(plan)),
        ("GALLEY__SECRETS__VAULT__AUTH", "approle".to_owned()),
        ("GALLEY__SECRETS__VAULT__ROLE_ID", role_id.to_owned()),
        ("GALLEY__SECRETS__VAULT__SECRET_ID_FILE", secret_id_file(state, service).display().to_string()),
        ("GALLEY__SECRETS__VAULT__LEASES__CACHE", CACHE_LEASE.to_owned()),
    ];
    if service != "recipes-api" {
        env.push(("GALLEY__SECRETS__VAULT__LEASES__BUS", BUS_LEASE.to_owned()));
    }
    Ok(env.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

/// The role id in `galley vault bootstrap`'s output (`<service> role=<path> role_id=<id>` per line).
fn role_id<'a>(approles: &'a str, service: &str) -> Option<&'a str> {
    approles.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(service)).then_some(())?;
        words.find_map(|word| word.strip_prefix("role_id="))
    })
}

/// OpenBao's HTTP API with the root token, for the writes `galley vault bootstrap` leaves to the
/// operator (they name this stack's servers and passwords).
struct Operator {
    client: reqwest::Client,
    address: String,
    token: String,
}

impl Operator {
    fn new(plan: &Plan, token: &str) -> anyhow::Result<Self> {
        // Configuring the database engine makes OpenBao connect to Redis: slower than a probe.
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { client, address: address(plan), token: token.to_owned() })
    }

    /// `POST /v1/<path>`; the answer's JSON (`null` for 204).
    async fn write(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let response = self
            .client
            .post(format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("writing {path} to OpenBao"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "writing {path} to OpenBao: {status} {}", text.trim());
        Ok(if text.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_ids_are_read_from_the_bootstrap_output() {
        let approles = "recipes-api role=auth/approle/role/galley-recipes-api role_id=aaa\n\
                        rss-api role=auth/approle/role/galley-rss-api role_id=bbb\n\
                        rss-worker role=auth/approle/role/galley-rss-worker role_id=ccc\n";
        assert_eq!(role_id(approles, "recipes-api"), Some("aaa"));
        assert_eq!(role_id(approles, "rss-api"), Some("bbb"));
        assert_eq!(role_id(approles, "rss-worker"), Some("ccc"));
        assert_eq!(role_id(approles, "rss"), None);
    }

    #[test]
    fn only_bus_users_lease_bus_credentials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        std::fs::create_dir_all(state.data("openbao")).expect("dir");
        std::fs::write(
            approles_file(&state),
            "recipes-api role=r role_id=aaa\nrss-worker role=w role_id=ccc\n",
        )
        .expect("approles");
        let plan = Plan::default();
        let recipes = service_environment(&state, &plan, "recipes-api").expect("recipes-api");
        assert!(
            recipes.iter().any(|(key, value)| key == "GALLEY__SECRETS__VAULT__ROLE_ID" && value == "aaa")
        );
        assert!(recipes.iter().any(|(key, _)| key == "GALLEY__SECRETS__VAULT__LEASES__CACHE"));
        assert!(!recipes.iter().any(|(key, _)| key == "GALLEY__SECRETS__VAULT__LEASES__BUS"));
        let worker = service_environment(&state, &plan, "rss-worker").expect("rss-worker");
        assert!(
            worker
                .iter()
                .any(|(key, value)| key == "GALLEY__SECRETS__VAULT__LEASES__BUS" && value == BUS_LEASE)
        );
        assert!(service_environment(&state, &plan, "rss-api").is_err(), "no role id, no start");
    }
}
