//! `AuthService`: the use cases behind `/auth/*` and the authentication of every protected request.
//!
//! Brute-force protection (ADR 0017): every sign-in attempt is charged, atomically and *before* the
//! password is checked, against fixed-window budgets:
//! - the client address (IPv6 aggregated to its /64, since one host controls a whole /64) across all
//!   usernames — one machine cannot spray many accounts;
//! - the (username, client) pair — each place a user signs in from has its own budget;
//! - the username — unless this client signed in as this user successfully within
//!   [`LockoutPolicy::remember_client_for`]: then an attacker elsewhere who spent the username's budget
//!   does not lock the user out at their usual address; only their own pair budget applies.
//!
//! If any budget is spent, sign-in is refused with `LockedOut` — even with the right password — until its
//! window ends. Because the charge comes first, `n` concurrent guesses against a budget of `k` check at
//! most `k` passwords. A success resets the username and pair budgets, refunds its charge to the client
//! budget (signing in is not an attack) and remembers the client. An attempt that never checked a
//! password (hasher overloaded, store down) is refunded, and so is one abandoned before its verdict
//! (the client went away or the request timed out, dropping the sign-in): no verdict reached anyone,
//! and otherwise every dropped connection would count as a wrong guess until the window ends. If the
//! tracker cannot be reached, sign-in is refused (`Unavailable`) rather than run unprotected.
//!
//! Authentication: a token is accepted when its signature and claims verify and neither its id (`jti`)
//! nor its session (`sid`) is on the revocation list.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use galley_kernel::Clock;

use crate::error::{AuthFailure, IdentityError};
use crate::model::{Credentials, Profile, SignUp, SignUpInput, User};
use crate::ports::{
    AttemptTracker, Authenticator, Budget, IdentityProvider, Reservation, RevocationList, TokenVerifier,
};
use crate::tokens::{Principal, TokenSet};

/// Limits for sign-in attempts (see the module docs for how the budgets combine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Attempts per username per window from clients it has not recently signed in from.
    pub max_failures_per_username: u32,
    /// Attempts per client address (IPv6: per /64) per window, all usernames together.
    pub max_failures_per_client: u32,
    /// Attempts per (username, client address) per window.
    pub max_failures_per_username_and_client: u32,
    pub window: Duration,
    /// How long a successful sign-in exempts its (username, client) from the username budget.
    pub remember_client_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures_per_username: 5,
            max_failures_per_client: 5,
            max_failures_per_username_and_client: 5,
            window: Duration::from_secs(15 * 60),
            remember_client_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The lockout key of a client address: IPv4 as is (also when written as an IPv4-mapped IPv6 address),
