//! The checked-in schemas are the contract: regenerate them from the types and fail on any difference.
//!
//! `GALLEY_UPDATE_SCHEMAS=1 cargo test -p galley-contracts` rewrites them instead; the diff of
//! `crates/contracts/schemas/` is then reviewed as a contract change.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use galley_contracts::all_schemas;
use serde_json::Value;

const UPDATE_VARIABLE: &str = "GALLEY_UPDATE_SCHEMAS";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is serializable");
    text.push('\n');
    text
}

/// JSON pointers where `expected` and `actual` differ, so the failure says what changed.
fn differences(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            let keys: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
            for key in keys {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (expected.get(key), actual.get(key)) {
                    (Some(e), Some(a)) => differences(&child, e, a, out),
                    (Some(_), None) => out.push(format!("  {child}: removed by the types")),
                    (None, Some(_)) => out.push(format!("  {child}: added by the types")),
                    (None, None) => {}
                }
            }
        }
        _ if expected != actual => out.push(format!("  {path}: checked in {expected}, generated {actual}")),
        _ => {}
    }
}

#[test]
fn checked_in_schemas_match_the_message_types() {
    let dir = schemas_dir();
    let update = std::env::var(UPDATE_VARIABLE).is_ok_and(|value| value == "1");
    let generated = all_schemas();
    let mut problems = Vec::new();

    for (name, schema) in &generated {
        let path = dir.join(name);
        if update {
            fs::create_dir_all(&dir).expect("create the schemas directory");
            fs::write(&path, render(schema)).expect("write the schema");
            eprintln!("rewrote {}", path.display());
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            problems.push(format!("{name}: missing (a new message needs its schema checked in)"));
            continue;
        };
        let checked_in: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(error) => {
                problems.push(format!("{name}: not JSON ({error})"));
                continue;
            }
        };
        let mut changes = Vec::new();
        differences("", &checked_in, schema, &mut changes);
        if !changes.is_empty() {
            problems.push(format!("{name}: differs from the types at\n{}", changes.join("\n")));
        }
    }

    // A schema no type generates any more is a message that silently stopped being supported.
    let expected: BTreeSet<&str> = generated.iter().map(|(name, _)| name.as_str()).collect();
    for entry in fs::read_dir(&dir).expect("read the schemas directory") {
        let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
        if !expected.contains(name.as_str()) {
            problems.push(format!(
                "{name}: no message type generates it; keep the type until no producer sends it, then \
                 delete the file by hand"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "the checked-in message schemas do not match the Rust types:\n\n{}\n\n\
         If this change is intended and follows the evolution rules (crates/contracts/src/lib.rs: \
         only optional fields may be added to a version; anything else is a new version), \
         regenerate them with\n\n    {UPDATE_VARIABLE}=1 cargo test -p galley-contracts\n\n\
         and review the diff of crates/contracts/schemas/ as a change of contract.",
        problems.join("\n\n")
    );
}

#[test]
fn every_message_has_a_distinct_schema_file() {
    let generated = all_schemas();
    let names: BTreeSet<&str> = generated.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), generated.len(), "two messages share a (type, version)");
}
