//! The envelope every message travels in, and the two steps of reading one.
//!
//! Reading is split in two so a consumer can dispatch before it commits to a payload type: [`decode`]
//! checks the bytes are an envelope and yields a [`RawEnvelope`] whose payload is still plain JSON; then
//! [`RawEnvelope::payload_as`] checks the `(type, version)` and decodes the payload into the Rust type.
//! Each step fails with a different [`ContractError`], so the consumer knows what to do with the message.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ContractError;

/// A message payload: a Rust type bound to one `(type, version)` and one checked-in schema.
///
/// `JsonSchema` is required so that every message has a schema file (see [`crate::schema`]).
///
/// A payload is a struct, written as a JSON object. serde's derived `Deserialize` would also read a
/// struct from a JSON array of its fields, which the schemas forbid; [`RawEnvelope::payload_as`] rejects
/// a payload that is not an object, and a struct nested inside a payload must be read through
/// [`object`] for the same reason.
pub trait Message: Serialize + DeserializeOwned + JsonSchema {
    /// The message type without its version, dot-separated from the context outwards
    /// (`rss.fetch.requested`). Sent as the envelope's `type`.
    const TYPE: &'static str;
    /// The payload's schema version. Only a breaking change makes a new version, as a new type beside
    /// the old one (see the evolution rules in the crate docs).
    const VERSION: u32;
}

/// W3C Trace Context (<https://www.w3.org/TR/trace-context/>) carried across the broker, so the
/// consumer's spans join the producer's trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TraceContext {
    /// The `traceparent` value, `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`. Deliberately not
    /// constrained by the schema: as with the HTTP header, a consumer that cannot parse it starts a new
    /// trace instead of rejecting the message.
    pub traceparent: String,
    /// The `tracestate` value (vendor-specific trace data), passed on unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A message of payload type `T`, as a producer builds it and a consumer receives it.
///
/// The envelope's `type` and `version` are not fields: they are `T::TYPE` and `T::VERSION`, so an
/// envelope can never claim to be something its payload is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<T> {
    /// Unique id of this message (a UUID): the idempotency key consumers deduplicate on, so a
    /// redelivered or re-published message must keep it.
    pub message_id: String,
    /// Ties the message to its unit of work (for RSS fetches, the job id) and a reply to its request.
    pub correlation_id: String,
    /// Where the reply goes (a queue name), when a reply is expected.
    pub reply_to: Option<String>,
    /// The producer's trace context, if it was tracing.
    pub trace: Option<TraceContext>,
    /// When the producer sent the message (UTC). Informational: ordering is not guaranteed by it.
    pub sent_at: DateTime<Utc>,
    /// The message body.
    pub payload: T,
}

impl<T: Message> Envelope<T> {
    /// An envelope sent now, without trace context (add it with [`with_trace`](Self::with_trace)).
    ///
    /// The `message_id` is taken, not generated: it is the idempotency key, so a producer that retries
    /// publishing (after a crash, or a broker error) must send the *same* id again, which it can only do
    /// if it chose the id before building the envelope and kept it. Use [`new_message_id`] for a fresh
    /// one, a name-based UUID (v5) for an id derived from the work itself, or, for a fetch request whose
    /// payload repeats the id, [`Envelope::fetch_requested`] which takes it from the payload.
    /// The id must be a UUID; [`encode`] refuses anything else.
    pub fn new(
        message_id: impl Into<String>,
        correlation_id: impl Into<String>,
        reply_to: Option<String>,
        payload: T,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            correlation_id: correlation_id.into(),
            reply_to,
            trace: None,
            sent_at: Utc::now(),
            payload,
        }
    }

    /// The same envelope carrying `trace`.
    #[must_use]
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The envelope's `type`: `T::TYPE`.
    pub fn message_type(&self) -> &'static str {
        T::TYPE
    }

    /// The envelope's `version`: `T::VERSION`.
    pub fn version(&self) -> u32 {
        T::VERSION
    }
}

