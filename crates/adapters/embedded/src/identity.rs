//! The identity ports that need durable storage — users, refresh tokens, signing keys, an external
//! provider's sessions — on the embedded SQLite store (tables from `migrations/0002_identity.sql` and
//! `0005_provider_sessions.sql`).
//!
//! Instants are stored as microseconds since the Unix epoch. Every sqlx error is translated into
//! [`StoreError`] through the store-wide classification in [`crate::sqlite`], so no driver type crosses a
//! port and "unavailable" means the same for identity as for recipes.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use galley_identity::{
    ConsumeOutcome, InsertUserError, ProviderSession, ProviderSessionStore, RefreshRecord, RefreshTokenStore,
    SigningKeyStore, StoreError, StoredSigningKey, UniqueField, User, UserRepository,
};
use galley_kernel::UserId;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use crate::rows::{column, from_us, to_us};
use crate::sqlite::{SqliteStore, store_error};

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

// ---------------------------------------------------------------------------------------------------
// Users

const USER_COLUMNS: &str = "id, username, email, given_name, password_hash, created_us";

fn decode_user(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::new(column::<String>(row, "id")?),
        username: column(row, "username")?,
        email: column(row, "email")?,
        given_name: column(row, "given_name")?,
        password_hash: column(row, "password_hash")?,
        created_at: from_us(column(row, "created_us")?, "users.created_us")?,
    })
}

/// The user repository on the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteUserRepository {
    pool: SqlitePool,
}

impl SqliteUserRepository {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }

    /// Which of the user's unique fields already belong to someone, in one statement so both are
    /// reported together.
    async fn taken_fields(
        connection: &mut SqliteConnection,
        username_key: &str,
        email: &str,
    ) -> Result<Vec<UniqueField>, StoreError> {
        let (username_taken, email_taken): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM users WHERE username_key = ?),
                    EXISTS (SELECT 1 FROM users WHERE email = ?)",
        )
        .bind(username_key)
        .bind(email)
        .fetch_one(&mut *connection)
        .await
        .map_err(store_error)?;
        let mut taken = Vec::new();
        if username_taken {
            taken.push(UniqueField::Username);
        }
        if email_taken {
            taken.push(UniqueField::Email);
        }
        Ok(taken)
    }
}

#[async_trait]
impl UserRepository for SqliteUserRepository {
    async fn insert(&self, user: &User) -> Result<(), InsertUserError> {
        let username_key = User::username_key(&user.username);
        // IMMEDIATE takes the write lock before the check, so no other sign-up can take a field between
        // the check and the insert. (A deferred transaction that reads first could also fail to upgrade
        // to a writer with SQLITE_BUSY_SNAPSHOT when another sign-up commits in between.)
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
        let taken = Self::taken_fields(&mut tx, &username_key, &user.email).await?;
        if !taken.is_empty() {
            // Dropping the transaction rolls it back.
            return Err(InsertUserError::Duplicate(taken));
        }
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, username_key, email, given_name, password_hash, created_us)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(&username_key)
        .bind(&user.email)
        .bind(&user.given_name)
        .bind(&user.password_hash)
        .bind(to_us(user.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The lock makes this unreachable for username and email, but the constraints are the real
            // guarantee: should one fire anyway, report the fields taken now (a failed statement leaves
            // the transaction usable). None taken means the id collided, which is a caller bug.
            Err(error) if is_unique_violation(&error) => {
                let taken = Self::taken_fields(&mut tx, &username_key, &user.email).await?;
                return Err(if taken.is_empty() {
                    InsertUserError::Store(store_error(error))
                } else {
                    InsertUserError::Duplicate(taken)
                });
            }
            Err(error) => return Err(store_error(error).into()),
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?"))
            .bind(User::username_key(username))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Refresh tokens

/// How long an expired token is kept before the purge removes it. Until then a replay of it is still
/// recognised as `Reused` (and revokes its family) instead of `Unknown`; a day also absorbs any skew
/// between the wall clock used here and the clock that stamped the record.
const EXPIRED_TOKEN_GRACE: TimeDelta = TimeDelta::days(1);

fn decode_refresh(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        token_hash: column(row, "token_hash")?,
        family_id: column(row, "family_id")?,
        user_id: UserId::new(column::<String>(row, "user_id")?),
        issued_at: from_us(column(row, "issued_us")?, "refresh_tokens.issued_us")?,
        expires_at: from_us(column(row, "expires_us")?, "refresh_tokens.expires_us")?,
    })
}

/// The refresh-token store on the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteRefreshTokenStore {
    pool: SqlitePool,
}

