//! Users and the rules their sign-up data must satisfy.

use std::fmt;

use chrono::{DateTime, Utc};
use galley_kernel::{UserId, Violation, Violations};
use serde::{Deserialize, Serialize};
use validator::ValidateEmail;

pub mod limits {
    pub const USERNAME_MIN_CHARS: usize = 3;
    pub const USERNAME_MAX_CHARS: usize = 32;
    pub const PASSWORD_MIN_CHARS: usize = 8;
    /// Bounds the work an attacker can make the hasher do with one request.
    pub const PASSWORD_MAX_CHARS: usize = 128;
    pub const EMAIL_MAX_CHARS: usize = 254;
    pub const GIVEN_NAME_MAX_CHARS: usize = 100;
    /// Sign-in refuses longer usernames and passwords before any store lookup or hashing: nothing that
    /// long can be an account (sign-up allows less), and an unbounded password would let one request
    /// make the hasher read megabytes. Bytes, not characters, because bytes are what costs.
    pub const SIGN_IN_USERNAME_MAX_BYTES: usize = 64;
    pub const SIGN_IN_PASSWORD_MAX_BYTES: usize = 1024;
    /// A password must contain at least one of these (rule kept from the original system).
    pub const PASSWORD_SPECIALS: &str = "@!*&#$";
}

/// A password as typed. Never printed: `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The characters, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// As the user typed it (display form).
    pub username: String,
    /// Lower-cased email.
    pub email: String,
    pub given_name: Option<String>,
    /// PHC string (`$argon2id$v=19$m=...`), never exposed through the API.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The uniqueness key for usernames: `Alice` and `alice` are the same account.
    pub fn username_key(username: &str) -> String {
        username.to_lowercase()
    }

    pub fn profile(&self) -> Profile {
        Profile {
            id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            given_name: self.given_name.clone(),
            created_at: self.created_at,
        }
    }
}

/// What a user may see about themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub given_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Sign-up data exactly as sent; every field optional so all problems are reported together.
#[derive(Debug, Clone, Default)]
pub struct SignUpInput {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<Password>,
    pub given_name: Option<String>,
}

/// Sign-up data that satisfies every rule; made only by [`SignUp::parse`].
#[derive(Debug, Clone)]
pub struct SignUp {
    pub email: String,
    pub username: String,
    pub password: Password,
    pub given_name: Option<String>,
}

impl SignUp {
    /// Checks email syntax, username (letters only, 3..32), password (8..128 characters with at least one
    /// of `@!*&#$`) and the optional given name, reporting every broken rule.
    pub fn parse(input: SignUpInput) -> Result<Self, Violations> {
        use limits::*;
        let mut violations = Violations::new();

        let email = input.email.map(|e| e.trim().to_lowercase());
        match &email {
            None => violations.push(Violation::new("email", "required")),
            Some(email) if email.is_empty() => violations.push(Violation::new("email", "blank")),
            Some(email) if email.chars().count() > EMAIL_MAX_CHARS => {
                violations.push(Violation::new("email", "too_long").with("max", EMAIL_MAX_CHARS));
            }
            Some(email) if !email.validate_email() => {
                violations.push(Violation::new("email", "invalid_email"))
            }
            Some(_) => {}
        }

        let username = input.username.map(|u| u.trim().to_owned());
        match &username {
            None => violations.push(Violation::new("username", "required")),
            Some(username) => {
                let length = username.chars().count();
                if length < USERNAME_MIN_CHARS {
                    violations.push(Violation::new("username", "too_short").with("min", USERNAME_MIN_CHARS));
                } else if length > USERNAME_MAX_CHARS {
                    violations.push(Violation::new("username", "too_long").with("max", USERNAME_MAX_CHARS));
                }
                // ASCII letters only, as in the original system: no look-alike Unicode account names.
                if !username.chars().all(|c| c.is_ascii_alphabetic()) {
                    violations.push(Violation::new("username", "letters_only"));
                }
            }
        }

        match &input.password {
            None => violations.push(Violation::new("password", "required")),
            Some(password) => {
                let length = password.expose().chars().count();
                if length < PASSWORD_MIN_CHARS {
                    violations.push(Violation::new("password", "too_short").with("min", PASSWORD_MIN_CHARS));
                } else if length > PASSWORD_MAX_CHARS {
                    violations.push(Violation::new("password", "too_long").with("max", PASSWORD_MAX_CHARS));
                }
                if !password.expose().chars().any(|c| PASSWORD_SPECIALS.contains(c)) {
                    violations.push(
                        Violation::new("password", "missing_special_character")
                            .with("allowed", PASSWORD_SPECIALS),
                    );
                }
            }
        }

        let given_name = input.given_name.map(|g| g.trim().to_owned()).filter(|g| !g.is_empty());
        if given_name.as_ref().is_some_and(|g| g.chars().count() > GIVEN_NAME_MAX_CHARS) {
            violations.push(Violation::new("given_name", "too_long").with("max", GIVEN_NAME_MAX_CHARS));
        }

        match (email, username, input.password) {
            (Some(email), Some(username), Some(password)) if violations.is_empty() => {
                Ok(Self { email, username, password, given_name })
            }
            _ => Err(violations),
        }
    }
}

