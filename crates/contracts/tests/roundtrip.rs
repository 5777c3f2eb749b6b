//! What producers write is what consumers read: encode → decode gives back the same envelope, and every
//! encoded message matches the checked-in schema (the producer side of the contract).

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::{read_fixture, validator, violations};
use galley_contracts::{
    ContractError, Envelope, FetchCompletedV1, FetchErrorCode, FetchRequestedV1, FetchStatus, Message,
    RawEnvelope, TraceContext, decode, encode, new_message_id, schema_file_name,
};
use serde_json::Value;

fn requested_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 10, 15, 29).single().expect("a valid time")
}

fn request() -> FetchRequestedV1 {
    FetchRequestedV1 {
        message_id: new_message_id(),
        job_id: "0190a8b4-5f00-7aaa-8bbb-000000000001".into(),
        url: "https://example.com/feed.xml".into(),
        requested_by: "user-1".into(),
        requested_at: requested_at(),
    }
}

fn reply(status: FetchStatus, error: Option<FetchErrorCode>) -> FetchCompletedV1 {
    FetchCompletedV1 {
        job_id: "0190a8b4-5f00-7aaa-8bbb-000000000001".into(),
        status,
        inserted: 7,
        skipped: u64::MAX,
        error: error.map(|code| code.as_str().to_owned()),
    }
}

fn trace() -> TraceContext {
    TraceContext {
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        tracestate: Some("galley=1".into()),
    }
}

/// Encodes, checks the bytes against `T`'s checked-in schema, decodes, and returns what was decoded.
fn round_trip<T: Message>(envelope: &Envelope<T>) -> Envelope<T> {
    let bytes = encode(envelope).expect("encodes");
    let json: Value = serde_json::from_slice(&bytes).expect("encode writes JSON");
    let problems = violations(&validator(&schema_file_name::<T>()), &json);
    assert!(problems.is_empty(), "encoded {} breaks its schema: {problems:#?}\n{json:#}", T::TYPE);
    decode(&bytes).and_then(RawEnvelope::payload_as::<T>).expect("decodes")
}

#[test]
fn a_full_request_survives_the_round_trip() {
    let envelope = Envelope::fetch_requested(request(), Some("rss.fetch.replies".into())).with_trace(trace());
    assert_eq!(round_trip(&envelope), envelope);
}

#[test]
fn a_minimal_request_survives_the_round_trip() {
    let payload = request();
    let envelope = Envelope::new(new_message_id(), payload.job_id.clone(), None, payload);
    assert_eq!(round_trip(&envelope), envelope);
}

#[test]
fn a_reply_survives_the_round_trip_with_every_error_code() {
    let done = Envelope::new(new_message_id(), "job-1", None, reply(FetchStatus::Done, None));
    assert_eq!(round_trip(&done), done);
    for code in FetchErrorCode::ALL {
        let failed = Envelope::new(new_message_id(), "job-1", None, reply(FetchStatus::Failed, Some(code)))
            .with_trace(TraceContext { tracestate: None, ..trace() });
        assert_eq!(round_trip(&failed), failed, "{code}");
    }
}

#[test]
fn the_wire_format_has_type_version_and_omits_empty_optionals() {
    let envelope = Envelope::new(new_message_id(), "job-1", None, reply(FetchStatus::Done, None));
    let json: Value = serde_json::from_slice(&encode(&envelope).expect("encodes")).expect("JSON");
    assert_eq!(json["type"], "rss.fetch.completed");
    assert_eq!(json["version"], 1);
    assert_eq!(json["message_id"], envelope.message_id.as_str());
    assert_eq!(json["correlation_id"], "job-1");
    for absent in ["reply_to", "trace"] {
        assert!(json.get(absent).is_none(), "{absent} should be omitted: {json}");
    }
    assert!(json["payload"].get("error").is_none(), "{json}");
    assert_eq!(json["payload"]["skipped"], u64::MAX);
    assert!(json["sent_at"].as_str().is_some_and(|sent_at| sent_at.ends_with('Z')), "{json}");
}

#[test]
fn old_messages_re_encode_to_the_same_message() {
    for file in ["valid/requested_full.json", "valid/requested_minimal.json"] {
        let first = decode(&read_fixture(file)).and_then(RawEnvelope::payload_as::<FetchRequestedV1>);
        let first = first.expect("decodes");
        assert_eq!(round_trip(&first), first, "{file}");
    }
    for file in ["valid/completed_done.json", "valid/completed_failed.json"] {
        let first = decode(&read_fixture(file)).and_then(RawEnvelope::payload_as::<FetchCompletedV1>);
        let first = first.expect("decodes");
        assert_eq!(round_trip(&first), first, "{file}");
    }
}

#[test]
fn a_raw_envelope_round_trips_unchanged() {
    let bytes = encode(&Envelope::fetch_requested(request(), None).with_trace(trace())).expect("encodes");
    let raw = decode(&bytes).expect("decodes");
    assert!(raw.is::<FetchRequestedV1>());
    assert!(!raw.is::<FetchCompletedV1>());
    let again = serde_json::to_vec(&raw).expect("a raw envelope serializes");
    assert_eq!(decode(&again).expect("decodes again"), raw);
}

#[test]
fn encoding_refuses_what_the_contract_forbids() {
    let not_a_uuid = Envelope::new("job-1:request", "job-1", None, request());
    let refused = encode(&not_a_uuid);
    assert!(
        matches!(&refused, Err(ContractError::Unencodable(reason)) if reason.contains("job-1:request")),
        "{refused:?}"
    );

    let mut bad_code = reply(FetchStatus::Failed, None);
    bad_code.error = Some("gremlins".into());
    let bad_code = Envelope::new(new_message_id(), "job-1", None, bad_code);
    assert!(
        matches!(encode(&bad_code), Err(ContractError::Unencodable(reason)) if reason.contains("gremlins"))
    );
}

#[test]
fn deserializing_an_envelope_directly_checks_type_and_version() {
    let bytes = read_fixture("valid/completed_done.json");
    let reply: Envelope<FetchCompletedV1> = serde_json::from_slice(&bytes).expect("a reply");
    assert_eq!(reply.message_type(), "rss.fetch.completed");
    assert_eq!(reply.version(), 1);
    let error = serde_json::from_slice::<Envelope<FetchRequestedV1>>(&bytes).expect_err("not a request");
    assert!(error.to_string().contains("rss.fetch.completed"), "{error}");
}