impl SqliteRefreshTokenStore {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }

    /// Deletes tokens expired more than [`EXPIRED_TOKEN_GRACE`] ago, so the table holds roughly the live
    /// sessions rather than every token ever issued. Storage housekeeping, hence the wall clock.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let cutoff = Utc::now() - EXPIRED_TOKEN_GRACE;
        let deleted = sqlx::query("DELETE FROM refresh_tokens WHERE expires_us < ?")
            .bind(to_us(cutoff))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(deleted.rows_affected())
    }
}

#[async_trait]
impl RefreshTokenStore for SqliteRefreshTokenStore {
    async fn insert(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        // Opportunistic: a failed purge must not fail the sign-in; the next insert tries again.
        if let Err(error) = self.purge_expired().await {
            tracing::warn!(%error, "could not purge expired refresh tokens");
        }
        // A revoked family stays revoked: a token inserted into it (by a refresh that consumed its
        // predecessor just before a sign-out revoked the family) is born revoked. One statement, so
        // SQLite's write lock orders it entirely before or after `revoke_family`.
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_us, expires_us, revoked)
             VALUES (?, ?, ?, ?, ?,
                     EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = ? AND revoked = 1))",
        )
        .bind(&record.token_hash)
        .bind(&record.family_id)
        .bind(record.user_id.as_str())
        .bind(to_us(record.issued_at))
        .bind(to_us(record.expires_at))
        .bind(&record.family_id)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn consume(&self, token_hash: &str) -> Result<ConsumeOutcome, StoreError> {
        // One statement both tests and sets the flag; SQLite runs it under the write lock, so of any
        // number of concurrent consumers exactly one gets the row back.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used = 1
             WHERE token_hash = ? AND used = 0 AND revoked = 0
             RETURNING token_hash, family_id, user_id, issued_us, expires_us",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        if let Some(row) = claimed {
            return Ok(ConsumeOutcome::Fresh(decode_refresh(&row)?));
        }
        // Not claimed: find out why. Flags only ever go from 0 to 1, so what is seen now still explains
        // the failed claim.
        let row = sqlx::query(
            "SELECT token_hash, family_id, user_id, issued_us, expires_us, used, revoked
             FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(ConsumeOutcome::Unknown);
        };
        // Revoked wins: once a session is dead, a replay of it needs no further action.
        if column::<bool>(&row, "revoked")? {
            Ok(ConsumeOutcome::Revoked)
        } else if column::<bool>(&row, "used")? {
            Ok(ConsumeOutcome::Reused(decode_refresh(&row)?))
        } else {
            // Inserted after the claim ran: at that moment it did not exist.
            Ok(ConsumeOutcome::Unknown)
        }
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?")
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Signing keys

fn decode_signing_key(row: &SqliteRow) -> Result<StoredSigningKey, StoreError> {
    let retired_us: Option<i64> = column(row, "retired_us")?;
    Ok(StoredSigningKey {
        kid: column(row, "kid")?,
        private_pem: column(row, "private_pem")?,
        created_at: from_us(column(row, "created_us")?, "signing_keys.created_us")?,
        retired_at: retired_us.map(|us| from_us(us, "signing_keys.retired_us")).transpose()?,
    })
}

/// The issuer's signing keys on the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteSigningKeyStore {
    pool: SqlitePool,
}

impl SqliteSigningKeyStore {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl SigningKeyStore for SqliteSigningKeyStore {
    /// Oldest first (ties by kid, so the order is stable): the newest unretired key is the last one.
    async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_pem, created_us, retired_us FROM signing_keys ORDER BY created_us, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(decode_signing_key).collect()
    }

