//! How a port message travels in SQS: the body, and the message attributes beside it.
//!
//! SQS bodies are text restricted to the XML character set, while the port's bodies are bytes: a body
//! that is valid UTF-8 made only of allowed characters (every Galley JSON envelope) travels as is,
//! readable in the console; any other body travels base64-encoded with `body_encoding = base64`.
//!
//! Attributes ([`names`](self) below): the port's `message_id`, `correlation_id`, `reply_to` and the
//! attempt number; the port message's W3C trace context (`traceparent`, `tracestate`, ADR 0028; for a
//! message without one, the envelope's); for a Galley envelope body, its `type` and `schema_version`,
//! so operators and tracing can read them without parsing bodies; the
//! adapter's own `not_before` (chained delays) and `death_reason` (dead-lettered copies). SQS allows
//! ten attributes per message: the first eight plus `body_encoding` plus one of the last two is the
//! most a message ever carries (`not_before` is cleared on a dead-lettered copy).

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use galley_messaging::{OutgoingMessage, ReceivedMessage};
use serde::Deserialize;

/// The port's message id (the idempotency key).
pub const MESSAGE_ID: &str = "message_id";
/// Ties a request to its reply.
pub const CORRELATION_ID: &str = "correlation_id";
/// The logical queue a reply goes to.
pub const REPLY_TO: &str = "reply_to";
/// 1 on first publication, +1 on each deliberate requeue or retry.
pub const ATTEMPT: &str = "attempt";
/// The envelope's message type (`rss.fetch.requested`).
pub const TYPE: &str = "type";
/// The envelope's payload schema version.
pub const SCHEMA_VERSION: &str = "schema_version";
/// W3C trace context: the port message's, else the envelope's.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";
/// `base64` when the body is not plain text.
pub const BODY_ENCODING: &str = "body_encoding";
/// Unix milliseconds before which a chained delayed retry is not handed out.
pub const NOT_BEFORE: &str = "not_before";
/// Why a message was dead-lettered.
pub const DEATH_REASON: &str = "death_reason";

const BASE64_ENCODING: &str = "base64";
/// SQS limits an attribute's value (and the whole message) to 256 KiB; a death reason is a log line.
const MAX_REASON_CHARS: usize = 1024;

/// A message's attributes, keyed by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(HashMap<String, MessageAttributeValue>);

fn value(data_type: &str, text: &str) -> Option<MessageAttributeValue> {
    // `build` only fails without a data type, which is always set here.
    MessageAttributeValue::builder().data_type(data_type).string_value(text).build().ok()
}

impl Attributes {
    pub fn from_map(map: HashMap<String, MessageAttributeValue>) -> Self {
        Self(map)
    }

    pub fn into_map(self) -> HashMap<String, MessageAttributeValue> {
        self.0
    }

    fn set_text(&mut self, name: &str, text: &str) {
        if let Some(value) = value("String", text) {
            self.0.insert(name.to_owned(), value);
        }
    }

    fn set_number(&mut self, name: &str, number: u64) {
        if let Some(value) = value("Number", &number.to_string()) {
            self.0.insert(name.to_owned(), value);
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(MessageAttributeValue::string_value)
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.text(name).and_then(|text| text.trim().parse().ok())
    }

    pub fn attempt(&self) -> u32 {
        self.number(ATTEMPT).map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)).max(1)
    }

    pub fn set_attempt(&mut self, attempt: u32) {
        self.set_number(ATTEMPT, u64::from(attempt));
    }

    pub fn not_before(&self) -> Option<u64> {
        self.number(NOT_BEFORE)
    }

    pub fn set_not_before(&mut self, unix_ms: Option<u64>) {
        match unix_ms {
            Some(unix_ms) => self.set_number(NOT_BEFORE, unix_ms),
            None => {
                self.0.remove(NOT_BEFORE);
            }
        }
    }

    /// Makes the body count as plain text (for an undecodable body moved to the dead-letter queue).
    pub fn clear_body_encoding(&mut self) {
        self.0.remove(BODY_ENCODING);
    }

    pub fn set_death_reason(&mut self, reason: &str) {
        let reason: String =
            reason.chars().filter(|c| allowed_in_sqs_text(*c)).take(MAX_REASON_CHARS).collect();
        // SQS refuses empty attribute values.
        self.set_text(DEATH_REASON, if reason.is_empty() { "unspecified" } else { &reason });
    }
}

