//! Messages as earlier builds wrote them (`tests/fixtures/`) must stay readable: each valid fixture
//! matches the checked-in schema AND decodes with the current types; each invalid one is rejected by
//! both, and `decode` says why with the `ContractError` a consumer acts on.
//!
//! The schema and the decoder must agree on every fixture: a message one accepts and the other rejects
//! means the published contract and the code have drifted apart.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use common::{read_fixture, validator, violations};
use galley_contracts::{
    ContractError, Envelope, FetchCompletedV1, FetchRequestedV1, FetchStatus, Message, RawEnvelope,
    TraceContext, decode,
};
use serde_json::Value;

fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, second).single().expect("a valid time")
}

const REQUESTED_SCHEMA: &str = "rss.fetch.requested.v1.json";
const COMPLETED_SCHEMA: &str = "rss.fetch.completed.v1.json";

/// Which message a fixture claims to be: the schema to check it against and the type to decode it as.
#[derive(Debug, Clone, Copy)]
enum As {
    Requested,
    Completed,
}

impl As {
    fn schema(self) -> &'static str {
        match self {
            Self::Requested => REQUESTED_SCHEMA,
            Self::Completed => COMPLETED_SCHEMA,
        }
    }

    fn decode(self, bytes: &[u8]) -> Result<(), ContractError> {
        let raw = decode(bytes)?;
        match self {
            Self::Requested => raw.payload_as::<FetchRequestedV1>().map(drop),
            Self::Completed => raw.payload_as::<FetchCompletedV1>().map(drop),
        }
    }
}

const VALID: &[(&str, As)] = &[
    ("valid/requested_minimal.json", As::Requested),
    ("valid/requested_full.json", As::Requested),
    ("valid/requested_with_unknown_fields.json", As::Requested),
    ("valid/completed_done.json", As::Completed),
    ("valid/completed_failed.json", As::Completed),
    ("valid/completed_with_nulls.json", As::Completed),
];

/// The `ContractError` variant a rejected fixture must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Malformed,
    UnknownType,
    UnsupportedVersion,
    InvalidPayload,
}

fn kind(error: &ContractError) -> Option<Kind> {
    match error {
        ContractError::Malformed(_) => Some(Kind::Malformed),
        ContractError::UnknownType { .. } => Some(Kind::UnknownType),
        ContractError::UnsupportedVersion { .. } => Some(Kind::UnsupportedVersion),
        ContractError::InvalidPayload { .. } => Some(Kind::InvalidPayload),
        ContractError::Unencodable(_) => None,
    }
}

/// A fixture every reader must refuse, for one reason: read as `read_as`, it fails the schema only at
/// `schema_at` (a JSON pointer; `None` for bytes that are not JSON) and fails `decode` with `expected`,
/// whose message contains `mentions`.
struct Invalid {
    file: &'static str,
    read_as: As,
    schema_at: Option<&'static str>,
    expected: Kind,
    mentions: &'static str,
}

const fn invalid(
    file: &'static str,
    read_as: As,
    schema_at: Option<&'static str>,
    expected: Kind,
    mentions: &'static str,
) -> Invalid {
    Invalid { file, read_as, schema_at, expected, mentions }
}

