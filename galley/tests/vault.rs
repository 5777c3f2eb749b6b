//! `galley vault bootstrap` against a private OpenBao dev server.

use std::process::Command;

use galley_test_support::openbao::{DEV_ROOT_TOKEN, OpenBao};

fn bootstrap(bao: &OpenBao, config_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["vault", "bootstrap"])
        .env("GALLEY_CONFIG_DIR", config_dir)
        .env("GALLEY__SECRETS__VAULT__ADDR", bao.addr())
        .env("GALLEY__SECRETS__VAULT__TOKEN", DEV_ROOT_TOKEN)
        .output()
        .expect("galley runs")
}

#[test]
fn bootstrap_prints_a_role_id_per_service_and_can_run_again() {
    let bao = OpenBao::dev();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = bootstrap(&bao, dir.path());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let text = String::from_utf8_lossy(&first.stdout).into_owned();
    let services: Vec<&str> = text.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert_eq!(services, ["recipes-api", "rss-api", "rss-worker"], "{text}");
    assert!(text.lines().all(|line| line.contains("role_id=")), "{text}");

    let second = bootstrap(&bao, dir.path());
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(String::from_utf8_lossy(&second.stdout), text, "idempotent: the same role ids");
    let policies = bao.bao(&["policy", "list"]);
    assert!(policies.contains("galley-rss-worker"), "{policies}");
}