/// The fields of a Galley envelope the attributes mirror; every other field is ignored.
#[derive(Deserialize)]
struct EnvelopeHead {
    #[serde(rename = "type")]
    message_type: Option<String>,
    version: Option<u64>,
    trace: Option<TraceHead>,
}

#[derive(Deserialize)]
struct TraceHead {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Characters SQS accepts in a body or string attribute (the XML 1.0 character set).
fn allowed_in_sqs_text(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The body and attributes a publish sends.
pub fn encode(message: &OutgoingMessage) -> (String, Attributes) {
    let mut attributes = Attributes::default();
    attributes.set_text(MESSAGE_ID, &message.message_id);
    if let Some(correlation_id) = message.correlation_id.as_deref().filter(|s| !s.is_empty()) {
        attributes.set_text(CORRELATION_ID, correlation_id);
    }
    if let Some(reply_to) = message.reply_to.as_deref().filter(|s| !s.is_empty()) {
        attributes.set_text(REPLY_TO, reply_to);
    }
    attributes.set_attempt(1);
    let sendable = |text: &str| !text.is_empty() && text.chars().all(allowed_in_sqs_text);
    if let Some(trace) = &message.trace
        && sendable(&trace.traceparent)
    {
        attributes.set_text(TRACEPARENT, &trace.traceparent);
        if let Some(tracestate) = trace.tracestate.as_deref().filter(|t| sendable(t)) {
            attributes.set_text(TRACESTATE, tracestate);
        }
    }
    if let Ok(head) = serde_json::from_slice::<EnvelopeHead>(&message.body) {
        let non_empty =
            |text: Option<String>| text.filter(|t| !t.is_empty() && t.chars().all(allowed_in_sqs_text));
        if let Some(message_type) = non_empty(head.message_type) {
            attributes.set_text(TYPE, &message_type);
        }
        if let Some(version) = head.version {
            attributes.set_number(SCHEMA_VERSION, version);
        }
        if let Some(trace) = head.trace
            && attributes.text(TRACEPARENT).is_none()
        {
            if let Some(traceparent) = non_empty(trace.traceparent) {
                attributes.set_text(TRACEPARENT, &traceparent);
            }
            if let Some(tracestate) = non_empty(trace.tracestate) {
                attributes.set_text(TRACESTATE, &tracestate);
            }
        }
    }
    let body = match std::str::from_utf8(&message.body) {
        Ok(text) if text.chars().all(allowed_in_sqs_text) => text.to_owned(),
        _ => {
            attributes.set_text(BODY_ENCODING, BASE64_ENCODING);
            BASE64.encode(&message.body)
        }
    };
    (body, attributes)
}

/// The port's view of a received message, or why it cannot be decoded (then it is poison).
pub fn decode(message: &aws_sdk_sqs::types::Message) -> Result<ReceivedMessage, String> {
    let attributes = Attributes::from_map(message.message_attributes.clone().unwrap_or_default());
    let raw = message.body.as_deref().unwrap_or_default();
    let body = match attributes.text(BODY_ENCODING) {
        None => Bytes::copy_from_slice(raw.as_bytes()),
        Some(BASE64_ENCODING) => {
            Bytes::from(BASE64.decode(raw).map_err(|error| format!("body is not valid base64: {error}"))?)
        }
        Some(other) => return Err(format!("unknown body encoding {other:?}")),
    };
    let receive_count = message
        .attributes
        .as_ref()
        .and_then(|system| system.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    // A message from a producer that sets no `message_id`: SQS's own id is stable across its
    // redeliveries, which is what deduplication needs.
    let message_id = attributes
        .text(MESSAGE_ID)
        .map(str::to_owned)
        .or_else(|| message.message_id.clone())
        .unwrap_or_default();
    Ok(ReceivedMessage {
        message_id,
        correlation_id: attributes.text(CORRELATION_ID).map(str::to_owned),
        reply_to: attributes.text(REPLY_TO).map(str::to_owned),
        trace: galley_messaging::TraceHeaders::from_values(
            attributes.text(TRACEPARENT),
            attributes.text(TRACESTATE),
        ),
        body,
        attempt: attributes.attempt().saturating_add(receive_count - 1),
    })
}

/// The redrive policy sending a message to `dead_letter_arn` after `max_receives` receives.
pub fn redrive_policy(dead_letter_arn: &str, max_receives: u32) -> String {
    serde_json::json!({ "deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives.to_string() })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(body: &[u8]) -> OutgoingMessage {
        OutgoingMessage {
            message_id: "m-1".into(),
            correlation_id: Some("job-1".into()),
            reply_to: Some("rss.fetch.completed".into()),
            trace: None,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn received(body: String, attributes: Attributes, receive_count: &str) -> aws_sdk_sqs::types::Message {
        aws_sdk_sqs::types::Message::builder()
            .message_id("sqs-id")
            .body(body)
            .set_message_attributes(Some(attributes.into_map()))
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, receive_count)
            .build()
    }

    #[test]
    fn an_envelope_travels_as_text_with_its_type_version_and_trace() {
        let body = br#"{"type":"rss.fetch.requested","version":1,"message_id":"m-1","trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"k=v"},"payload":{}}"#;
        let (text, attributes) = encode(&outgoing(body));
        assert_eq!(text.as_bytes(), body);
        assert_eq!(attributes.text(TYPE), Some("rss.fetch.requested"));
        assert_eq!(attributes.text(SCHEMA_VERSION), Some("1"));
        assert_eq!(
            attributes.text(TRACEPARENT),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(attributes.text(TRACESTATE), Some("k=v"));
        assert_eq!(attributes.text(BODY_ENCODING), None);
        assert_eq!(attributes.attempt(), 1);
        let back = decode(&received(text, attributes, "1")).expect("decodes");
        assert_eq!(back.message_id, "m-1");
        assert_eq!(back.correlation_id.as_deref(), Some("job-1"));
        assert_eq!(back.reply_to.as_deref(), Some("rss.fetch.completed"));
        assert_eq!(back.body.as_ref(), body);
        assert_eq!(back.attempt, 1);
    }

    #[test]
    fn the_messages_trace_context_travels_and_wins_over_the_envelopes() {
        let body = br#"{"type":"t","version":1,"trace":{"traceparent":"00-11111111111111111111111111111111-2222222222222222-01"}}"#;
        let mut message = outgoing(body);
        message.trace = Some(galley_messaging::TraceHeaders {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: Some("k=v".into()),
        });
        let (text, attributes) = encode(&message);
        let back = decode(&received(text, attributes, "2")).expect("decodes");
        assert_eq!(back.trace, message.trace);
        let (text, attributes) = encode(&outgoing(b"plain"));
        assert_eq!(decode(&received(text, attributes, "1")).expect("decodes").trace, None);
    }

    #[test]
    fn bytes_sqs_cannot_carry_travel_as_base64() {
        for body in [&[0xff, 0x00, 0x10][..], b"bell\x07"] {
            let (text, attributes) = encode(&outgoing(body));
            assert_eq!(attributes.text(BODY_ENCODING), Some("base64"));
            assert!(text.chars().all(allowed_in_sqs_text));
            assert_eq!(decode(&received(text, attributes, "1")).expect("decodes").body.as_ref(), body);
        }
    }

    #[test]
    fn a_body_that_is_not_base64_is_poison() {
        let (_, attributes) = encode(&outgoing(&[0xff]));
        assert!(decode(&received("%%%".into(), attributes, "1")).is_err());
    }

    #[test]
    fn attempts_add_the_receive_count_to_the_attempt_attribute() {
        let (text, mut attributes) = encode(&outgoing(b"{}"));
        assert_eq!(decode(&received(text.clone(), attributes.clone(), "3")).expect("decodes").attempt, 3);
        attributes.set_attempt(4);
        assert_eq!(decode(&received(text, attributes, "2")).expect("decodes").attempt, 5);
    }

    #[test]
    fn a_foreign_message_falls_back_to_the_sqs_id_and_attempt_one() {
        let back = decode(&received("plain".into(), Attributes::default(), "1")).expect("decodes");
        assert_eq!(back.message_id, "sqs-id");
        assert_eq!(back.attempt, 1);
        assert_eq!(back.correlation_id, None);
    }

    #[test]
    fn death_reasons_are_cleaned_and_never_empty() {
        let mut attributes = Attributes::default();
        attributes.set_death_reason("bad\u{0}json");
        assert_eq!(attributes.text(DEATH_REASON), Some("badjson"));
        attributes.set_death_reason("");
        assert_eq!(attributes.text(DEATH_REASON), Some("unspecified"));
    }

    #[test]
    fn the_redrive_policy_names_the_target_and_count() {
        let policy: serde_json::Value =
            serde_json::from_str(&redrive_policy("arn:aws:sqs:us-east-1:1:q-dead", 4)).expect("json");
        assert_eq!(policy["deadLetterTargetArn"], "arn:aws:sqs:us-east-1:1:q-dead");
        assert_eq!(policy["maxReceiveCount"], "4");
    }
}