#[rustfmt::skip]
const INVALID: &[Invalid] = &[
    invalid("invalid/not_json.xml", As::Requested, None, Kind::Malformed, "expected value"),
    invalid("invalid/envelope_as_array.json", As::Completed, Some(""), Kind::Malformed, "found an array"),
    invalid("invalid/envelope_missing_correlation_id.json", As::Requested, Some(""),
            Kind::Malformed, "missing field `correlation_id`"),
    invalid("invalid/envelope_missing_payload.json", As::Completed, Some(""),
            Kind::Malformed, "missing field `payload`"),
    invalid("invalid/envelope_message_id_not_uuid.json", As::Completed, Some("/message_id"),
            Kind::Malformed, "\"completed:job-42\" is not a hyphenated UUID"),
    invalid("invalid/envelope_version_is_string.json", As::Completed, Some("/version"),
            Kind::Malformed, "invalid type: string \"1\""),
    invalid("invalid/envelope_sent_at_not_a_date.json", As::Completed, Some("/sent_at"),
            Kind::Malformed, "input contains invalid characters"),
    invalid("invalid/envelope_trace_as_array.json", As::Completed, Some("/trace"),
            Kind::Malformed, "found an array"),
    invalid("invalid/requested_v2.json", As::Requested, Some("/version"),
            Kind::UnsupportedVersion, "version 2 is not supported"),
    invalid("invalid/requested_missing_url.json", As::Requested, Some("/payload"),
            Kind::InvalidPayload, "missing field `url`"),
    invalid("invalid/requested_payload_message_id_not_uuid.json", As::Requested, Some("/payload/message_id"),
            Kind::InvalidPayload, "\"42\" is not a hyphenated UUID"),
    invalid("invalid/requested_payload_is_null.json", As::Requested, Some("/payload"),
            Kind::InvalidPayload, "found null"),
    invalid("invalid/completed_payload_as_array.json", As::Completed, Some("/payload"),
            Kind::InvalidPayload, "found an array"),
    invalid("invalid/completed_inserted_is_string.json", As::Completed, Some("/payload/inserted"),
            Kind::InvalidPayload, "invalid type: string \"12\""),
    invalid("invalid/completed_negative_skipped.json", As::Completed, Some("/payload/skipped"),
            Kind::InvalidPayload, "invalid value: integer `-1`"),
    invalid("invalid/completed_unknown_status.json", As::Completed, Some("/payload/status"),
            Kind::InvalidPayload, "unknown variant `cancelled`"),
    invalid("invalid/completed_unknown_error_code.json", As::Completed, Some("/payload/error"),
            Kind::InvalidPayload, "unknown fetch error code \"dns_failure\""),
];

#[test]
fn every_valid_fixture_matches_the_schema_and_decodes() {
    for (file, read_as) in VALID {
        let bytes = read_fixture(file);
        let json: Value = serde_json::from_slice(&bytes).expect("a valid fixture is JSON");
        let problems = violations(&validator(read_as.schema()), &json);
        assert!(problems.is_empty(), "{file} breaks {}: {problems:#?}", read_as.schema());
        if let Err(error) = read_as.decode(&bytes) {
            panic!("{file} does not decode: {error}");
        }
    }
}

#[test]
fn every_invalid_fixture_is_rejected_by_the_schema_and_by_decode() {
    for case in INVALID {
        let bytes = read_fixture(case.file);
        match (serde_json::from_slice::<Value>(&bytes), case.schema_at) {
            (Ok(json), Some(at)) => {
                let validator = validator(case.read_as.schema());
                let paths: BTreeSet<String> =
                    validator.iter_errors(&json).map(|error| error.instance_path().to_string()).collect();
                assert!(!paths.is_empty(), "{} passes {}", case.file, case.read_as.schema());
                assert_eq!(
                    paths,
                    BTreeSet::from([at.to_owned()]),
                    "{} breaks the schema elsewhere than where it should: {:#?}",
                    case.file,
                    violations(&validator, &json)
                );
            }
            (Err(_), None) => {} // not JSON: no schema verdict
            (json, at) => panic!("{}: parses as JSON: {}, but schema_at is {at:?}", case.file, json.is_ok()),
        }
        let Err(error) = case.read_as.decode(&bytes) else {
            panic!("{} decodes, but must be refused", case.file)
        };
        assert_eq!(kind(&error), Some(case.expected), "{}: {error:?}", case.file);
        assert!(
            error.to_string().contains(case.mentions),
            "{}: expected the error to mention {:?}, got: {error}",
            case.file,
            case.mentions
        );
    }
}

#[test]
fn every_fixture_file_is_covered_by_a_case() {
    let listed: BTreeSet<&str> =
        VALID.iter().map(|(file, _)| *file).chain(INVALID.iter().map(|case| case.file)).collect();
    let mut on_disk = BTreeSet::new();
    for folder in ["valid", "invalid"] {
        for entry in std::fs::read_dir(common::fixtures_dir().join(folder)).expect("fixture folder") {
            let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
            on_disk.insert(format!("{folder}/{name}"));
        }
    }
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(on_disk, listed, "a fixture on disk has no case, or a case has no file");
}