    async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, created_us, retired_us) VALUES (?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.private_pem)
        .bind(to_us(key.created_at))
        .bind(key.retired_at.map(to_us))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    /// Retiring an unknown key is not an error: the outcome the caller wants (it does not sign) holds.
    async fn retire(&self, kid: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET retired_us = ? WHERE kid = ?")
            .bind(to_us(at))
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Idempotent, like retire.
    async fn delete(&self, kid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET private_pem = ? WHERE kid = ?")
            .bind(private_pem)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Provider sessions

const SESSION_COLUMNS: &str =
    "session_key, user_id, sealed_refresh_token, username, email, given_name, created_us, expires_us";

fn decode_session(row: &SqliteRow) -> Result<ProviderSession, StoreError> {
    Ok(ProviderSession {
        key: column(row, "session_key")?,
        user_id: UserId::new(column::<String>(row, "user_id")?),
        sealed_refresh_token: column(row, "sealed_refresh_token")?,
        username: column(row, "username")?,
        email: column(row, "email")?,
        given_name: column(row, "given_name")?,
        created_at: from_us(column(row, "created_us")?, "provider_sessions.created_us")?,
        expires_at: from_us(column(row, "expires_us")?, "provider_sessions.expires_us")?,
    })
}

/// An external provider's per-sign-in records on the embedded store (`migrations/0005_provider_sessions.sql`).
#[derive(Debug, Clone)]
pub struct SqliteProviderSessionStore {
    pool: SqlitePool,
}

impl SqliteProviderSessionStore {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl ProviderSessionStore for SqliteProviderSessionStore {
    async fn put(&self, session: &ProviderSession) -> Result<(), StoreError> {
        // Housekeeping by the wall clock: an expired record can no longer be presented.
        if let Err(error) = sqlx::query("DELETE FROM provider_sessions WHERE expires_us < ?")
            .bind(to_us(Utc::now()))
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %store_error(error), "could not purge expired provider sessions");
        }
        sqlx::query(&format!(
            "INSERT OR REPLACE INTO provider_sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&session.key)
        .bind(session.user_id.as_str())
        .bind(&session.sealed_refresh_token)
        .bind(&session.username)
        .bind(&session.email)
        .bind(&session.given_name)
        .bind(to_us(session.created_at))
        .bind(to_us(session.expires_at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find(&self, key: &str) -> Result<Option<ProviderSession>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM provider_sessions WHERE session_key = ? AND expires_us >= ?"
        ))
        .bind(key)
        .bind(to_us(Utc::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.as_ref().map(decode_session).transpose()
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM provider_sessions WHERE session_key = ?")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("galley.db")).await.expect("open store");
        (store, dir)
    }

    fn record(token_hash: &str, expires_at: DateTime<Utc>) -> RefreshRecord {
        RefreshRecord {
            token_hash: token_hash.to_owned(),
            family_id: "family".to_owned(),
            user_id: UserId::new("user"),
            issued_at: expires_at - TimeDelta::days(30),
            expires_at,
        }
    }

    #[tokio::test]
    async fn inserting_purges_tokens_expired_more_than_a_day_ago() {
        let (store, _dir) = fresh_store().await;
        let tokens = SqliteRefreshTokenStore::new(&store);
        let now = Utc::now();
        tokens.insert(&record("long-expired", now - TimeDelta::days(2))).await.expect("insert");
        tokens.insert(&record("just-expired", now - TimeDelta::hours(1))).await.expect("insert");
        tokens.insert(&record("live", now + TimeDelta::days(30))).await.expect("insert");
        assert_eq!(tokens.consume("long-expired").await.expect("consume"), ConsumeOutcome::Unknown);
        // Within the grace period an expired token is still recognised (the provider rejects it).
        assert!(matches!(tokens.consume("just-expired").await.expect("consume"), ConsumeOutcome::Fresh(_)));
        assert!(matches!(tokens.consume("live").await.expect("consume"), ConsumeOutcome::Fresh(_)));
    }

    #[tokio::test]
    async fn a_closed_store_is_unavailable_not_internal() {
        let (store, _dir) = fresh_store().await;
        let users = SqliteUserRepository::new(&store);
        store.close().await;
        assert!(matches!(users.ping().await, Err(StoreError::Unavailable(_))));
    }

    #[tokio::test]
    async fn corrupt_rows_are_internal_errors() {
        let (store, _dir) = fresh_store().await;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, created_us, retired_us) VALUES ('k', 'pem', ?, NULL)",
        )
        .bind(i64::MAX)
        .execute(store.pool())
        .await
        .expect("insert raw row");
        let keys = SqliteSigningKeyStore::new(&store);
        assert!(matches!(keys.load().await, Err(StoreError::Internal(_))));
    }

    #[tokio::test]
    async fn a_duplicate_user_id_is_a_store_error_not_a_duplicate_field() {
        let (store, _dir) = fresh_store().await;
        let users = SqliteUserRepository::new(&store);
        let first = User {
            id: UserId::new("same-id"),
            username: "alice".to_owned(),
            email: "alice@example.com".to_owned(),
            given_name: None,
            password_hash: "hash".to_owned(),
            created_at: Utc::now(),
        };
        users.insert(&first).await.expect("insert");
        let second = User { username: "bob".to_owned(), email: "bob@example.com".to_owned(), ..first };
        assert!(matches!(users.insert(&second).await, Err(InsertUserError::Store(StoreError::Internal(_)))));
    }
}
