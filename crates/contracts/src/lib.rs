//! Galley's wire contracts: the versioned messages services send each other, with their JSON Schemas.
//!
//! It depends on no service, domain, broker or web crate (only serde, schemars, uuid and chrono), so the
//! producer and the consumer of a message depend on the same definition and on nothing of each other.
//!
//! Module map:
//! - [`envelope`]: the [`Envelope`] every message travels in (type, version, ids, reply address, trace
//!   context), the [`Message`] trait naming a payload's type and version, [`encode`] and [`decode`].
//! - [`fetch`]: the RSS fetch messages, `rss.fetch.requested.v1` ([`FetchRequestedV1`]) and
//!   `rss.fetch.completed.v1` ([`FetchCompletedV1`]), and the closed list of [`FetchErrorCode`]s.
//! - [`schema`]: JSON Schemas (draft 2020-12) generated from the types; the checked-in copies live in
//!   `crates/contracts/schemas/` and a test fails when the types drift from them.
//! - [`error`]: [`ContractError`], which tells a consumer whether a message is poison, not for it, or
//!   malformed in its payload.
//!
//! # Sending and receiving
//!
//! ```
//! use galley_contracts::{
//!     ContractError, Envelope, FetchRequestedV1, Message, decode, encode, new_message_id,
//! };
//!
//! # fn main() -> Result<(), ContractError> {
//! // rss-api: the ids are chosen first and kept, so publishing again sends the same message.
//! let request = FetchRequestedV1 {
//!     message_id: new_message_id(),
//!     job_id: "0190a8b4-5f00-7aaa-8bbb-000000000001".into(),
//!     url: "https://example.com/feed.xml".into(),
//!     requested_by: "user-1".into(),
//!     requested_at: chrono::Utc::now(),
//! };
//! let body = encode(&Envelope::fetch_requested(request, Some("rss.fetch.replies".into())))?;
//!
//! // rss-worker: every error here is permanent, so the message is dead-lettered, never retried.
//! let raw = decode(&body)?; // not JSON, or not an envelope
//! let url = match (raw.message_type.as_str(), raw.version) {
//!     (FetchRequestedV1::TYPE, FetchRequestedV1::VERSION) => {
//!         raw.payload_as::<FetchRequestedV1>()?.payload.url // the payload breaks its schema
//!     }
//!     _ => unreachable!("not a message this consumer reads: dead-letter or route it"),
//! };
//! assert_eq!(url, "https://example.com/feed.xml");
//! # Ok(())
//! # }
//! ```
//!
//! # Evolution rules
//!
//! Producers and consumers are deployed independently, so a message written by one build must be read
//! by every other build still running. Hence:
//!
//! 1. **The checked-in schema is the contract.** `schemas/<type>.v<version>.json` is what other teams and
//!    tools read; the Rust types are one implementation of it. A test regenerates the schemas from the
//!    types and fails on any difference, so a change to the wire format is always a visible, reviewed
//!    change to a schema file (`GALLEY_UPDATE_SCHEMAS=1 cargo test -p galley-contracts` rewrites them).
//! 2. **Within a version, changes are additive and optional.** A v1 payload may gain a field only if it
//!    is optional (`Option` with `#[serde(default)]`): old producers do not send it and new consumers
//!    must cope. Removing or renaming a field, making one required, changing its type, or adding an
//!    error code (v1 consumers reject codes they do not know) is a breaking change.
//! 3. **A breaking change is a new version beside the old one.** `FetchRequestedV2` gets its own type,
//!    its own schema file, and v1 keeps working until no producer sends it any more. Consumers dispatch
//!    on `(type, version)` before decoding the payload ([`RawEnvelope`]).
//! 4. **Consumers are tolerant readers.** Unknown fields, in the envelope or in a payload, are ignored
//!    (no `deny_unknown_fields`, no `additionalProperties: false`), so rule 2 is safe in both directions.
//! 5. **Old messages stay readable.** `tests/fixtures/` holds messages as earlier builds wrote them; each
//!    must keep validating against the checked-in schema and decoding with the current types.
//! 6. **Schema and decoder agree.** Whatever the schema rejects, [`decode`] and
//!    [`RawEnvelope::payload_as`] reject too (UUID ids, RFC 3339 times, the error-code list, objects
//!    not arrays), and [`encode`] refuses to write it, so a producer bug fails at the producer. The
//!    invalid fixtures check both verdicts, one defect per fixture.

pub mod envelope;
pub mod error;
pub mod fetch;
pub mod schema;

pub use envelope::{Envelope, Message, RawEnvelope, TraceContext, decode, encode, new_message_id};
pub use error::ContractError;
pub use fetch::{FetchCompletedV1, FetchErrorCode, FetchRequestedV1, FetchStatus, UnknownErrorCode};
pub use schema::{all_schemas, schema_file_name, schema_of};
