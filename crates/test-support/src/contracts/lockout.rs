//! Lockout scenarios run through `AuthService` on a real attempt tracker (part of the attempt tracker
//! contract): concurrent wrong guesses check at most the budget's worth of passwords, and an attacker
//! at one address cannot lock a user out at the address they usually sign in from.
//!
//! Passwords are checked by [`CountingHasher`], which counts verifications and takes a while like a real
//! hash does, so concurrent attempts overlap as they would in production. Everything else the provider
//! needs is a minimal in-memory stand-in; usernames are random per case, so the scenarios also run
//! against a tracker shared with other runs.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use galley_identity::AuthFailure;
use galley_identity::{
    AccessClaims, AttemptTracker, AuthService, BuiltinIdentityProvider, BuiltinPorts, ConsumeOutcome,
    Credentials, IdClaims, IdentityError, InsertUserError, IssuerConfig, LockoutPolicy, Password,
    PasswordHasher, RefreshRecord, RefreshTokenStore, RevocationList, StoreError, TokenLifetimes,
    TokenSigner, TokenVerifier, User, UserRepository,
};
use galley_kernel::{SystemClock, UserId};

type Tracker = Arc<dyn AttemptTracker>;

const PASSWORD: &str = "right!pass";

/// Hashes as `hash:<password>`, counts verifications, and takes `delay` per verification.
#[derive(Debug, Default)]
pub struct CountingHasher {
    pub verifications: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: &Password) -> Result<String, IdentityError> {
        Ok(format!("hash:{}", password.expose()))
    }

    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, IdentityError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(hash == format!("hash:{}", password.expose()))
    }
}

/// One user, looked up by username.
#[derive(Debug)]
struct OneUser(User);

#[async_trait]
impl UserRepository for OneUser {
    async fn insert(&self, _user: &User) -> Result<(), InsertUserError> {
        Ok(())
    }
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok((User::username_key(username) == User::username_key(&self.0.username)).then(|| self.0.clone()))
    }
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        Ok((*id == self.0.id).then(|| self.0.clone()))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Accepts refresh tokens and revocations, remembering nothing: these scenarios only sign in.
#[derive(Debug, Default)]
struct Forgetful(Mutex<usize>);

