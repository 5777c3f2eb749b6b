//! Why a message could not be encoded or read, in the categories a consumer acts on differently.

use std::fmt;

/// A message that breaks the contract. Messages are for logs; the variant decides what to do.
///
/// None of the decoding variants is transient: the same bytes fail the same way on every delivery, so a
/// consumer never retries them. It dead-letters them (or, for [`UnknownType`](Self::UnknownType), routes
/// them to whoever reads that type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// The bytes are not JSON, or are JSON but not an envelope (a required envelope field is missing or
    /// of the wrong type, the `message_id` is not a UUID, ...). Poison: dead-letter.
    Malformed(String),
    /// A valid envelope of a message type other than the one asked for. Dead-letter, or hand it to the
    /// consumer of that type.
    UnknownType { expected: &'static str, found: String },
    /// The right message type in a version this build does not read (typically a newer producer).
    /// Dead-letter so it can be replayed once a consumer that reads it is deployed.
    UnsupportedVersion { message_type: String, found: u32, supported: u32 },
    /// The envelope is valid and names this type and version, but the payload does not match that
    /// type's schema (missing field, wrong type, unknown error code). Poison: dead-letter.
    InvalidPayload { message_type: &'static str, version: u32, reason: String },
    /// Refused to encode a value the contract forbids (a `message_id` that is not a UUID, an error code
    /// outside the list). A bug in the producer; nothing was sent.
    Unencodable(String),
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "not a message envelope: {reason}"),
            Self::UnknownType { expected, found } => {
                write!(f, "message type {found:?} where {expected:?} was expected")
            }
            Self::UnsupportedVersion { message_type, found, supported } => write!(
                f,
                "{message_type} version {found} is not supported (this build reads version {supported})"
            ),
            Self::InvalidPayload { message_type, version, reason } => {
                write!(f, "invalid {message_type} v{version} payload: {reason}")
            }
            Self::Unencodable(reason) => write!(f, "cannot encode message: {reason}"),
        }
    }
}

impl std::error::Error for ContractError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_went_wrong() {
        let error = ContractError::UnsupportedVersion {
            message_type: "rss.fetch.requested".into(),
            found: 2,
            supported: 1,
        };
        assert_eq!(
            error.to_string(),
            "rss.fetch.requested version 2 is not supported (this build reads version 1)"
        );
        let error = ContractError::UnknownType {
            expected: "rss.fetch.requested",
            found: "rss.fetch.completed".into(),
        };
        assert_eq!(
            error.to_string(),
            "message type \"rss.fetch.completed\" where \"rss.fetch.requested\" was expected"
        );
    }
}
