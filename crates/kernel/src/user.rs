//! Identity of a signed-in user as other contexts see it: an opaque, stable subject id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The subject (`sub`) of a verified token. Opaque on purpose: recipes only compare it for ownership.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
