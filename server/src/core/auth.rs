//! Tokens and ownership: SHA-256 hashing at rest, an in-memory cache for the hot path.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::AuthMode;
use crate::store::{TokenHash, TokenRecord};

/// Owner of every host registered while `auth.mode = "open"`.
pub const OPEN_MODE_OWNER: &str = "open";
/// Prefix of every token, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "prism_";

/// Hashes a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash::from_bytes(Sha256::digest(token.as_bytes()).into())
}

/// A new random token: the prefix and 256 bits of randomness in hex.
pub fn generate_token() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{TOKEN_PREFIX}{}", hex::encode(secret))
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The owner name that hosts are attributed to.
    pub owner: Arc<str>,
    /// Admins see every host in the API.
    pub admin: bool,
}

/// Why authentication failed. One message for unknown and revoked tokens, so the response
/// does not reveal which tokens once existed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `auth_token` in token mode.
    #[error(
        "authentication required: send 'auth_token' (create one with 'prism-server token create')"
    )]
    MissingToken,
    /// Unknown or revoked token.
    #[error("authentication failed: token is not valid or has been revoked")]
    InvalidToken,
}

/// Checks tokens against a cache of the active ones, refreshed from the store.
#[derive(Debug)]
pub struct Authenticator {
    /// Token mode or open mode.
    mode: AuthMode,
    /// Active tokens by hash; replaced whole on refresh.
    active: RwLock<HashMap<TokenHash, Principal>>,
}

impl Authenticator {
    /// An authenticator with no tokens yet.
    pub fn new(mode: AuthMode) -> Self {
        Self {
            mode,
            active: RwLock::new(HashMap::new()),
        }
    }

    /// Replaces the cache with the active (unrevoked) tokens among `tokens`.
    pub fn replace_tokens(&self, tokens: &[TokenRecord]) {
        let active = tokens
            .iter()
            .filter(|token| token.revoked_at.is_none())
            .map(|token| {
                (
                    token.hash,
                    Principal {
                        owner: token.owner.as_str().into(),
                        admin: token.admin,
                    },
                )
            })
            .collect();
        *self
            .active
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = active;
    }

    /// The principal a request acts for, on the registration port and in the API alike. In
    /// open mode (development and simulation only) no token is needed and every caller is
    /// the owner `open` with admin rights: it registers any free name and sees every host.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        if self.mode == AuthMode::Open {
            return Ok(Principal {
                owner: OPEN_MODE_OWNER.into(),
                admin: true,
            });
        }
        let token = token.ok_or(AuthError::MissingToken)?;
        self.active
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hash_token(token))
            .cloned()
            .ok_or(AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::from_unix_millis;

    fn record(id: i64, token: &str, revoked: bool) -> TokenRecord {
        TokenRecord {
            id,
            owner: format!("owner-{id}"),
            admin: false,
            hash: hash_token(token),
            created_at: from_unix_millis(0),
            revoked_at: revoked.then(|| from_unix_millis(1)),
        }
    }

    #[test]
    fn generated_tokens_are_distinct_and_prefixed() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
    }

    #[test]
    fn accepts_active_tokens_and_refuses_revoked_and_unknown_ones() {
        let auth = Authenticator::new(AuthMode::Token);
        auth.replace_tokens(&[record(1, "good", false), record(2, "old", true)]);
        assert_eq!(
            auth.authenticate(Some("good")).map(|p| p.owner),
            Ok(Arc::from("owner-1"))
        );
        assert_eq!(auth.authenticate(Some("old")), Err(AuthError::InvalidToken));
        assert_eq!(
            auth.authenticate(Some("nope")),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(auth.authenticate(None), Err(AuthError::MissingToken));
    }

    #[test]
    fn open_mode_needs_no_token_and_sees_everything() {
        let auth = Authenticator::new(AuthMode::Open);
        assert_eq!(
            auth.authenticate(None),
            Ok(Principal {
                owner: Arc::from(OPEN_MODE_OWNER),
                admin: true
            })
        );
    }
}