#[test]
fn a_message_of_another_type_is_refused_as_unknown_type() {
    let bytes = read_fixture("valid/completed_done.json");
    let json: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(!violations(&validator(REQUESTED_SCHEMA), &json).is_empty());

    let error = As::Requested.decode(&bytes).expect_err("a reply is not a request");
    assert_eq!(
        error,
        ContractError::UnknownType { expected: FetchRequestedV1::TYPE, found: FetchCompletedV1::TYPE.into() }
    );
}

#[test]
fn the_minimal_request_leaves_optional_envelope_fields_empty() {
    let request = decode(&read_fixture("valid/requested_minimal.json"))
        .and_then(RawEnvelope::payload_as::<FetchRequestedV1>)
        .expect("decodes");
    assert_eq!(request.message_id, "0190a8b4-5f6e-7c3d-8a9b-0c1d2e3f4a5b");
    assert_eq!(request.correlation_id, "0190a8b4-5f00-7aaa-8bbb-000000000001");
    assert_eq!(request.reply_to, None);
    assert_eq!(request.trace, None);
    assert_eq!(request.sent_at, utc(2025, 3, 1, 10, 15, 30));
    assert_eq!(
        request.payload,
        FetchRequestedV1 {
            message_id: "0190a8b4-5f6e-7c3d-8a9b-0c1d2e3f4a5b".into(),
            job_id: "0190a8b4-5f00-7aaa-8bbb-000000000001".into(),
            url: "https://example.com/feed.xml".into(),
            requested_by: "user-1".into(),
            requested_at: utc(2025, 3, 1, 10, 15, 29),
        }
    );
}

#[test]
fn the_full_request_carries_reply_address_and_trace() {
    let request: Envelope<FetchRequestedV1> =
        serde_json::from_slice(&read_fixture("valid/requested_full.json")).expect("decodes");
    assert_eq!(request.reply_to.as_deref(), Some("rss.fetch.replies"));
    assert_eq!(
        request.trace,
        Some(TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: Some("galley=00f067aa0ba902b7,congo=t61rcWkgMzE".into()),
        })
    );
    assert_eq!(request.sent_at.timestamp_subsec_nanos(), 123_456_789);
    assert_eq!(request.payload.requested_by, "auth0|65f1c2d3e4");
}

#[test]
fn unknown_fields_anywhere_are_ignored() {
    let with_extras = decode(&read_fixture("valid/requested_with_unknown_fields.json"))
        .and_then(RawEnvelope::payload_as::<FetchRequestedV1>)
        .expect("a tolerant reader ignores what it does not know");
    assert_eq!(with_extras.payload.url, "https://example.com/feed.xml");
    assert_eq!(with_extras.trace.map(|trace| trace.tracestate), Some(None));
}

#[test]
fn replies_decode_with_status_counts_and_error_code() {
    let done = decode(&read_fixture("valid/completed_done.json"))
        .and_then(RawEnvelope::payload_as::<FetchCompletedV1>)
        .expect("decodes");
    assert_eq!(
        done.payload,
        FetchCompletedV1 {
            job_id: "0190a8b4-5f00-7aaa-8bbb-000000000002".into(),
            status: FetchStatus::Done,
            inserted: 12,
            skipped: 3,
            error: None,
        }
    );

    let failed = decode(&read_fixture("valid/completed_failed.json"))
        .and_then(RawEnvelope::payload_as::<FetchCompletedV1>)
        .expect("decodes");
    assert_eq!(failed.payload.status, FetchStatus::Failed);
    assert_eq!(failed.payload.error.as_deref(), Some("blocked_address"));

    let with_nulls = decode(&read_fixture("valid/completed_with_nulls.json"))
        .and_then(RawEnvelope::payload_as::<FetchCompletedV1>)
        .expect("decodes");
    assert_eq!(with_nulls.reply_to, None);
    assert_eq!(with_nulls.payload.error, None);
    // An offset other than Z is read and normalised to UTC.
    assert_eq!(with_nulls.sent_at, utc(2025, 3, 1, 10, 16, 0));
}
