//! Users, refresh tokens, signing keys and an external provider's per-sign-in sessions.

use async_trait::async_trait;
use galley_identity::{
    ConsumeOutcome, InsertUserError, ProviderSession, ProviderSessionStore, RefreshRecord, RefreshTokenStore,
    SigningKeyStore, StoreError, StoredSigningKey, UniqueField, User, UserRepository,
};
use galley_kernel::UserId;
use mongodb::Collection;
use mongodb::bson::{self, doc};
use mongodb::options::{FindOneAndUpdateOptions, FindOptions, ReturnDocument};
use serde::{Deserialize, Serialize};

use crate::store::{MongoStore, find_all, instant, is_duplicate_key, micros, translate};

#[derive(Debug, Serialize, Deserialize)]
struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    username: String,
    username_key: String,
    email: String,
    given_name: Option<String>,
    password_hash: String,
    created_us: i64,
}

impl UserDoc {
    fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            id: UserId::new(self.id),
            username: self.username,
            email: self.email,
            given_name: self.given_name,
            password_hash: self.password_hash,
            created_at: instant(self.created_us, "users.created_us")?,
        })
    }
}

/// Users; unique indexes on `username_key` and `email` decide duplicates, even under races.
#[derive(Debug, Clone)]
pub struct MongoUserRepository {
    store: MongoStore,
}

impl MongoUserRepository {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `users` on the store's current client, taken per operation.
    fn users(&self) -> Collection<UserDoc> {
        self.store.collection("users")
    }

    /// Every unique field of `user` already held by someone else.
    async fn taken(&self, user: &User) -> Result<Vec<UniqueField>, StoreError> {
        let mut taken = Vec::new();
        let users = self.users();
        let username = users.count_documents(
            doc! { "username_key": User::username_key(&user.username), "_id": { "$ne": user.id.as_str() } },
        );
        if username.await.map_err(translate)? > 0 {
            taken.push(UniqueField::Username);
        }
        let email = users.count_documents(doc! { "email": &user.email, "_id": { "$ne": user.id.as_str() } });
        if email.await.map_err(translate)? > 0 {
            taken.push(UniqueField::Email);
        }
        Ok(taken)
    }
}

#[async_trait]
impl UserRepository for MongoUserRepository {
    async fn insert(&self, user: &User) -> Result<(), InsertUserError> {
        let document = UserDoc {
            id: user.id.as_str().to_owned(),
            username: user.username.clone(),
            username_key: User::username_key(&user.username),
            email: user.email.clone(),
            given_name: user.given_name.clone(),
            password_hash: user.password_hash.clone(),
            created_us: micros(user.created_at),
        };
        match self.users().insert_one(document).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => {
                let taken = self.taken(user).await?;
                if taken.is_empty() {
                    // The id itself collided: not a user-facing conflict.
                    Err(InsertUserError::Store(StoreError::Internal(error.to_string())))
                } else {
                    Err(InsertUserError::Duplicate(taken))
                }
            }
            Err(error) => Err(InsertUserError::Store(translate(error))),
        }
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let found = self
            .users()
            .find_one(doc! { "username_key": User::username_key(username) })
            .await
            .map_err(translate)?;
        found.map(UserDoc::into_user).transpose()
    }

    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.users()
            .find_one(doc! { "_id": id.as_str() })
            .await
            .map_err(translate)?
            .map(UserDoc::into_user)
            .transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RefreshDoc {
    #[serde(rename = "_id")]
    token_hash: String,
    family_id: String,
    user_id: String,
    issued_us: i64,
    expires_us: i64,
    /// A BSON date for the TTL index that deletes expired tokens.
    expires_at: bson::DateTime,
    used: bool,
    revoked: bool,
}

impl RefreshDoc {
    fn record(&self) -> Result<RefreshRecord, StoreError> {
        Ok(RefreshRecord {
            token_hash: self.token_hash.clone(),
            family_id: self.family_id.clone(),
            user_id: UserId::new(self.user_id.clone()),
            issued_at: instant(self.issued_us, "refresh_tokens.issued_us")?,
            expires_at: instant(self.expires_us, "refresh_tokens.expires_us")?,
        })
    }
}

