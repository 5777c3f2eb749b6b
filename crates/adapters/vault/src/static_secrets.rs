//! Static secrets: the KV v2 paths of a service, read into the configuration layer.

use galley_platform::{SecretLayer, SecretsBackend, SecretsError};

/// The folder every service shares (`<prefix>/shared`).
pub const SHARED: &str = "shared";

/// Reads `<prefix>/shared`, then `<prefix>/<service>` for each of `services` (later paths win on the
/// same key), into one layer. `mount` only names the source in the log. A path that does not exist
/// adds nothing; an unreachable or refusing server is an error (start-up must stop).
pub async fn read_static_layer(
    backend: &dyn SecretsBackend,
    mount: &str,
    prefix: &str,
    services: &[&str],
) -> Result<SecretLayer, SecretsError> {
    let mut layer = SecretLayer::new();
    let prefix = prefix.trim_matches('/');
    for folder in std::iter::once(SHARED).chain(services.iter().copied()) {
        let path = if prefix.is_empty() { folder.to_owned() } else { format!("{prefix}/{folder}") };
        let source = format!("vault {mount}/{path}");
        for (key, value) in backend.read_static(&path).await? {
            layer.insert(key, value, source.clone());
        }
    }
    Ok(layer)
}
