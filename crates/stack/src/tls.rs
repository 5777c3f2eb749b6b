//! The stack's local certificate authority and the certificate nginx serves for `localhost` and
//! `127.0.0.1`, made with `rcgen`. Clients trust `ca.pem` (`curl --cacert stack/ca.pem`), never the
//! leaf itself, so the leaf can be re-issued without touching the clients.

use std::path::Path;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::state::StateDir;

/// How long the CA and the leaf are valid: long enough for a development machine, short enough that a
/// leaked key of a forgotten state directory stops mattering.
const VALIDITY: Duration = Duration::days(398);

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Created,
}

/// Creates the CA and the leaf unless all four files exist. The leaf is signed by the CA in the same
/// run: a lone missing file re-issues both (rcgen cannot reload a CA from PEM without the x509
/// parser, and a fresh pair is as good for a local stack).
pub fn ensure(state: &StateDir) -> anyhow::Result<Outcome> {
    let files = [state.ca_certificate(), state.ca_key(), state.tls_certificate(), state.tls_key()];
    if files.iter().all(|file| file.exists()) {
        return Ok(Outcome::Kept);
    }
    let now = OffsetDateTime::now_utc();
    let mut authority = CertificateParams::new(Vec::<String>::new())?;
    authority.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    authority.distinguished_name.push(DnType::CommonName, "Galley local stack CA");
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    authority.not_before = now - Duration::days(1);
    authority.not_after = now + VALIDITY;
    let authority_key = KeyPair::generate()?;
    let authority_certificate = authority.self_signed(&authority_key)?;

    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = now - Duration::days(1);
    leaf.not_after = now + VALIDITY;
    let leaf_key = KeyPair::generate()?;
    let authority_key_pem = authority_key.serialize_pem();
    let issuer = Issuer::new(authority, authority_key);
    let leaf_certificate = leaf.signed_by(&leaf_key, &issuer)?;

    write(&state.ca_certificate(), &authority_certificate.pem(), false)?;
    write(&state.ca_key(), &authority_key_pem, true)?;
    write(&state.tls_certificate(), &leaf_certificate.pem(), false)?;
    write(&state.tls_key(), &leaf_key.serialize_pem(), true)?;
    Ok(Outcome::Created)
}

/// Writes `contents`; keys are readable by their owner only.
pub fn write(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_and_leaf_are_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        state.create_skeleton().expect("skeleton");
        assert_eq!(ensure(&state).expect("created"), Outcome::Created);
        let ca = std::fs::read_to_string(state.ca_certificate()).expect("ca");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(state.tls_key()).expect("key").contains("PRIVATE KEY"));
        assert_eq!(ensure(&state).expect("kept"), Outcome::Kept);
        assert_eq!(std::fs::read_to_string(state.ca_certificate()).expect("ca"), ca, "idempotent");

        std::fs::remove_file(state.tls_certificate()).expect("removed");
        assert_eq!(ensure(&state).expect("re-issued"), Outcome::Created);
    }
}
