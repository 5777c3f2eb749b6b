//! The RSS fetch messages: rss-api asks a worker to fetch a feed for a job, the worker replies with the
//! job's outcome.
//!
//! Ids are strings on the wire: the contract does not assume how the RSS context builds its job or user
//! ids, only that they are stable and opaque.
//!
//! Doc comments on the message types become the schemas' `description`s, so they describe the contract
//! in plain words (no intra-doc links); notes for Rust readers only are ordinary comments.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::envelope::uuid_string;
use crate::{Envelope, Message};

/// `rss.fetch.requested` v1: fetch the feed at `url` for job `job_id`.
///
/// Sent by rss-api, consumed by rss-worker. Envelope: `correlation_id` is the job id, `reply_to` the
/// queue for the `rss.fetch.completed` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FetchRequestedV1 {
    /// The envelope's `message_id`, repeated (a hyphenated UUID), so the request is self-describing
    /// when the payload is stored or logged without its envelope. Producers keep the two equal; the
    /// envelope's is the one consumers deduplicate on.
    // `Envelope::fetch_requested` builds the envelope from the payload so they cannot disagree.
    #[serde(with = "uuid_string")]
    #[schemars(with = "uuid::Uuid")]
    pub message_id: String,
    /// The fetch job this request belongs to.
    pub job_id: String,
    /// The feed URL as submitted. Consumers validate it themselves (scheme, host, address) before
    /// fetching; the contract only carries it.
    pub url: String,
    /// Id of the user who asked for the fetch.
    pub requested_by: String,
    /// When the user asked (RFC 3339, UTC), which may be well before this message was sent.
    pub requested_at: DateTime<Utc>,
}

impl Message for FetchRequestedV1 {
    const TYPE: &'static str = "rss.fetch.requested";
    const VERSION: u32 = 1;
}

impl Envelope<FetchRequestedV1> {
    /// The envelope for `payload`, its ids derived from the payload so they cannot disagree: the
    /// `message_id` is the payload's and the `correlation_id` is the job id.
    pub fn fetch_requested(payload: FetchRequestedV1, reply_to: Option<String>) -> Self {
        Self::new(payload.message_id.clone(), payload.job_id.clone(), reply_to, payload)
    }
}

/// `rss.fetch.completed` v1: how a fetch job ended.
///
/// Sent by rss-worker to the request's `reply_to` once the outcome is stored; `correlation_id` is the
/// job id. Sent only for final outcomes: a fetch that will be retried sends nothing yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FetchCompletedV1 {
    /// The fetch job that ended.
    pub job_id: String,
    /// Whether the feed was fetched and stored.
    pub status: FetchStatus,
    /// Entries stored by this fetch.
    pub inserted: u64,
    /// Entries already known (deduplicated), hence not stored again.
    pub skipped: u64,
    /// Why the job failed, a code from the closed list; absent when it is done.
    // A `String` rather than `FetchErrorCode` because jobs store the code as text; the value is still
    // checked against the list when encoding and decoding, exactly as the schema's `enum` does.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_error_code")]
    #[schemars(with = "Option<FetchErrorCode>")]
    pub error: Option<String>,
}

impl Message for FetchCompletedV1 {
    const TYPE: &'static str = "rss.fetch.completed";
    const VERSION: u32 = 1;
}

/// The outcome of a fetch job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FetchStatus {
    /// The feed was fetched and its new entries stored.
    Done,
    /// The fetch failed for good; `error` says why.
    Failed,
}

/// Why a fetch job failed: a closed list of stable codes (shown to users, so never reworded).
///
/// Adding a code is a breaking change: v1 consumers reject codes they do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchErrorCode {
    InvalidUrl,
    BlockedAddress,
    TooManyRedirects,
    TooLarge,
    HttpClientError,
    HttpServerError,
    RateLimited,
    Timeout,
    ConnectionFailed,
    UnparseableFeed,
    InternalError,
}

impl FetchErrorCode {
    /// Every code, in the order the schema lists them.
    pub const ALL: [Self; 11] = [
        Self::InvalidUrl,
        Self::BlockedAddress,
        Self::TooManyRedirects,
        Self::TooLarge,
        Self::HttpClientError,
        Self::HttpServerError,
        Self::RateLimited,
        Self::Timeout,
        Self::ConnectionFailed,
        Self::UnparseableFeed,
        Self::InternalError,
    ];

