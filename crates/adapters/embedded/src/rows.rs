//! Row helpers shared by the SQLite adapters: instants as integer microseconds, typed column reads
//! whose failures become `StoreError`s.

use chrono::{DateTime, Utc};
use galley_kernel::StoreError;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::sqlite::store_error;

pub(crate) fn to_us(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored instant; out of range means the row was written by something else (corruption).
pub(crate) fn from_us(us: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Internal(format!("corrupt {column}: {us} is not a valid instant")))
}

pub(crate) fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(store_error)
}