/// IPv6 by its /64 prefix, which is what one subscriber or host is given and can rotate through freely.
pub fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("v4:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("v6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The attempt-tracker keys of one sign-in attempt.
struct AttemptKeys {
    username: String,
    client: Option<String>,
    /// `username|client`: client keys never contain `|`, so no two pairs collide.
    pair: Option<String>,
    known: Option<String>,
}

impl AttemptKeys {
    fn new(username: &str, client: Option<IpAddr>) -> Self {
        let username = User::username_key(username);
        let client = client.map(client_key);
        Self {
            pair: client.as_ref().map(|c| format!("signin:pair:{c}|{username}")),
            known: client.as_ref().map(|c| format!("signin:known:{c}|{username}")),
            client: client.map(|c| format!("signin:client:{c}")),
            username: format!("signin:user:{username}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService {
    provider: Arc<dyn IdentityProvider>,
    tokens: TokenAuthenticator,
    revocations: Arc<dyn RevocationList>,
    attempts: Arc<dyn AttemptTracker>,
    clock: Arc<dyn Clock>,
    policy: LockoutPolicy,
}

impl AuthService {
    pub fn new(
        provider: Arc<dyn IdentityProvider>,
        verifier: Arc<dyn TokenVerifier>,
        revocations: Arc<dyn RevocationList>,
        attempts: Arc<dyn AttemptTracker>,
        clock: Arc<dyn Clock>,
        policy: LockoutPolicy,
    ) -> Self {
        let tokens = TokenAuthenticator::new(verifier, Arc::clone(&revocations));
        Self { provider, tokens, revocations, attempts, clock, policy }
    }

    pub async fn sign_up(&self, input: SignUpInput) -> Result<Profile, IdentityError> {
        self.provider.sign_up(SignUp::parse(input)?).await
    }

    /// Signs in, charging the attempt to its budgets first (see the module docs).
    pub async fn sign_in(
        &self,
        credentials: &Credentials,
        client: Option<IpAddr>,
    ) -> Result<TokenSet, IdentityError> {
        let keys = AttemptKeys::new(&credentials.username, client);
        let known = match &keys.known {
            Some(known) => self.attempts.is_remembered(known).await?,
            None => false,
        };
        let mut budgets = Vec::with_capacity(3);
        if let (Some(client), Some(pair)) = (&keys.client, &keys.pair) {
            budgets.push(Budget::new(client.clone(), self.policy.max_failures_per_client));
            budgets.push(Budget::new(pair.clone(), self.policy.max_failures_per_username_and_client));
        }
        if !known {
            budgets.push(Budget::new(keys.username.clone(), self.policy.max_failures_per_username));
        }
        if let Reservation::Refused { retry_after } =
            self.attempts.reserve(&budgets, self.policy.window).await?
        {
            // Never advise retrying "in 0 seconds".
            return Err(IdentityError::LockedOut { retry_after: retry_after.max(Duration::from_secs(1)) });
        }

        let charged: Vec<String> = budgets.into_iter().map(|budget| budget.key).collect();
        let pending = RefundIfAbandoned { attempts: Arc::clone(&self.attempts), charged };
        let verdict = self.provider.sign_in(credentials, client).await;
        // From here on the outcome is known: it settles the charge, whatever happens to this future.
        let charged = pending.settle();
        match verdict {
            Ok(tokens) => {
                self.after_success(&keys).await;
                Ok(tokens)
            }
            // The charge stays: that was a failed guess.
            Err(IdentityError::InvalidCredentials) => Err(IdentityError::InvalidCredentials),
            Err(other) => {
                // No password was judged: give the attempt back.
                if let Err(error) = self.attempts.release(&charged).await {
                    tracing::warn!(%error, "could not refund a sign-in attempt");
                }
                Err(other)
            }
        }
    }

    /// Best effort: the user is signed in whatever the tracker says now.
    async fn after_success(&self, keys: &AttemptKeys) {
        let resets = std::iter::once(&keys.username).chain(keys.pair.as_ref());
        for key in resets {
            if let Err(error) = self.attempts.reset(key).await {
                tracing::warn!(%error, "could not reset a sign-in budget");
            }
        }
        if let Some(client) = &keys.client
            && let Err(error) = self.attempts.release(std::slice::from_ref(client)).await
        {
            tracing::warn!(%error, "could not refund the client's sign-in attempt");
        }
        if let Some(known) = &keys.known
            && let Err(error) = self.attempts.remember(known, self.policy.remember_client_for).await
        {
            tracing::warn!(%error, "could not remember the signed-in client");
        }
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        self.provider.refresh(refresh_token).await
    }

    /// Revokes the principal's access token and session at once, then ends the provider session.
    pub async fn sign_out(&self, principal: &Principal) -> Result<(), IdentityError> {
        let remaining = (principal.expires_at - self.clock.now()).to_std().unwrap_or_default();
        // Keep the entry a little longer than the token could be accepted (verification leeway).
        let ttl = remaining + Duration::from_secs(60);
        self.revocations.revoke(&principal.token_id, ttl).await?;
        self.provider.sign_out(principal).await
    }

    pub async fn me(&self, principal: &Principal) -> Result<Profile, IdentityError> {
        self.provider.profile(principal).await
    }
}

#[async_trait]
impl Authenticator for AuthService {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        self.tokens.authenticate(token).await
    }
}

/// Authentication on its own, for services that verify tokens but do not issue them (rss-api): a token
/// is accepted when its signature and claims verify and neither its id (`jti`) nor its session (`sid`)
/// is on the revocation list.
#[derive(Debug, Clone)]
pub struct TokenAuthenticator {
    verifier: Arc<dyn TokenVerifier>,
    revocations: Arc<dyn RevocationList>,
}

impl TokenAuthenticator {
    pub fn new(verifier: Arc<dyn TokenVerifier>, revocations: Arc<dyn RevocationList>) -> Self {
        Self { verifier, revocations }
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        let claims = self.verifier.verify_access(token).await?;
        let principal = Principal::from_claims(&claims);
        // With an external provider the session is named by the token's digest, often also its id.
        let session = principal.session_id.as_deref().filter(|sid| *sid != principal.token_id);
        let ids = std::iter::once(principal.token_id.as_str()).chain(session);
        for id in ids {
            match self.revocations.is_revoked(id).await {
                Ok(false) => {}
                Ok(true) => return Err(AuthFailure::Revoked),
                Err(error) => return Err(AuthFailure::Unavailable(error.to_string())),
            }
        }
        Ok(principal)
    }
}

/// A sign-in's charge while its verdict is pending. Dropped unsettled — the sign-in future was
/// dropped at the provider call, because the client disconnected or the request timed out — it
/// refunds the charge on the runtime, since `Drop` cannot wait for the tracker.
struct RefundIfAbandoned {
    attempts: Arc<dyn AttemptTracker>,
    charged: Vec<String>,
}

impl RefundIfAbandoned {
    /// The verdict is in: the caller settles the charge; hands back its keys.
    fn settle(mut self) -> Vec<String> {
        std::mem::take(&mut self.charged)
    }
}

impl Drop for RefundIfAbandoned {
    fn drop(&mut self) {
        if self.charged.is_empty() {
            return;
        }
        let (attempts, charged) = (Arc::clone(&self.attempts), std::mem::take(&mut self.charged));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = attempts.release(&charged).await {
                        tracing::warn!(%error, "could not refund an abandoned sign-in attempt");
                    }
                });
            }
            Err(_) => {
                tracing::warn!("an abandoned sign-in attempt stays charged: no runtime to refund it on")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use galley_kernel::{SystemClock, UserId};

    use super::*;
    use crate::error::StoreError;
    use crate::model::Password;
    use crate::ports::{MockAttemptTracker, MockIdentityProvider, MockRevocationList, MockTokenVerifier};
    use crate::tokens::{AccessClaims, Audience};

    fn credentials() -> Credentials {
        Credentials { username: "Alice".into(), password: Password::new("right!pass") }
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "a".into(),
            id_token: "i".into(),
            refresh_token: "r".into(),
            expires_in: 900,
        }
    }

    fn service(provider: MockIdentityProvider, attempts: MockAttemptTracker) -> AuthService {
        service_with(provider, attempts, MockTokenVerifier::new(), MockRevocationList::new())
    }

    fn service_with(
        provider: MockIdentityProvider,
        attempts: MockAttemptTracker,
        verifier: MockTokenVerifier,
        revocations: MockRevocationList,
    ) -> AuthService {
        AuthService::new(
            Arc::new(provider),
            Arc::new(verifier),
            Arc::new(revocations),
            Arc::new(attempts),
            Arc::new(SystemClock),
            LockoutPolicy::default(),
        )
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const CLIENT_KEY: &str = "signin:client:v4:127.0.0.1";
    const PAIR_KEY: &str = "signin:pair:v4:127.0.0.1|alice";
    const KNOWN_KEY: &str = "signin:known:v4:127.0.0.1|alice";
    const USER_KEY: &str = "signin:user:alice";

    fn keys_of(budgets: &[Budget]) -> Vec<&str> {
        budgets.iter().map(|budget| budget.key.as_str()).collect()
    }

    /// A tracker where the client is not remembered and the reservation answers `reservation`.
    fn tracker(reservation: Reservation) -> MockAttemptTracker {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_is_remembered().withf(|key| key == KNOWN_KEY).returning(|_| Ok(false));
        attempts.expect_reserve().times(1).returning(move |_, _| Ok(reservation));
        attempts
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_even_the_right_password() {
        let attempts = tracker(Reservation::Refused { retry_after: Duration::from_secs(600) });
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(
            matches!(result, Err(IdentityError::LockedOut { retry_after }) if retry_after == Duration::from_secs(600))
        );
    }

    #[tokio::test]
    async fn attempts_are_charged_to_client_pair_and_username_before_the_password_is_checked() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_is_remembered().returning(|_| Ok(false));
        let mut sequence = mockall::Sequence::new();
        attempts
            .expect_reserve()
            .withf(|budgets, window| {
                keys_of(budgets) == [CLIENT_KEY, PAIR_KEY, USER_KEY]
                    && budgets.iter().all(|budget| budget.limit == 5)
                    && *window == Duration::from_secs(900)
            })
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Ok(Reservation::Granted));
        let mut provider = MockIdentityProvider::new();
        provider
            .expect_sign_in()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Err(IdentityError::InvalidCredentials));
        attempts.expect_release().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn a_client_the_user_signed_in_from_is_not_charged_to_the_username_budget() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_is_remembered().withf(|key| key == KNOWN_KEY).returning(|_| Ok(true));
        attempts
            .expect_reserve()
            .withf(|budgets, _| keys_of(budgets) == [CLIENT_KEY, PAIR_KEY])
            .times(1)
            .returning(|_, _| Ok(Reservation::Granted));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().returning(|_, _| Err(IdentityError::InvalidCredentials));
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn a_success_resets_username_and_pair_refunds_the_client_and_remembers_it() {
        let mut attempts = tracker(Reservation::Granted);
        attempts.expect_reset().withf(|key| key == USER_KEY).times(1).returning(|_| Ok(()));
        attempts.expect_reset().withf(|key| key == PAIR_KEY).times(1).returning(|_| Ok(()));
        attempts.expect_release().withf(|keys| keys == [CLIENT_KEY]).times(1).returning(|_| Ok(()));
        attempts
            .expect_remember()
            .withf(|key, ttl| key == KNOWN_KEY && *ttl == Duration::from_secs(30 * 24 * 3600))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().returning(|_, _| Ok(tokens()));
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert_eq!(result.expect("signed in"), tokens());
    }

    #[tokio::test]
    async fn an_attempt_that_judged_no_password_is_refunded() {
        let mut attempts = tracker(Reservation::Granted);
        attempts
            .expect_release()
            .withf(|keys| keys == [CLIENT_KEY, PAIR_KEY, USER_KEY])
            .times(1)
            .returning(|_| Ok(()));
        let mut provider = MockIdentityProvider::new();
        provider
            .expect_sign_in()
            .returning(|_, _| Err(IdentityError::Overloaded { retry_after: Duration::from_secs(1) }));
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::Overloaded { .. })));
    }

    /// A provider whose sign-in never answers (a hash stuck behind a slow queue, say).
    #[derive(Debug)]
    struct StalledProvider;

    #[async_trait]
    impl IdentityProvider for StalledProvider {
        async fn sign_up(&self, _: SignUp) -> Result<Profile, IdentityError> {
            unimplemented!("not called")
        }
        async fn sign_in(&self, _: &Credentials, _: Option<IpAddr>) -> Result<TokenSet, IdentityError> {
            std::future::pending().await
        }
        async fn refresh(&self, _: &str) -> Result<TokenSet, IdentityError> {
            unimplemented!("not called")
        }
        async fn sign_out(&self, _: &Principal) -> Result<(), IdentityError> {
            unimplemented!("not called")
        }
        async fn profile(&self, _: &Principal) -> Result<Profile, IdentityError> {
            unimplemented!("not called")
        }
    }

    /// The client hung up (or the request timed out) before the verdict: the charge is given back,
    /// so dropped connections do not lock a user out as if they were wrong guesses.
    #[tokio::test]
    async fn an_attempt_abandoned_before_its_verdict_is_refunded() {
        let mut attempts = tracker(Reservation::Granted);
        let (refunded, refund) = tokio::sync::oneshot::channel::<Vec<String>>();
        let refunded = std::sync::Mutex::new(Some(refunded));
        attempts.expect_release().times(1).returning(move |keys| {
            if let Some(sender) = refunded.lock().expect("lock").take() {
                let _ = sender.send(keys.to_vec());
            }
            Ok(())
        });
        let service = AuthService::new(
            Arc::new(StalledProvider),
            Arc::new(MockTokenVerifier::new()),
            Arc::new(MockRevocationList::new()),
            Arc::new(attempts),
            Arc::new(SystemClock),
            LockoutPolicy::default(),
        );
        let credentials = credentials();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), service.sign_in(&credentials, CLIENT));
        assert!(abandoned.await.is_err(), "the sign-in was still waiting for its verdict");
        let keys =
            tokio::time::timeout(Duration::from_secs(5), refund).await.expect("refunded").expect("keys");
        assert_eq!(keys, [CLIENT_KEY, PAIR_KEY, USER_KEY]);
    }

    #[tokio::test]
    async fn without_a_client_address_only_the_username_budget_applies() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_is_remembered().never();
        attempts
            .expect_reserve()
            .withf(|budgets, _| keys_of(budgets) == [USER_KEY])
            .returning(|_, _| Ok(Reservation::Granted));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().returning(|_, _| Err(IdentityError::InvalidCredentials));
        let result = service(provider, attempts).sign_in(&credentials(), None).await;
        assert!(matches!(result, Err(IdentityError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn sign_in_is_refused_when_attempts_cannot_be_checked() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_is_remembered().returning(|_| Ok(false));
        attempts.expect_reserve().returning(|_, _| Err(StoreError::Unavailable("redis down".into())));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::Unavailable(_))));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), "v6:2001:db8:1:2::/64");
        assert_eq!(client_key(ip("2001:db8:1:2:ffff:1:2:3")), client_key(ip("2001:db8:1:2::9")));
        assert_ne!(client_key(ip("2001:db8:1:2::1")), client_key(ip("2001:db8:1:3::1")));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), "v4:192.0.2.7");
        assert_eq!(client_key(ip("192.0.2.7")), "v4:192.0.2.7");
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "iss".into(),
            sub: "user-1".into(),
            aud: Audience::One("api".into()),
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 900,
            jti: "jti-1".into(),
            sid: Some("sid-1".into()),
        }
    }

    async fn authenticate_with(revoked: &'static str) -> Result<Principal, AuthFailure> {
        let mut verifier = MockTokenVerifier::new();
        verifier.expect_verify_access().returning(|_| Ok(claims()));
        let mut revocations = MockRevocationList::new();
        revocations.expect_is_revoked().returning(move |id| {
            if id == "down" || revoked == "down" {
                Err(StoreError::Unavailable("down".into()))
            } else {
                Ok(id == revoked)
            }
        });
        service_with(MockIdentityProvider::new(), MockAttemptTracker::new(), verifier, revocations)
            .authenticate("token")
            .await
    }

    #[tokio::test]
    async fn authentication_honours_token_and_session_revocation() {
        let principal = authenticate_with("nothing").await.expect("valid");
        assert_eq!(principal.user_id, UserId::new("user-1"));
        assert_eq!(principal.session_id.as_deref(), Some("sid-1"));
        assert_eq!(authenticate_with("jti-1").await, Err(AuthFailure::Revoked));
        assert_eq!(authenticate_with("sid-1").await, Err(AuthFailure::Revoked));
        assert!(matches!(authenticate_with("down").await, Err(AuthFailure::Unavailable(_))));
    }

    #[tokio::test]
    async fn sign_out_revokes_the_token_then_the_session() {
        let mut revocations = MockRevocationList::new();
        revocations
            .expect_revoke()
            .withf(|id, ttl| {
                id == "jti-1" && *ttl > Duration::from_secs(900) && *ttl <= Duration::from_secs(961)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_out().times(1).returning(|_| Ok(()));
        let service =
            service_with(provider, MockAttemptTracker::new(), MockTokenVerifier::new(), revocations);
        service.sign_out(&Principal::from_claims(&claims())).await.expect("signed out");
    }
}
