//! Helpers shared by the integration tests: the checked-in schemas as validators, and fixture files.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures_dir() -> PathBuf {
    crate_dir().join("tests").join("fixtures")
}

/// A validator for the *checked-in* schema file `name` (not the generated one: old messages must keep
/// matching what was published). Formats (`uuid`, `date-time`) are checked, as `decode` checks them.
pub fn validator(name: &str) -> jsonschema::Validator {
    let path = crate_dir().join("schemas").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("a schema file is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("{name} is not a valid schema: {error}"))
}

/// The schema violations of `instance`, one line each (empty when it is valid).
pub fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|error| format!("{} at {}", error, error.instance_path())).collect()
}

pub fn read_fixture(relative: &str) -> Vec<u8> {
    let path = fixtures_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}