    /// The code on the wire (`blocked_address`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::BlockedAddress => "blocked_address",
            Self::TooManyRedirects => "too_many_redirects",
            Self::TooLarge => "too_large",
            Self::HttpClientError => "http_client_error",
            Self::HttpServerError => "http_server_error",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::UnparseableFeed => "unparseable_feed",
            Self::InternalError => "internal_error",
        }
    }

    /// What the code means; written into the schema's description.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InvalidUrl => "the URL is not an absolute http(s) URL that can be requested",
            Self::BlockedAddress => {
                "the host is or resolves to a loopback, private, link-local or otherwise blocked address"
            }
            Self::TooManyRedirects => "more redirects than allowed",
            Self::TooLarge => "the body exceeds the size limit",
            Self::HttpClientError => "the server answered 4xx (other than 429)",
            Self::HttpServerError => "the server answered 5xx",
            Self::RateLimited => "the server answered 429 Too Many Requests",
            Self::Timeout => "no answer in time",
            Self::ConnectionFailed => "the connection failed (refused, reset, DNS failure)",
            Self::UnparseableFeed => "the body is not a feed that can be read",
            Self::InternalError => "the worker failed for a reason of its own",
        }
    }
}

impl fmt::Display for FetchErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`FetchErrorCode`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownErrorCode(pub String);

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown fetch error code {:?}", self.0)
    }
}

impl std::error::Error for UnknownErrorCode {}

impl FromStr for FetchErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.as_str() == code)
            .ok_or_else(|| UnknownErrorCode(code.to_owned()))
    }
}

impl Serialize for FetchErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FetchErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = Cow::<str>::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// Written by hand from [`FetchErrorCode::ALL`] so the schema's `enum` and the Rust list are one list,
/// and each code's meaning lands in the description.
impl JsonSchema for FetchErrorCode {
    fn schema_name() -> Cow<'static, str> {
        "FetchErrorCode".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        let codes: Vec<&str> = Self::ALL.iter().map(|code| code.as_str()).collect();
        let meanings: Vec<String> =
            Self::ALL.iter().map(|code| format!("`{}`: {}", code.as_str(), code.meaning())).collect();
        let description = format!(
            "Why a fetch job failed. A closed list: adding a code is a breaking change.\n\n{}.",
            meanings.join(";\n")
        );
        json_schema!({
            "description": description,
            "type": "string",
            "enum": codes,
        })
    }
}

/// An optional error code kept as text but checked against [`FetchErrorCode`] both ways.
mod optional_error_code {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::FetchErrorCode;

    pub(super) fn serialize<S: Serializer>(code: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        match code {
            Some(code) => {
                let code: FetchErrorCode = code.parse().map_err(serde::ser::Error::custom)?;
                serializer.serialize_some(code.as_str())
            }
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<FetchErrorCode>::deserialize(deserializer)?.map(|code| code.as_str().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_back_from_their_text() {
        for code in FetchErrorCode::ALL {
            assert_eq!(code.as_str().parse::<FetchErrorCode>(), Ok(code));
            assert_eq!(serde_json::to_value(code).expect("serializable"), code.as_str());
        }
        assert_eq!("no_such_code".parse::<FetchErrorCode>(), Err(UnknownErrorCode("no_such_code".into())));
    }

    #[test]
    fn the_code_list_is_exactly_the_contract() {
        let codes: Vec<&str> = FetchErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            codes,
            [
                "invalid_url",
                "blocked_address",
                "too_many_redirects",
                "too_large",
                "http_client_error",
                "http_server_error",
                "rate_limited",
                "timeout",
                "connection_failed",
                "unparseable_feed",
                "internal_error",
            ]
        );
    }

    #[test]
    fn an_unknown_code_is_refused_when_encoding() {
        let reply = FetchCompletedV1 {
            job_id: "job-1".into(),
            status: FetchStatus::Failed,
            inserted: 0,
            skipped: 0,
            error: Some("gremlins".into()),
        };
        let error = serde_json::to_vec(&reply).expect_err("gremlins is not a code");
        assert!(error.to_string().contains("gremlins"), "{error}");
    }

    #[test]
    fn a_fetch_request_envelope_takes_its_ids_from_the_payload() {
        let payload = FetchRequestedV1 {
            message_id: crate::new_message_id(),
            job_id: "job-7".into(),
            url: "https://example.com/feed.xml".into(),
            requested_by: "user-1".into(),
            requested_at: Utc::now(),
        };
        let envelope = Envelope::fetch_requested(payload.clone(), Some("rss.replies".into()));
        assert_eq!(envelope.message_id, payload.message_id);
        assert_eq!(envelope.correlation_id, "job-7");
        assert_eq!(envelope.reply_to.as_deref(), Some("rss.replies"));
    }
}
