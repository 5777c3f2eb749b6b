//! The files in `deploy/vault/`: the per-service policies grant each service its own paths only, and
//! the auto-unseal drill — a real (non-dev) OpenBao sealed by a moto KMS key, initialised, killed and
//! restarted, comes back unsealed with its KV data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use galley_platform::{Secret, SecretsBackend, SecretsError};
use galley_test_support::moto::MotoServer;
use galley_test_support::openbao::OpenBao;
use galley_test_support::process::free_port;
use galley_vault::{VaultAuthMethod, VaultClient, VaultSettings};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/vault")
}

fn token_settings(bao: &OpenBao, token: &str) -> VaultSettings {
    VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Token,
        token: Some(Secret::from(token.to_owned())),
        ..VaultSettings::default()
    }
}

#[tokio::test]
async fn each_service_policy_reads_its_own_and_the_shared_paths_only() {
    let bao = OpenBao::dev();
    for service in ["recipes-api", "rss-api", "rss-worker"] {
        bao.bao(&["kv", "put", &format!("secret/galley/{service}"), "a=b"]);
    }
    bao.bao(&["kv", "put", "secret/galley/shared", "a=b"]);
    for service in ["recipes-api", "rss-api", "rss-worker"] {
        let policy = deploy_dir().join("policies").join(format!("{service}.hcl"));
        bao.bao(&["policy", "write", service, &policy.display().to_string()]);
        let token = bao.bao(&["token", "create", "-field=token", &format!("-policy={service}")]);
        let client = VaultClient::connect(&token_settings(&bao, token.trim())).await.expect("connects");
        assert_eq!(client.read_static("galley/shared").await.expect("shared").len(), 1, "{service}");
        assert_eq!(client.read_static(&format!("galley/{service}")).await.expect("own").len(), 1);
        for other in ["recipes-api", "rss-api", "rss-worker"].into_iter().filter(|o| *o != service) {
            let refused = client.read_static(&format!("galley/{other}")).await;
            assert!(matches!(refused, Err(SecretsError::Denied(_))), "{service} reads {other}: {refused:?}");
        }
    }
}

/// `deploy/vault/server.hcl` turned into a loopback test server: same storage and seal stanzas, the
/// KMS endpoint and key of this test's moto, no TLS.
fn test_config(moto: &MotoServer, key_id: &str, cluster_port: u16) -> String {
    let deployed = std::fs::read_to_string(deploy_dir().join("server.hcl")).expect("server.hcl");
    assert!(deployed.contains("storage \"raft\"") && deployed.contains("seal \"awskms\""), "{deployed}");
    format!(
        r#"storage "raft" {{
  path    = "{{dir}}/raft"
  node_id = "galley-vault-1"
}}
listener "tcp" {{
  address     = "127.0.0.1:{{port}}"
  tls_disable = true
}}
seal "awskms" {{
  region     = "us-east-1"
  kms_key_id = "{key_id}"
  endpoint   = "{endpoint}"
  access_key = "test"
  secret_key = "test"
}}
api_addr      = "http://127.0.0.1:{{port}}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
"#,
        endpoint = moto.endpoint(),
    )
}

/// Waits until the server is unsealed and its raft node has become the active one (an unsealed
/// node answers requests only once it leads).
fn wait_unsealed(bao: &OpenBao) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = bao.bao_output(&["status", "-format=json"]);
        let text = String::from_utf8_lossy(&output.stdout);
        if text.contains("\"sealed\": false") && text.contains("\"initialized\": true") {
            break;
        }
        assert!(Instant::now() < deadline, "not unsealed within 60 s: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let output = bao.bao_output(&["read", "-format=json", "sys/leader"]);
        let text = String::from_utf8_lossy(&output.stdout);
        if text.contains("\"is_self\": true") {
            return;
        }
        assert!(Instant::now() < deadline, "not active within 60 s: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_kms_sealed_server_comes_back_unsealed_with_its_data_after_a_restart() {
    let moto = MotoServer::start();
    let key_id = moto.create_kms_key().await;
    let config = test_config(&moto, &key_id, free_port());
    let raft_dir = galley_test_support::process::temp_dir("openbao-unseal");
    std::fs::create_dir_all(raft_dir.join("raft")).expect("raft dir");
    let mut bao = OpenBao::server_in(raft_dir, &config);

    let init: serde_json::Value = serde_json::from_str(&bao.bao(&[
        "operator",
        "init",
        "-recovery-shares=1",
        "-recovery-threshold=1",
        "-format=json",
    ]))
    .expect("init json");
    let root = init["root_token"].as_str().expect("root token").to_owned();
    bao.set_token(root.clone());
    wait_unsealed(&bao);
    bao.bao(&["secrets", "enable", "-path=secret", "kv-v2"]);
    bao.bao(&["kv", "put", "secret/galley/shared", "identity.cookie_key=kept"]);

    bao.kill();
    let dir = bao.into_dir();
    let mut restarted = OpenBao::server_in(dir, &config);
    restarted.set_token(root.clone());
    let started = Instant::now();
    wait_unsealed(&restarted);
    eprintln!("unsealed and active {:?} after the restart, with no unseal key given", started.elapsed());

    let client = VaultClient::connect(&token_settings(&restarted, &root)).await.expect("connects");
    let values = client.read_static("galley/shared").await.expect("reads");
    assert!(values.contains_key("identity.cookie_key"), "the KV data survived the restart");
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_its_approles_log_in_with_least_privilege() {
    let bao = OpenBao::dev();
    let operator = VaultClient::connect(&token_settings(&bao, galley_test_support::openbao::DEV_ROOT_TOKEN))
        .await
        .expect("connects");
    let first = galley_vault::bootstrap::bootstrap(&operator, "secret").await.expect("bootstraps");
    let again = galley_vault::bootstrap::bootstrap(&operator, "secret").await.expect("bootstraps again");
    assert_eq!(first, again, "same roles, same role ids");
    let services: Vec<&str> = first.iter().map(|role| role.service.as_str()).collect();
    assert_eq!(services, ["recipes-api", "rss-api", "rss-worker"]);

    bao.bao(&["kv", "put", "secret/galley/recipes-api", "a=b"]);
    bao.bao(&["kv", "put", "secret/galley/rss-api", "a=b"]);
    let recipes = &first[0];
    let secret_id = bao.bao(&["write", "-f", "-field=secret_id", &format!("{}/secret-id", recipes.role)]);
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Approle,
        role_id: Some(recipes.role_id.clone()),
        secret_id: Some(Secret::from(secret_id.trim().to_owned())),
        ..VaultSettings::default()
    };
    let client = VaultClient::connect(&settings).await.expect("the recipes-api AppRole logs in");
    assert_eq!(client.read_static("galley/recipes-api").await.expect("own path").len(), 1);
    let refused = client.read_static("galley/rss-api").await;
    assert!(matches!(refused, Err(SecretsError::Denied(_))), "{refused:?}");
}
