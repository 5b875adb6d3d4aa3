//! Token administration behind `prism-server token create|list|revoke`.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::core::auth::{generate_token, hash_token};
use crate::core::clock::rfc3339;
use crate::store::{Store, StoreError, TokenRecord};

/// Failure of a token command.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The owner name is unusable.
    #[error("owner must be 1-64 characters of letters, digits, '-', '_' or '.', got {0:?}")]
    InvalidOwner(String),
    /// No active token has that id.
    #[error("no active token with id {0} (see 'prism-server token list')")]
    UnknownToken(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for `owner`; returns its record and the token text, shown only once.
pub async fn create(
    store: &dyn Store,
    owner: &str,
    admin: bool,
    now: SystemTime,
) -> Result<(TokenRecord, String), TokenError> {
    let valid_owner = (1..=64).contains(&owner.len())
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_owner {
        return Err(TokenError::InvalidOwner(owner.to_owned()));
    }
    let token = generate_token();
    let record = store
        .create_token(owner.to_owned(), admin, hash_token(&token), now)
        .wait()
        .await?;
    Ok((record, token))
}

/// Revokes the active token `id`.
pub async fn revoke(store: &dyn Store, id: i64, now: SystemTime) -> Result<(), TokenError> {
    if store.revoke_token(id, now).wait().await? {
        Ok(())
    } else {
        Err(TokenError::UnknownToken(id))
    }
}

/// A table of tokens for `token list`; never shows a token or its hash.
pub fn format_table(tokens: &[TokenRecord]) -> String {
    let mut table = format!(
        "{:>4}  {:<20}  {:<5}  {:<24}  {}\n",
        "ID", "OWNER", "ADMIN", "CREATED", "REVOKED"
    );
    for token in tokens {
        let _ = writeln!(
            table,
            "{:>4}  {:<20}  {:<5}  {:<24}  {}",
            token.id,
            token.owner,
            if token.admin { "yes" } else { "no" },
            rfc3339(token.created_at),
            token.revoked_at.map_or_else(|| "-".to_owned(), rfc3339),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::from_unix_millis;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn create_list_revoke_round_trip() {
        let store = MemoryStore::new();
        let (record, token) = create(&store, "alice", false, from_unix_millis(0))
            .await
            .expect("create");
        let table = format_table(&store.list_tokens().wait().await.expect("list"));
        assert!(table.contains("alice"), "{table}");
        assert!(!table.contains(&token), "the token must never be listed");
        revoke(&store, record.id, from_unix_millis(1))
            .await
            .expect("revoke");
        assert!(matches!(
            revoke(&store, record.id, from_unix_millis(2)).await,
            Err(TokenError::UnknownToken(_))
        ));
    }

    #[tokio::test]
    async fn refuses_unusable_owner_names() {
        let store = MemoryStore::new();
        for owner in ["", "has space", &"x".repeat(65)] {
            assert!(matches!(
                create(&store, owner, false, from_unix_millis(0)).await,
                Err(TokenError::InvalidOwner(_))
            ));
        }
    }
}
