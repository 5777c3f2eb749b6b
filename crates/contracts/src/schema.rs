//! JSON Schemas (draft 2020-12) of whole messages, envelope included, generated from the Rust types.
//!
//! The generated schemas are checked in at `crates/contracts/schemas/<type>.v<version>.json`; they, not
//! the Rust types, are the contract other services and tools rely on. `tests/schemas.rs` regenerates
//! them and fails when they differ from the files (run `GALLEY_UPDATE_SCHEMAS=1 cargo test -p
//! galley-contracts` to accept a change, then review the diff as a contract change).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::{FetchCompletedV1, FetchRequestedV1, Message, RawEnvelope};

/// The schema file name of message `T`: `<type>.v<version>.json`.
pub fn schema_file_name<T: Message>() -> String {
    format!("{}.v{}.json", T::TYPE, T::VERSION)
}

/// The schema of a whole `T` message: the envelope (from [`RawEnvelope`], so it describes exactly what
/// [`decode`](crate::decode) accepts) with `type` and `version` pinned to `T`'s and the payload being
/// `T`. Object keys are sorted so the output is stable whatever `serde_json` features are enabled.
pub fn schema_of<T: Message>() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let payload = generator.subschema_for::<T>();
    let mut schema = generator.root_schema_for::<RawEnvelope>();
    let root = schema.ensure_object();
    root.insert("title".into(), format!("{}.v{}", T::TYPE, T::VERSION).into());
    root.insert(
        "description".into(),
        format!(
            "Message `{}`, version {}: the Galley envelope with its payload. Consumers ignore \
             properties they do not know, so optional properties may be added within a version.",
            T::TYPE,
            T::VERSION
        )
        .into(),
    );
    if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
        pin(properties, "type", json!(T::TYPE));
        pin(properties, "version", json!(T::VERSION));
        let mut payload = payload.to_value();
        if let Some(payload) = payload.as_object_mut() {
            payload
                .insert("description".into(), format!("The `{}` v{} payload.", T::TYPE, T::VERSION).into());
        }
        properties.insert("payload".into(), payload);
    }
    sorted(schema.to_value())
}

/// Every message's schema file name and schema: the files `schemas/` must hold, and only those.
pub fn all_schemas() -> Vec<(String, Value)> {
    fn entry<T: Message>() -> (String, Value) {
        (schema_file_name::<T>(), schema_of::<T>())
    }
    vec![entry::<FetchRequestedV1>(), entry::<FetchCompletedV1>()]
}

/// Adds `"const": value` to the schema of property `name`, keeping its type and description.
fn pin(properties: &mut Map<String, Value>, name: &str, value: Value) {
    if let Some(property) = properties.get_mut(name).and_then(Value::as_object_mut) {
        property.insert("const".into(), value);
    }
}

/// `value` with every object's keys in sorted order (insertion order is kept if `serde_json`'s
/// `preserve_order` feature is on somewhere in the build, so insert them sorted).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_version_are_pinned_and_payload_is_the_message() {
        let schema = schema_of::<FetchRequestedV1>();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(schema["properties"]["type"]["const"], "rss.fetch.requested");
        assert_eq!(schema["properties"]["version"]["const"], 1);
        assert_eq!(schema["properties"]["payload"]["$ref"], "#/$defs/FetchRequestedV1");
        assert!(schema["$defs"]["FetchRequestedV1"].is_object());
    }

    #[test]
    fn file_names_carry_type_and_version() {
        assert_eq!(schema_file_name::<FetchCompletedV1>(), "rss.fetch.completed.v1.json");
    }
}
