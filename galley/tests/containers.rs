//! The container artefacts (deploy/docker, deploy/compose, deploy/k8s) checked by the tools their users
//! run: hadolint on every Dockerfile, `podman-compose config` on both compose files, `kubectl kustomize`
//! then `kubernetes-validate --strict` on both overlays. The tools come from the project's virtualenv
//! (scripts/python-tools.sh) and Debian's kubectl; a missing tool skips its check with one line.
//!
//! Plus the copies that must not drift: deploy/k8s/base/production.toml mirrors config/production.toml,
//! and deploy/compose/nginx.conf keeps the routes of deploy/nginx/nginx.conf.template.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A tool from the project's virtualenv, else from PATH; `None` (and one SKIPPED line) when absent.
fn tool(name: &str) -> Option<PathBuf> {
    let local = root().join(".tools/venv/bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!("SKIPPED: {name} is not installed (scripts/python-tools.sh installs it)");
    }
    found
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("tool runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_dockerfile_is_hadolint_clean() {
    let Some(hadolint) = tool("hadolint") else { return };
    let root = root();
    let mut files = vec![root.join("deploy/docker/Dockerfile")];
    for entry in std::fs::read_dir(root.join("deploy/compose/local")).expect("local images") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|extension| extension == "Dockerfile") {
            files.push(path);
        }
    }
    assert!(files.len() >= 5, "the Galley image and the four local ones: {files:?}");
    for file in files {
        run(Command::new(&hadolint).arg(&file));
    }
}

#[test]
fn both_compose_files_are_accepted() {
    let Some(compose) = tool("podman-compose") else { return };
    let dir = root().join("deploy/compose");
    let full = run(Command::new(&compose).current_dir(&dir).args(["-f", "compose.yaml", "config"]));
    for expected in ["mongo:", "redis:", "rabbitmq:3-management", "openbao", "nginx:", "run", "rss-worker"] {
        assert!(full.contains(expected), "{expected} in the rendered compose.yaml:\n{full}");
    }
    let aws = run(Command::new(&compose)
        .current_dir(&dir)
        .env("COMPOSE_PROFILES", "aws")
        .env("GALLEY_BUS_BACKEND", "sqs")
        .args(["-f", "compose.yaml", "config"]));
    assert!(!aws.contains("rabbitmq:3-management"), "the aws profile runs no broker:\n{aws}");
    assert!(aws.contains("GALLEY__BUS__BACKEND: sqs"), "and points the services at SQS:\n{aws}");
    let local = run(Command::new(&compose).current_dir(&dir).env("GALLEY_COOKIE_KEY", "dGVzdA==").args([
        "-f",
        "compose.local.yaml",
        "config",
    ]));
    assert!(local.contains("localhost/galley:local") && local.contains("pull_policy: never"), "{local}");
    assert!(local.contains("GALLEY__STORE__BACKEND: embedded"), "{local}");
}

#[test]
fn both_overlays_render_and_validate_strictly() {
    let Some(kubectl) = tool("kubectl") else { return };
    let validate = tool("kubernetes-validate");
    let dir = tempfile::tempdir().expect("temp dir");
    for overlay in ["local", "production"] {
        let rendered = run(Command::new(&kubectl)
            .arg("kustomize")
            .arg(root().join("deploy/k8s/overlays").join(overlay)));
        for kind in [
            "Deployment",
            "Service",
            "Ingress",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ConfigMap",
            "NetworkPolicy",
        ] {
            assert!(rendered.contains(&format!("kind: {kind}\n")), "{overlay} renders a {kind}");
        }
        assert!(rendered.contains("readOnlyRootFilesystem: true") && rendered.contains("runAsNonRoot: true"));
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, &rendered).expect("write rendering");
        if let Some(validate) = &validate {
            run(Command::new(validate).arg("--strict").arg(&file));
        }
    }
}

#[test]
fn copies_stay_in_step_with_their_sources() {
    let root = root();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    assert_eq!(
        read("deploy/k8s/base/production.toml"),
        read("config/production.toml"),
        "copy config/production.toml to deploy/k8s/base/production.toml"
    );
    let locations = |text: &str| -> Vec<String> {
        text.lines().map(str::trim).filter(|line| line.starts_with("location ")).map(str::to_owned).collect()
    };
    let template = locations(&read("deploy/nginx/nginx.conf.template"));
    assert!(!template.is_empty());
    assert_eq!(locations(&read("deploy/compose/nginx.conf")), template, "compose nginx routes = the stack's");
}

#[test]
fn the_health_subcommand_answers_by_exit_code() {
    let galley = env!("CARGO_BIN_EXE_galley");
    // Nothing listens on port 9 of loopback (discard, never started here): unhealthy, exit 1.
    let refused =
        Command::new(galley).args(["health", "--timeout", "2", "http://127.0.0.1:9/health/ready"]).output();
    assert_eq!(refused.expect("runs").status.code(), Some(1));
    let bad = Command::new(galley).args(["health", "https://127.0.0.1/"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only http://"));
}

#[test]
fn the_health_subcommand_is_healthy_on_2xx_only() {
    use std::io::{Read as _, Write as _};
    let galley = env!("CARGO_BIN_EXE_galley");
    for (answer, expected) in [("200 OK", 0), ("503 Service Unavailable", 1)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("one probe");
            let mut request = [0_u8; 512];
            let read = stream.read(&mut request).expect("request");
            stream
                .write_all(format!("HTTP/1.1 {answer}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                .expect("answer");
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        let status = Command::new(galley)
            .args(["health", &format!("http://{address}/health/ready")])
            .status()
            .expect("runs");
        assert_eq!(status.code(), Some(expected), "{answer}");
        let request = server.join().expect("server thread");
        assert!(request.starts_with("GET /health/ready HTTP/1.1\r\n"), "{request}");
    }
}
