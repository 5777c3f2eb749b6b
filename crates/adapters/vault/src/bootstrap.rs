//! `galley vault bootstrap`: prepares a fresh Vault/OpenBao for Galley, idempotently.
//!
//! Enables KV v2 (at `secrets.vault.kv_mount`), AppRole, the database and RabbitMQ secrets engines;
//! writes one policy per service (`deploy/vault/policies/<service>.hcl`, compiled in, so the binary
//! and the repository cannot disagree) and one AppRole per service holding it; returns each role id.
//! The connections and roles of the database and RabbitMQ engines name servers and passwords only the
//! operator knows, so they are left to the commands in README.md.

use serde_json::json;

use crate::client::VaultClient;
use galley_platform::SecretsError;

/// The services, with the policy each one's AppRole holds.
pub const SERVICE_POLICIES: [(&str, &str); 3] = [
    ("recipes-api", include_str!("../../../../deploy/vault/policies/recipes-api.hcl")),
    ("rss-api", include_str!("../../../../deploy/vault/policies/rss-api.hcl")),
    ("rss-worker", include_str!("../../../../deploy/vault/policies/rss-worker.hcl")),
];

/// One service's AppRole after bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRole {
    pub service: String,
    /// `auth/approle/role/galley-<service>`
    pub role: String,
    pub role_id: String,
}

/// Runs the bootstrap with an operator's session (a token allowed to mount and write policies).
/// Mounts that already exist are kept as they are; policies and roles are (re)written.
pub async fn bootstrap(client: &VaultClient, kv_mount: &str) -> Result<Vec<ServiceRole>, SecretsError> {
    mount(client, &format!("sys/mounts/{kv_mount}"), json!({"type": "kv", "options": {"version": "2"}}))
        .await?;
    mount(client, "sys/auth/approle", json!({"type": "approle"})).await?;
    mount(client, "sys/mounts/database", json!({"type": "database"})).await?;
    mount(client, "sys/mounts/rabbitmq", json!({"type": "rabbitmq"})).await?;
    let mut roles = Vec::new();
    for (service, policy) in SERVICE_POLICIES {
        let name = format!("galley-{service}");
        let policy = policy.replace("secret/data/", &format!("{kv_mount}/data/"));
        client.write(&format!("sys/policies/acl/{name}"), &json!({ "policy": policy })).await?;
        let role = format!("auth/approle/role/{name}");
        client
            .write(&role, &json!({"token_policies": [name], "token_ttl": "1h", "token_max_ttl": "24h"}))
            .await?;
        let answer = client.read(&format!("{role}/role-id")).await?;
        let role_id = answer
            .as_ref()
            .and_then(|answer| answer["data"]["role_id"].as_str())
            .ok_or_else(|| SecretsError::Protocol(format!("{role}/role-id: no role_id")))?
            .to_owned();
        roles.push(ServiceRole { service: service.to_owned(), role, role_id });
    }
    Ok(roles)
}

/// Enables an engine or auth method; one already mounted there is fine.
async fn mount(client: &VaultClient, path: &str, body: serde_json::Value) -> Result<(), SecretsError> {
    match client.write(path, &body).await {
        Ok(_) => Ok(()),
        Err(SecretsError::Protocol(message)) if message.contains("already in use") => Ok(()),
        Err(error) => Err(error),
    }
}
