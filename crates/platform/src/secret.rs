//! Secrets (passwords, keys, connection strings with credentials) are typed so they cannot end up in logs.
//!
//! [`Secret`] is `secrecy::SecretString`: its `Debug` prints `[REDACTED]`, it has no `Display`, and reading
//! the value requires an explicit `expose_secret()`, which makes every use easy to audit.

pub use secrecy::ExposeSecret;

/// A configuration value that must never be printed.
pub type Secret = secrecy::SecretString;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        #[derive(Debug, serde::Deserialize)]
        struct WithSecret {
            #[allow(dead_code)]
            password: Secret,
        }
        let parsed: WithSecret = serde_json::from_str(r#"{"password":"hunter2"}"#).expect("valid json");
        let printed = format!("{parsed:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(parsed.password.expose_secret(), "hunter2");
    }
}
