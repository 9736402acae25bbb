//! Who may act, and what they did: API tokens, browser sessions and the audit log, kept in
//! the store. What a role may do is [`crate::auth`]'s business; this is only where the
//! records live.

use super::Engine;
use crate::auth::{Role, TokenRecord};
use crate::store::Write;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// A browser session, stored under the hash of its id (the id itself is only in the
/// browser's cookie). Kept in the store, so every runner sharing the database knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// The hash of the API token signed in with; `None` for a local-mode session (a server
    /// on loopback with no token), which ends as soon as a token exists.
    pub token_hash: Option<String>,
    /// Who a local-mode session says it is; a token's session is its token's name.
    pub name: String,
    /// The token every form of this session carries, against cross-site requests.
    pub csrf: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session ends, however active it is.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A random 256-bit value as hex: session ids and CSRF tokens.
fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for a session: {e}"))?;
    Ok(hex::encode(bytes))
}

impl Engine {
    /// Creates and stores a token; returns the secret (to show once) and the record.
    pub async fn create_token(
        &self,
        name: &str,
        roles: Vec<Role>,
        groups: Vec<String>,
    ) -> Result<(String, TokenRecord)> {
        if roles.is_empty() {
            bail!("a token needs at least one role: admin, author, operator or approver");
        }
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        };
        if !valid(name) {
            bail!("invalid token name {name:?}: use letters, digits, `.`, `_`, `-` or `@` (at most 64)");
        }
        if let Some(bad) = groups.iter().find(|g| !valid(g)) {
            bail!("invalid group name {bad:?}: use letters, digits, `.`, `_`, `-` or `@`");
        }
        let (secret, hash) = crate::auth::new_secret()?;
        let record = TokenRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            roles: crate::auth::normalize_roles(roles),
            groups,
            created_at: crate::run::now(),
            revoked_at: None,
        };
        let doc = serde_json::to_vec(&record)?;
        self.inner.store.commit(vec![Write::Token { hash, doc }]).await?;
        Ok((secret, record))
    }

    /// Revokes every active token whose id or name is `which`; returns how many. It stops
    /// working at once on every runner: tokens are read from the store on every request.
    pub async fn revoke_token(&self, which: &str) -> Result<usize> {
        let now = crate::run::now();
        let mut writes = Vec::new();
        for (hash, mut record) in self.token_records().await? {
            if record.revoked_at.is_none() && (record.id == which || record.name == which) {
                record.revoked_at = Some(now);
                writes.push(Write::Token {
                    hash,
                    doc: serde_json::to_vec(&record)?,
                });
            }
        }
        let count = writes.len();
        self.inner.store.commit(writes).await?;
        Ok(count)
    }

    /// Every token, oldest first (never their secrets, which are not stored).
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.token_records().await?.into_iter().map(|(_, t)| t).collect())
    }

    async fn token_records(&self) -> Result<Vec<(String, TokenRecord)>> {
        let mut all = Vec::new();
        for (hash, doc) in self.inner.store.tokens().await? {
            let record: TokenRecord =
                serde_json::from_slice(&doc).map_err(|e| anyhow!("a stored token is unreadable: {e}"))?;
            all.push((hash, record));
        }
        all.sort_by_key(|(_, t)| t.created_at);
        Ok(all)
    }

    /// The token a presented secret is, revoked or not.
    pub async fn token(&self, secret: &str) -> Result<Option<TokenRecord>> {
        let Some(doc) = self.inner.store.token(&crate::auth::hash(secret)).await? else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_slice(&doc).map_err(|e| anyhow!("a stored token is unreadable: {e}"))?,
        ))
    }

    /// Whether any token was ever created; until then a loopback server runs in local mode.
    pub async fn has_tokens(&self) -> Result<bool> {
        Ok(self.inner.store.has_tokens().await?)
    }

    /// Opens a browser session for the holder of the API token `token` (already checked by
    /// the caller), or a local-mode session without one, lasting `lifetime`. Returns the
    /// session's id, to hand to the browser once; the store keeps only its hash.
    pub async fn open_session(
        &self,
        token: Option<&str>,
        name: &str,
        lifetime: std::time::Duration,
    ) -> Result<(String, Session)> {
        let id = random_hex()?;
        let now = crate::run::now();
        let session = Session {
            token_hash: token.map(crate::auth::hash),
            name: name.to_owned(),
            csrf: random_hex()?,
            created_at: now,
            expires_at: now + lifetime,
        };
        self.store_session(&id, &session).await?;
        Ok((id, session))
    }

    /// The session `id` with the token it was opened with, if it is still good: not ended,
    /// not expired, and its token not revoked (a revoked token ends its sessions, on every
    /// runner, at their next request). A session found bad is removed.
    pub async fn session(&self, id: &str) -> Result<Option<(Session, Option<TokenRecord>)>> {
        let key = crate::auth::hash(id);
        let Some(doc) = self.inner.store.session(&key).await? else {
            return Ok(None);
        };
        let session: Session =
            serde_json::from_slice(&doc).map_err(|e| anyhow!("a stored session is unreadable: {e}"))?;
        let token = match &session.token_hash {
            Some(hash) => match self.inner.store.token(hash).await? {
                Some(doc) => Some(
                    serde_json::from_slice::<TokenRecord>(&doc)
                        .map_err(|e| anyhow!("a stored token is unreadable: {e}"))?,
                ),
                None => None,
            },
            None => None,
        };
        let revoked = session.token_hash.is_some() && token.as_ref().is_none_or(|t| t.revoked_at.is_some());
        if revoked || session.expires_at <= crate::run::now() {
            self.end_session(id).await?;
            return Ok(None);
        }
        Ok(Some((session, token)))
    }

    /// Renames a local-mode session's person.
    pub async fn rename_session(&self, id: &str, session: &Session, name: &str) -> Result<Session> {
        let renamed = Session {
            name: name.to_owned(),
            ..session.clone()
        };
        self.store_session(id, &renamed).await?;
        Ok(renamed)
    }

    /// Ends the session `id` (signing out); ending one that does not exist is no error.
    pub async fn end_session(&self, id: &str) -> Result<()> {
        let write = Write::Session {
            id: crate::auth::hash(id),
            doc: None,
        };
        Ok(self.inner.store.commit(vec![write]).await?)
    }

    async fn store_session(&self, id: &str, session: &Session) -> Result<()> {
        let write = Write::Session {
            id: crate::auth::hash(id),
            doc: Some(serde_json::to_vec(session)?),
        };
        Ok(self.inner.store.commit(vec![write]).await?)
    }

    /// Records an audit entry with the next commit, without waiting for it.
    pub fn record_audit(&self, entry: &Value) {
        self.inner
            .store
            .enqueue(vec![Write::Audit(entry.to_string().into_bytes())]);
    }

    /// Waits until everything queued so far (audit entries) is committed.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.inner.store.flush().await?)
    }

    /// Up to `limit` audit entries after sequence number `after`, including every entry
    /// recorded before this call.
    pub async fn audit(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Value)>> {
        self.inner
            .store
            .audit(after, limit)
            .await?
            .into_iter()
            .map(|(seq, doc)| Ok((seq, serde_json::from_slice(&doc)?)))
            .collect()
    }
}
