//! Who may act, and what they did: API tokens and the audit log, kept in the store. What a
//! role may do is [`crate::auth`]'s business; this is only where the records live.

use super::Engine;
use crate::auth::{Role, TokenRecord};
use crate::store::Write;
use anyhow::{anyhow, bail, Result};
use serde_json::Value;

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
