//! Who may change the registry: HTTP basic auth on every request that changes state.
//!
//! A writer registers the schemas every producer and consumer trusts, so a write is only
//! accepted with the configured `user:password` (Confluent's `basic.auth.user.info`).
//! Reads, including lookups and compatibility tests (POSTs that change nothing), stay open:
//! every client needs them and they reveal nothing a record's schema id does not.

use std::fmt;
use std::str::FromStr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::RegistryError;

/// The one user allowed to write, and their password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name clients send.
    pub username: String,
    /// The password; never printed.
    password: String,
}

impl Credentials {
    /// Credentials for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Whether `headers` carry these credentials as HTTP basic auth.
    fn admit(&self, headers: &HeaderMap) -> bool {
        let Some(sent) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
        else {
            return false;
        };
        let expected = format!("{}:{}", self.username, self.password);
        constant_time_eq(&sent, expected.as_bytes())
    }
}

impl FromStr for Credentials {
    type Err = String;

    /// Parses `user:password` (the password may itself contain `:`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok(Self::new(user, password))
            }
            _ => Err("expected user:password, both non-empty".to_owned()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:<redacted>)", self.username)
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell a
/// guesser how much of the password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware of the write routes: passes requests carrying the writer's credentials,
/// answers every other one 401 (40101) before its body is read. Without configured
/// credentials nobody may write.
pub async fn require_writer(
    State(writer): State<Option<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    if writer.is_some_and(|writer| writer.admit(request.headers())) {
        return next.run(request).await;
    }
    let mut response = RegistryError::Unauthorized.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"echo-schema-registry\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_info: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(user_info));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_user_and_password_are_admitted() {
        let writer: Credentials = "echo:s3cret:x".parse().unwrap();
        assert_eq!(writer.username, "echo");
        assert!(writer.admit(&basic("echo:s3cret:x")));
        assert!(!writer.admit(&basic("echo:s3cret")));
        assert!(!writer.admit(&basic("other:s3cret:x")));
        assert!(!writer.admit(&HeaderMap::new()));
        assert!(!format!("{writer:?}").contains("s3cret"));
        assert!("nopassword".parse::<Credentials>().is_err());
        assert!(":x".parse::<Credentials>().is_err());
        assert!("x:".parse::<Credentials>().is_err());
    }
}