/// A fresh message id: a UUIDv7, so ids sort by creation time (handy in logs and dead-letter queues).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An envelope whose payload is still JSON: what [`decode`] yields, for dispatching on
/// `(message_type, version)` before choosing a payload type.
///
/// This is also the type the schemas' envelope part is generated from, so what the schema describes
/// and what [`decode`] accepts cannot drift apart. Unknown fields are ignored (tolerant reader).
/// Read it with [`decode`] rather than `serde_json::from_slice`, which would also accept the fields as a
/// JSON array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawEnvelope {
    /// The message type without its version, such as `rss.fetch.requested`.
    #[serde(rename = "type")]
    pub message_type: String,
    /// The payload's schema version.
    pub version: u32,
    /// Unique id of this message, a hyphenated UUID; the idempotency key consumers deduplicate on.
    #[serde(with = "uuid_string")]
    #[schemars(with = "uuid::Uuid")]
    pub message_id: String,
    /// Ties the message to its unit of work (for RSS fetches, the job id) and a reply to its request.
    pub correlation_id: String,
    /// Where the reply goes (a queue name), when a reply is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// W3C trace context of the producer, if it was tracing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::optional")]
    pub trace: Option<TraceContext>,
    /// When the producer sent the message, RFC 3339 (sent in UTC).
    pub sent_at: DateTime<Utc>,
    /// The message body, whose schema depends on `type` and `version`.
    pub payload: Value,
}

impl RawEnvelope {
    /// Whether this is a message of type `T` in `T`'s version.
    pub fn is<T: Message>(&self) -> bool {
        self.message_type == T::TYPE && self.version == T::VERSION
    }

    /// Decodes the payload as `T`, after checking the envelope names `T`'s type and version.
    ///
    /// Fails with [`ContractError::UnknownType`] for another type, [`ContractError::UnsupportedVersion`]
    /// for another version of `T`'s type, and [`ContractError::InvalidPayload`] when the payload does not
    /// match `T` (unknown payload fields are ignored, not errors).
    pub fn payload_as<T: Message>(self) -> Result<Envelope<T>, ContractError> {
        if self.message_type != T::TYPE {
            return Err(ContractError::UnknownType { expected: T::TYPE, found: self.message_type });
        }
        if self.version != T::VERSION {
            return Err(ContractError::UnsupportedVersion {
                message_type: self.message_type,
                found: self.version,
                supported: T::VERSION,
            });
        }
        let invalid = |reason: String| ContractError::InvalidPayload {
            message_type: T::TYPE,
            version: T::VERSION,
            reason,
        };
        if !self.payload.is_object() {
            return Err(invalid(format!("expected a JSON object, found {}", kind_of(&self.payload))));
        }
        let payload = serde_json::from_value(self.payload).map_err(|error| invalid(error.to_string()))?;
        Ok(Envelope {
            message_id: self.message_id,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
            trace: self.trace,
            sent_at: self.sent_at,
            payload,
        })
    }
}

/// The bytes to publish for `envelope`: compact JSON, with `type` and `version` from `T`.
///
/// Fails with [`ContractError::Unencodable`] when the envelope breaks the contract (a `message_id` that
/// is not a UUID, an error code outside the list), so a producer bug surfaces at the producer rather
/// than as a dead letter at every consumer.
pub fn encode<T: Message>(envelope: &Envelope<T>) -> Result<Vec<u8>, ContractError> {
    serde_json::to_vec(envelope).map_err(|error| ContractError::Unencodable(error.to_string()))
}

/// Reads the envelope in `bytes`, leaving the payload undecoded.
///
/// Fails with [`ContractError::Malformed`] when the bytes are not JSON or not an envelope: such a
/// message can never be processed and belongs in the dead-letter queue.
pub fn decode(bytes: &[u8]) -> Result<RawEnvelope, ContractError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|error| ContractError::Malformed(error.to_string()))?;
    envelope_from_value(value)
}