#[async_trait]
impl RefreshTokenStore for Forgetful {
    async fn insert(&self, _record: &RefreshRecord) -> Result<(), StoreError> {
        *self.0.lock().map_err(|_| StoreError::Internal("poisoned".into()))? += 1;
        Ok(())
    }
    async fn consume(&self, _token_hash: &str) -> Result<ConsumeOutcome, StoreError> {
        Ok(ConsumeOutcome::Unknown)
    }
    async fn revoke_family(&self, _family_id: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl RevocationList for Forgetful {
    async fn revoke(&self, _id: &str, _ttl: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn is_revoked(&self, _id: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[async_trait]
impl TokenSigner for Forgetful {
    async fn sign_access(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        Ok(format!("access:{}", claims.sub))
    }
    async fn sign_id(&self, claims: &IdClaims) -> Result<String, IdentityError> {
        Ok(format!("id:{}", claims.sub))
    }
}

#[async_trait]
impl TokenVerifier for Forgetful {
    async fn verify_access(&self, _token: &str) -> Result<AccessClaims, AuthFailure> {
        Err(AuthFailure::Malformed)
    }
}

/// An `AuthService` with the default policy (5 attempts per budget) on `tracker`, one random user whose
/// password is [`PASSWORD`], and the counting hasher.
async fn auth_service(tracker: Tracker) -> (AuthService, String, Arc<CountingHasher>) {
    let username: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_digit() { 'x' } else { c })
        .collect();
    let user = User {
        id: UserId::new(format!("user-{username}")),
        username: username.clone(),
        email: format!("{username}@example.com"),
        given_name: None,
        password_hash: format!("hash:{PASSWORD}"),
        created_at: Utc::now(),
    };
    let hasher =
        Arc::new(CountingHasher { verifications: AtomicUsize::new(0), delay: Duration::from_millis(20) });
    let stub = Arc::new(Forgetful::default());
    let ports = BuiltinPorts {
        users: Arc::new(OneUser(user)),
        refresh_tokens: stub.clone(),
        revocations: stub.clone(),
        hasher: hasher.clone(),
        signer: stub.clone(),
        clock: Arc::new(SystemClock),
    };
    let issuer = IssuerConfig { issuer: "iss".into(), api_audience: "api".into(), client_id: "web".into() };
    let provider =
        BuiltinIdentityProvider::new(ports, issuer, TokenLifetimes::default()).await.expect("provider");
    let service = AuthService::new(
        Arc::new(provider),
        stub.clone(),
        stub,
        tracker,
        Arc::new(SystemClock),
        LockoutPolicy::default(),
    );
    (service, username, hasher)
}

fn credentials(username: &str, password: &str) -> Credentials {
    Credentials { username: username.to_owned(), password: Password::new(password) }
}

fn address(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("address"))
}

/// Fifty wrong guesses at once, from `clients(i)`; each is refused one way or the other.
async fn burst(service: &AuthService, username: &str, clients: impl Fn(usize) -> Option<IpAddr>) {
    let guesses = (0..50).map(|i| {
        let service = service.clone();
        let credentials = credentials(username, &format!("guess-{i}!"));
        let client = clients(i);
        tokio::spawn(async move { service.sign_in(&credentials, client).await })
    });
    for outcome in futures::future::join_all(guesses).await {
        let outcome = outcome.expect("guess task");
        assert!(
            matches!(outcome, Err(IdentityError::InvalidCredentials | IdentityError::LockedOut { .. })),
            "{outcome:?}"
        );
    }
}

pub async fn fifty_concurrent_wrong_guesses_verify_at_most_five_passwords(tracker: Tracker) {
    let (service, username, hasher) = auth_service(Arc::clone(&tracker)).await;
    burst(&service, &username, |_| address("198.51.100.7")).await;
    let from_one_client = hasher.verifications.swap(0, Ordering::SeqCst);
    assert!(from_one_client <= 5, "{from_one_client} passwords verified for 50 guesses from one address");

    let (service, username, hasher) = auth_service(tracker).await;
    // Fifty addresses, as a botnet would use: the username's budget still holds.
    burst(&service, &username, |i| address(&format!("203.0.113.{}", i + 1))).await;
    let from_many_clients = hasher.verifications.load(Ordering::SeqCst);
    assert!(
        from_many_clients <= 5,
        "{from_many_clients} passwords verified for 50 guesses from 50 addresses"
    );
    eprintln!(
        "verifications during a 50-way burst: one address {from_one_client}, fifty addresses {from_many_clients}"
    );
}

pub async fn an_attacker_elsewhere_cannot_lock_out_a_user_at_their_usual_address(tracker: Tracker) {
    let (service, username, _) = auth_service(tracker).await;
    let home = address("2001:db8:aaaa:1::10");
    service.sign_in(&credentials(&username, PASSWORD), home).await.expect("the victim signs in at home");

    // The attacker spends the username's budget from several addresses, until every guess is refused.
    for i in 0..20 {
        let _ =
            service.sign_in(&credentials(&username, "guess!"), address(&format!("192.0.2.{}", i + 1))).await;
    }
    let attacker = service.sign_in(&credentials(&username, PASSWORD), address("192.0.2.99")).await;
    assert!(
        matches!(attacker, Err(IdentityError::LockedOut { .. })),
        "a new address is locked: {attacker:?}"
    );

    // At home — another address of the same /64, as IPv6 privacy addresses rotate — the victim still
    // signs in: that pair has its own budget.
    let tokens = service.sign_in(&credentials(&username, PASSWORD), address("2001:db8:aaaa:1::abcd")).await;
    assert!(tokens.is_ok(), "the victim at their usual address is not locked out: {tokens:?}");

    // The pair budget still stops guessing from the victim's own network.
    for _ in 0..5 {
        let _ = service.sign_in(&credentials(&username, "guess!"), home).await;
    }
    let at_home = service.sign_in(&credentials(&username, PASSWORD), home).await;
    assert!(matches!(at_home, Err(IdentityError::LockedOut { .. })), "{at_home:?}");
}