/// The id of the marker saying "this family was revoked".
fn family_marker(family_id: &str) -> String {
    format!("revoked-family:{family_id}")
}

/// Refresh tokens; `consume` is one atomic `findOneAndUpdate` on `used: false`.
#[derive(Debug, Clone)]
pub struct MongoRefreshTokenStore {
    store: MongoStore,
}

impl MongoRefreshTokenStore {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `refresh_tokens` on the store's current client, taken per operation.
    fn tokens(&self) -> Collection<RefreshDoc> {
        self.store.collection("refresh_tokens")
    }
}

#[async_trait]
impl RefreshTokenStore for MongoRefreshTokenStore {
    async fn insert(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let document = RefreshDoc {
            token_hash: record.token_hash.clone(),
            family_id: record.family_id.clone(),
            user_id: record.user_id.as_str().to_owned(),
            issued_us: micros(record.issued_at),
            expires_us: micros(record.expires_at),
            expires_at: bson::DateTime::from_millis(record.expires_at.timestamp_millis()),
            used: false,
            revoked: false,
        };
        self.tokens().insert_one(document).await.map_err(translate)?;
        // A revoked family stays revoked. `revoke_family` writes its marker before it revokes the
        // family's tokens, so either that sweep saw this token, or the marker is visible now.
        if self
            .tokens()
            .find_one(doc! { "_id": family_marker(&record.family_id) })
            .await
            .map_err(translate)?
            .is_some()
        {
            self.tokens()
                .update_one(doc! { "_id": &record.token_hash }, doc! { "$set": { "revoked": true } })
                .await
                .map_err(translate)?;
        }
        Ok(())
    }

