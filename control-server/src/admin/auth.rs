//! The admin credential: one bearer token, distinct from every gateway
//! credential, for the admin API and the console.
//!
//! `control-server admin-token` makes a random token, prints it once and
//! stores only a salted SHA-256 of it (like gateway credentials: an
//! operator-issued random secret, not a password, so a slow hash buys
//! nothing). The API takes `Authorization: Bearer <token>`; the check is
//! one SHA-256 and a constant-time compare. With no token stored, the admin
//! API and the console are off (and the server says so at start-up).
//!
//! The console does not keep the token in the browser: logging in sets a
//! session cookie `HMAC-SHA256(key = the stored hash, expiry)`. Every
//! replica can check it without shared session state, and rotating or
//! removing the token ends every session.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// How long a console session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// The console's session cookie.
pub const SESSION_COOKIE: &str = "cs_admin_session";

/// A fresh admin token: `csadm_` and 64 hex digits (256 random bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("csadm_{}", hex::encode(bytes))
}

/// Stores `token` as the admin credential (replacing any), salted and hashed.
pub async fn set_token(store: &Store, token: &str) -> Result<(), StoreError> {
    let (salt, hash) = crate::gateway_auth::hash_credential(token);
    store.set_admin_credential(Some((&salt, &hash)), crate::clock::now_ms()).await?;
    Ok(())
}

/// Removes the admin credential: the admin API and console turn off. False
/// if there was none.
pub async fn remove_token(store: &Store) -> Result<bool, StoreError> {
    store.set_admin_credential(None, crate::clock::now_ms()).await
}

fn salted_hash(salt: &[u8], token: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(token.as_bytes());
    h.finalize().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No admin credential is stored: the admin API and console are off.
    Off,
    /// No or a wrong credential.
    Unauthenticated(String),
}

/// The stored admin credential: (salt, hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Credential {
    pub fn verifies(&self, token: &str) -> bool {
        constant_time_eq(&salted_hash(&self.salt, token), &self.hash)
    }

    /// A session cookie value valid until `expires_ms`.
    pub fn session(&self, expires_ms: i64) -> String {
        let mac = hmac_sha256(&self.hash, format!("session:{expires_ms}").as_bytes());
        format!("{expires_ms}.{}", hex::encode(mac))
    }

    /// Whether a session cookie value is ours and not expired at `now_ms`.
    pub fn session_valid(&self, value: &str, now_ms: i64) -> bool {
        let Some((expires, mac)) = value.split_once('.') else { return false };
        let Ok(expires_ms) = expires.parse::<i64>() else { return false };
        let Ok(mac) = hex::decode(mac) else { return false };
        let expected = hmac_sha256(&self.hash, format!("session:{expires_ms}").as_bytes());
        constant_time_eq(&mac, &expected) && now_ms < expires_ms
    }
}

/// The credential as last read, and when.
type Cached = Option<(Instant, Option<Credential>)>;

/// Checks admin credentials against the store, caching the stored one for
/// the gateway auth cache's TTL (so a token set or rotated by the CLI takes
/// effect on a running server within it).
#[derive(Debug, Clone)]
pub struct AdminAuth {
    store: Store,
    ttl: Duration,
    cache: Arc<RwLock<Cached>>,
}

impl AdminAuth {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl, cache: Arc::default() }
    }

    /// The stored credential, if any.
    pub async fn credential(&self) -> Result<Option<Credential>, StoreError> {
        if let Some((at, cred)) = self.cache.read().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(cred.clone());
        }
        let cred = self.store.admin_credential().await?.map(|(salt, hash)| Credential { salt, hash });
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), cred.clone()));
        Ok(cred)
    }

    /// Checks `Authorization: Bearer <admin token>`.
    pub async fn check_bearer(&self, headers: &HeaderMap) -> Result<Result<(), Refusal>, StoreError> {
        let Some(cred) = self.credential().await? else { return Ok(Err(Refusal::Off)) };
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Err(Refusal::Unauthenticated(
                "the admin API needs `Authorization: Bearer <admin token>` (made by `control-server admin-token`)".into(),
            )));
        };
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let Some(token) = token else {
            return Ok(Err(Refusal::Unauthenticated(
                "the admin API takes a bearer token (`Authorization: Bearer …`), not gateway credentials".into(),
            )));
        };
        if !cred.verifies(token.trim()) {
            return Ok(Err(Refusal::Unauthenticated(
                "wrong admin token; `control-server admin-token` makes a new one".into(),
            )));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(token: &str) -> Credential {
        let (salt, hash) = crate::gateway_auth::hash_credential(token);
        Credential { salt, hash }
    }

    #[test]
    fn tokens_verify_and_sessions_are_bound_to_the_credential() {
        let token = generate_token();
        assert_eq!(token.len(), 6 + 64);
        let c = cred(&token);
        assert!(c.verifies(&token));
        assert!(!c.verifies("csadm_0"));
        let session = c.session(2_000);
        assert!(c.session_valid(&session, 1_000));
        assert!(!c.session_valid(&session, 2_000), "expired");
        assert!(!cred(&token).session_valid(&session, 1_000), "another salt: another key");
        assert!(!c.session_valid("3000.00", 1_000));
        assert!(!c.session_valid("garbage", 1_000));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
