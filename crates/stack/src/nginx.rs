//! Renders `deploy/nginx/nginx.conf.template` for the stack's ports, replicas and certificate.
//!
//! The template has a handful of `{{name}}` placeholders filled by plain string replacement: a
//! template engine would be a new dependency for seven substitutions, and nginx's own `$variables`
//! and braces must pass through untouched.

use std::path::Path;

use anyhow::Context as _;

use crate::components::{Component, instances};
use crate::state::{Plan, StateDir};

/// The template, compiled in so the binary needs no checkout.
pub const TEMPLATE: &str = include_str!("../../../deploy/nginx/nginx.conf.template");

/// The configuration for `plan`.
pub fn render(state: &StateDir, plan: &Plan, run_as_root: bool) -> anyhow::Result<String> {
    let prefix = state.config("nginx");
    let servers = |component: Component| -> String {
        instances(plan)
            .iter()
            .filter(|instance| instance.component == component)
            .map(|instance| format!("        server 127.0.0.1:{};\n", plan.known_port(&instance.name())))
            .collect::<String>()
            .trim_end()
            .to_owned()
    };
    let user_directive = if run_as_root {
        // Workers of a root master would run as `nobody`, who cannot enter a private state directory.
        "user root;"
    } else {
        "# `user` is only meaningful for a master started as root."
    };
    let rendered = TEMPLATE
        .replace("{{user_directive}}", user_directive)
        .replace("{{prefix}}", &prefix.display().to_string())
        .replace("{{https_port}}", &plan.https_port.to_string())
        .replace("{{http_port}}", &plan.http_port.to_string())
        .replace("{{certificate}}", &state.tls_certificate().display().to_string())
        .replace("{{certificate_key}}", &state.tls_key().display().to_string())
        .replace("{{recipes_api_servers}}", &servers(Component::RecipesApi))
        .replace("{{rss_api_servers}}", &servers(Component::RssApi));
    anyhow::ensure!(!rendered.contains("{{"), "the nginx template has a placeholder nobody fills");
    Ok(rendered)
}

/// Writes the configuration and the directories nginx expects under its prefix; whether the file
/// changed (a running nginx then needs a reload).
pub fn write(state: &StateDir, plan: &Plan, run_as_root: bool) -> anyhow::Result<bool> {
    let prefix = state.config("nginx");
    for dir in ["logs", "temp"] {
        std::fs::create_dir_all(prefix.join(dir))?;
    }
    let path = prefix.join("nginx.conf");
    let rendered = render(state, plan, run_as_root)?;
    let changed = std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str());
    if changed {
        std::fs::write(&path, rendered).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(changed)
}

/// `nginx -t` on the rendered file: a syntax error is reported before anything is started.
pub fn check(binary: &Path, state: &StateDir) -> anyhow::Result<()> {
    let prefix = state.config("nginx");
    let output = std::process::Command::new(binary)
        .arg("-t")
        .arg("-q")
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-p")
        .arg(format!("{}/", prefix.display()))
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .output()
        .context("running nginx -t")?;
    anyhow::ensure!(
        output.status.success(),
        "nginx refuses {}: {}",
        prefix.join("nginx.conf").display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::allocate_ports;

    fn plan() -> Plan {
        let mut plan = Plan { https_port: 8443, http_port: 8080, ..Plan::default() };
        plan.replicas.insert("recipes-api".into(), 2);
        allocate_ports(&mut plan).expect("ports");
        plan
    }

    #[test]
    fn every_placeholder_is_filled_and_every_replica_is_an_upstream_server() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        let plan = plan();
        let text = render(&state, &plan, true).expect("rendered");
        assert!(text.contains("listen 127.0.0.1:8443 ssl http2;"));
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("user root;"));
        for replica in ["recipes-api", "recipes-api-2", "rss-api"] {
            assert!(text.contains(&format!("server 127.0.0.1:{};", plan.known_port(replica))), "{replica}");
        }
        assert!(!text.contains("/metrics {"), "/metrics is never routed");
        assert!(!render(&state, &plan, false).expect("rendered").contains("user root;"));
    }

    #[test]
    fn nginx_accepts_the_rendered_configuration() {
        let Some(binary) = crate::components::binary(Component::Nginx) else {
            // scripts/test-prerequisites.sh installs nginx; without it this check cannot run.
            eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        state.create_skeleton().expect("skeleton");
        crate::tls::ensure(&state).expect("certificate");
        let plan = plan();
        assert!(write(&state, &plan, crate::process::is_root()).expect("written"));
        check(&binary, &state).expect("nginx -t passes");
        assert!(!write(&state, &plan, crate::process::is_root()).expect("written"), "unchanged");
    }
}