    async fn consume(&self, token_hash: &str) -> Result<ConsumeOutcome, StoreError> {
        let options = FindOneAndUpdateOptions::builder().return_document(ReturnDocument::Before).build();
        let fresh = self
            .tokens()
            .find_one_and_update(
                doc! { "_id": token_hash, "used": false, "revoked": false },
                doc! { "$set": { "used": true } },
            )
            .with_options(options)
            .await
            .map_err(translate)?;
        if let Some(document) = fresh {
            return Ok(ConsumeOutcome::Fresh(document.record()?));
        }
        Ok(match self.tokens().find_one(doc! { "_id": token_hash }).await.map_err(translate)? {
            None => ConsumeOutcome::Unknown,
            Some(document) if document.revoked => ConsumeOutcome::Revoked,
            Some(document) if document.used => ConsumeOutcome::Reused(document.record()?),
            // Inserted after our update ran: treat as unknown, as the embedded store does.
            Some(_) => ConsumeOutcome::Unknown,
        })
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        // The marker closes the race with a concurrent `insert` into this family (see there). It is a
        // used, revoked pseudo-token under an id no SHA-256 hex hash can equal; the TTL index removes it
        // a day later, when no refresh that raced this revocation can still be running.
        let now = chrono::Utc::now();
        let marker = RefreshDoc {
            token_hash: family_marker(family_id),
            family_id: family_id.to_owned(),
            user_id: String::new(),
            issued_us: micros(now),
            expires_us: micros(now),
            expires_at: bson::DateTime::from_millis(now.timestamp_millis()),
            used: true,
            revoked: true,
        };
        self.tokens()
            .replace_one(doc! { "_id": &marker.token_hash }, &marker)
            .upsert(true)
            .await
            .map_err(translate)?;
        self.tokens()
            .update_many(doc! { "family_id": family_id }, doc! { "$set": { "revoked": true } })
            .await
            .map(|_| ())
            .map_err(translate)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyDoc {
    #[serde(rename = "_id")]
    kid: String,
    private_pem: String,
    created_us: i64,
    retired_us: Option<i64>,
}

/// Signing keys shared by every replica of the issuer.
#[derive(Debug, Clone)]
pub struct MongoSigningKeyStore {
    store: MongoStore,
}

impl MongoSigningKeyStore {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `signing_keys` on the store's current client, taken per operation.
    fn keys(&self) -> Collection<KeyDoc> {
        self.store.collection("signing_keys")
    }
}

#[async_trait]
impl SigningKeyStore for MongoSigningKeyStore {
    async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let options = FindOptions::builder().sort(doc! { "created_us": 1, "_id": 1 }).build();
        let docs = find_all(&self.keys(), doc! {}, options).await.map_err(translate)?;
        docs.into_iter()
            .map(|key| {
                Ok(StoredSigningKey {
                    kid: key.kid,
                    private_pem: key.private_pem,
                    created_at: instant(key.created_us, "signing_keys.created_us")?,
                    retired_at: key
                        .retired_us
                        .map(|us| instant(us, "signing_keys.retired_us"))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        let document = KeyDoc {
            kid: key.kid.clone(),
            private_pem: key.private_pem.clone(),
            created_us: micros(key.created_at),
            retired_us: key.retired_at.map(micros),
        };
        self.keys().insert_one(document).await.map(|_| ()).map_err(translate)
    }

    async fn retire(&self, kid: &str, at: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError> {
        self.keys()
            .update_one(doc! { "_id": kid }, doc! { "$set": { "retired_us": micros(at) } })
            .await
            .map(|_| ())
            .map_err(translate)
    }

    async fn delete(&self, kid: &str) -> Result<(), StoreError> {
        self.keys().delete_one(doc! { "_id": kid }).await.map(|_| ()).map_err(translate)
    }

    async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
        self.keys()
            .update_one(doc! { "_id": kid }, doc! { "$set": { "private_pem": private_pem } })
            .await
            .map(|_| ())
            .map_err(translate)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ProviderSessionDoc {
    #[serde(rename = "_id")]
    key: String,
    user_id: String,
    sealed_refresh_token: Option<String>,
    username: String,
    email: String,
    given_name: Option<String>,
    created_us: i64,
    expires_us: i64,
    /// For the TTL index (MongoDB deletes expired records itself).
    expires_at: bson::DateTime,
}

/// An external provider's per-sign-in records (`provider_sessions`), one document per access token.
#[derive(Debug, Clone)]
pub struct MongoProviderSessionStore {
    store: MongoStore,
}

impl MongoProviderSessionStore {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `provider_sessions` on the store's current client, taken per operation.
    fn sessions(&self) -> Collection<ProviderSessionDoc> {
        self.store.collection("provider_sessions")
    }
}

#[async_trait]
impl ProviderSessionStore for MongoProviderSessionStore {
    async fn put(&self, session: &ProviderSession) -> Result<(), StoreError> {
        let document = ProviderSessionDoc {
            key: session.key.clone(),
            user_id: session.user_id.as_str().to_owned(),
            sealed_refresh_token: session.sealed_refresh_token.clone(),
            username: session.username.clone(),
            email: session.email.clone(),
            given_name: session.given_name.clone(),
            created_us: micros(session.created_at),
            expires_us: micros(session.expires_at),
            expires_at: bson::DateTime::from_millis(session.expires_at.timestamp_millis()),
        };
        self.sessions()
            .replace_one(doc! { "_id": &session.key }, document)
            .upsert(true)
            .await
            .map_err(translate)?;
        Ok(())
    }

    async fn find(&self, key: &str) -> Result<Option<ProviderSession>, StoreError> {
        // The TTL monitor runs about once a minute: expiry is checked here as well.
        let now = micros(chrono::Utc::now());
        let Some(document) = self
            .sessions()
            .find_one(doc! { "_id": key, "expires_us": { "$gte": now } })
            .await
            .map_err(translate)?
        else {
            return Ok(None);
        };
        Ok(Some(ProviderSession {
            key: document.key,
            user_id: UserId::new(document.user_id),
            sealed_refresh_token: document.sealed_refresh_token,
            username: document.username,
            email: document.email,
            given_name: document.given_name,
            created_at: instant(document.created_us, "provider_sessions.created_us")?,
            expires_at: instant(document.expires_us, "provider_sessions.expires_us")?,
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.sessions().delete_one(doc! { "_id": key }).await.map_err(translate)?;
        Ok(())
    }
}