/// Sign-in data. Only presence and size are checked: revealing the sign-up rules here would help
/// guessing, but sizes are capped ([`limits::SIGN_IN_USERNAME_MAX_BYTES`],
/// [`limits::SIGN_IN_PASSWORD_MAX_BYTES`]) so an over-long request is refused before any work.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

impl Credentials {
    pub fn parse(username: Option<String>, password: Option<Password>) -> Result<Self, Violations> {
        use limits::*;
        let mut violations = Violations::new();
        let username = username.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        match &username {
            None => violations.push(Violation::new("username", "required")),
            Some(username) if username.len() > SIGN_IN_USERNAME_MAX_BYTES => violations
                .push(Violation::new("username", "too_many_bytes").with("max", SIGN_IN_USERNAME_MAX_BYTES)),
            Some(_) => {}
        }
        let password = password.filter(|p| !p.expose().is_empty());
        match &password {
            None => violations.push(Violation::new("password", "required")),
            Some(password) if password.expose().len() > SIGN_IN_PASSWORD_MAX_BYTES => violations
                .push(Violation::new("password", "too_many_bytes").with("max", SIGN_IN_PASSWORD_MAX_BYTES)),
            Some(_) => {}
        }
        match (username, password) {
            (Some(username), Some(password)) if violations.is_empty() => Ok(Self { username, password }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(email: &str, username: &str, password: &str) -> SignUpInput {
        SignUpInput {
            email: Some(email.into()),
            username: Some(username.into()),
            password: Some(Password::new(password)),
            given_name: None,
        }
    }

    #[test]
    fn accepts_and_normalises_a_valid_sign_up() {
        let sign_up = SignUp::parse(input(" Alice@Example.COM ", "Alice", "s3cret!pass")).expect("valid");
        assert_eq!(sign_up.email, "alice@example.com");
        assert_eq!(sign_up.username, "Alice");
    }

    #[test]
    fn reports_every_broken_rule() {
        let violations = SignUp::parse(input("not-an-email", "al1", "short")).expect_err("invalid");
        assert!(violations.contains("email", "invalid_email"));
        assert!(violations.contains("username", "letters_only"));
        assert!(violations.contains("password", "too_short"));
        assert!(violations.contains("password", "missing_special_character"));
        assert_eq!(violations.len(), 4, "{violations}");
    }

    #[test]
    fn reports_missing_fields() {
        let violations = SignUp::parse(SignUpInput::default()).expect_err("invalid");
        assert!(violations.contains("email", "required"));
        assert!(violations.contains("username", "required"));
        assert!(violations.contains("password", "required"));
    }

    #[test]
    fn username_length_bounds() {
        assert!(
            SignUp::parse(input("a@b.co", "ab", "password!"))
                .expect_err("short")
                .contains("username", "too_short")
        );
        let long = "a".repeat(33);
        assert!(
            SignUp::parse(input("a@b.co", &long, "password!"))
                .expect_err("long")
                .contains("username", "too_long")
        );
        assert!(SignUp::parse(input("a@b.co", "abc", "password!")).is_ok());
        assert!(
            SignUp::parse(input("a@b.co", "Ängel", "password!"))
                .expect_err("ascii")
                .contains("username", "letters_only")
        );
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        let long = format!("{}!", "a".repeat(200));
        assert!(
            SignUp::parse(input("a@b.co", "abc", &long)).expect_err("long").contains("password", "too_long")
        );
        let printed = format!("{:?}", input("a@b.co", "abc", "hunter2!x"));
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn credentials_need_both_parts() {
        let violations = Credentials::parse(Some(" ".into()), None).expect_err("invalid");
        assert!(violations.contains("username", "required"));
        assert!(violations.contains("password", "required"));
        assert!(Credentials::parse(Some("bob".into()), Some(Password::new("x"))).is_ok());
    }

    #[test]
    fn over_long_credentials_are_refused_by_their_size_in_bytes() {
        use limits::*;
        let at_limit = Credentials::parse(
            Some("a".repeat(SIGN_IN_USERNAME_MAX_BYTES)),
            Some(Password::new("p".repeat(SIGN_IN_PASSWORD_MAX_BYTES))),
        );
        assert!(at_limit.is_ok(), "the limits themselves are allowed");
        // 33 two-byte characters: 66 bytes, fewer than 64 characters would suggest.
        let violations = Credentials::parse(
            Some("é".repeat(33)),
            Some(Password::new("p".repeat(SIGN_IN_PASSWORD_MAX_BYTES + 1))),
        )
        .expect_err("too long");
        assert!(violations.contains("username", "too_many_bytes"), "{violations}");
        assert!(violations.contains("password", "too_many_bytes"), "{violations}");
        assert_eq!(violations.len(), 2);
    }
}