/// The envelope in `value`, which must be a JSON object (the derived `Deserialize` alone would also
/// accept an array of the fields in order, which the schema does not).
fn envelope_from_value(value: Value) -> Result<RawEnvelope, ContractError> {
    if !value.is_object() {
        return Err(ContractError::Malformed(format!("expected a JSON object, found {}", kind_of(&value))));
    }
    serde_json::from_value(value).map_err(|error| ContractError::Malformed(error.to_string()))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The wire shape of an [`Envelope`], borrowing from it: `type` and `version` come from `T`.
#[derive(Serialize)]
struct WireEnvelope<'a, T> {
    #[serde(rename = "type")]
    message_type: &'static str,
    version: u32,
    #[serde(with = "uuid_string")]
    message_id: &'a str,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a TraceContext>,
    sent_at: &'a DateTime<Utc>,
    payload: &'a T,
}

impl<T: Message> Serialize for Envelope<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireEnvelope {
            message_type: T::TYPE,
            version: T::VERSION,
            message_id: &self.message_id,
            correlation_id: &self.correlation_id,
            reply_to: self.reply_to.as_deref(),
            trace: self.trace.as_ref(),
            sent_at: &self.sent_at,
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

/// Same checks as [`decode`] then [`RawEnvelope::payload_as`], for callers that know the type.
impl<'de, T: Message> Deserialize<'de> for Envelope<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        envelope_from_value(Value::deserialize(deserializer)?)
            .and_then(RawEnvelope::payload_as)
            .map_err(serde::de::Error::custom)
    }
}

/// Reading structs from JSON objects only, as the schemas require, for structs nested in a message.
pub mod object {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// For `#[serde(deserialize_with = "object::required")]` on a struct-typed field.
    pub fn required<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<T, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom(format_args!(
                "expected a JSON object, found {}",
                super::kind_of(&value)
            )));
        }
        T::deserialize(value).map_err(D::Error::custom)
    }

    /// For `#[serde(default, deserialize_with = "object::optional")]` on an `Option` of a struct:
    /// absent or `null` is `None`.
    pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.is_null() {
            return Ok(None);
        }
        required(value).map(Some).map_err(D::Error::custom)
    }
}

/// A `String` that must hold a hyphenated UUID, the only form the schema's `"format": "uuid"` accepts.
/// Kept as a string (not `Uuid`) so the value is forwarded exactly as received.
pub(crate) mod uuid_string {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Hyphenated (`8-4-4-4-12`) is the only 36-character form `Uuid::try_parse` accepts.
    pub(crate) fn is_uuid(value: &str) -> bool {
        value.len() == 36 && uuid::Uuid::try_parse(value).is_ok()
    }

    pub(crate) fn serialize<S: Serializer, V: AsRef<str>>(
        value: &V,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let value = value.as_ref();
        if is_uuid(value) {
            serializer.serialize_str(value)
        } else {
            Err(serde::ser::Error::custom(format_args!("message id {value:?} is not a hyphenated UUID")))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        let value = String::deserialize(deserializer)?;
        if is_uuid(&value) {
            Ok(value)
        } else {
            Err(serde::de::Error::custom(format_args!("message id {value:?} is not a hyphenated UUID")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_are_message_ids() {
        assert!(uuid_string::is_uuid("0190a8b4-5f6e-7c3d-8a9b-0c1d2e3f4a5b"));
        assert!(uuid_string::is_uuid("0190A8B4-5F6E-7C3D-8A9B-0C1D2E3F4A5B"));
        assert!(!uuid_string::is_uuid("0190a8b45f6e7c3d8a9b0c1d2e3f4a5b"));
        assert!(!uuid_string::is_uuid("{0190a8b4-5f6e-7c3d-8a9b-0c1d2e3f4a5b}"));
        assert!(!uuid_string::is_uuid("job-42"));
        assert!(uuid_string::is_uuid(&new_message_id()));
    }

    #[test]
    fn fresh_message_ids_are_time_ordered_v7() {
        let first = new_message_id();
        let second = new_message_id();
        assert!(first < second, "{first} then {second}");
        let parsed = uuid::Uuid::try_parse(&first).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 7);
    }
}
