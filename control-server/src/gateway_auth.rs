//! Who may ask: gateway authentication.
//!
//! A gateway identifies with HTTP Basic auth: user name = its subscription
//! identity, password = the credential the operator registered. The store
//! keeps only a salted SHA-256 of the credential. Unknown and revoked
//! gateways are refused with their own codes.
//!
//! Resolve is the hot path (≥ 10,000 requests/s), so a gateway's stored
//! record is cached for `auth_cache_ttl` and the check is one SHA-256 and a
//! constant-time compare. The price: a revocation (by the CLI, or another
//! replica) takes effect within that TTL, not instantly.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::{GatewayRecord, Store};

/// A gateway id (subscription identity): 1–128 of `[A-Za-z0-9._@-]`. No
/// `:`, which HTTP Basic auth uses to split user name and password.
pub fn validate_gateway_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("a gateway id is 1 to 128 characters, not {}", id.len()));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))) {
        return Err(format!("gateway id {id:?}: {bad:?} is not allowed (use letters, digits, '.', '_', '@', '-')"));
    }
    Ok(())
}

/// A fresh salt and the salted hash of `credential`, for storing.
pub fn hash_credential(credential: &str) -> (Vec<u8>, Vec<u8>) {
    let mut salt = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let hash = salted_hash(&salt, credential);
    (salt, hash)
}

fn salted_hash(salt: &[u8], credential: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(credential.as_bytes());
    h.finalize().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A gateway that proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedGateway {
    pub id: String,
}

/// Checks gateway credentials against the store, with a short-lived cache.
#[derive(Debug, Clone)]
pub struct GatewayAuth {
    store: Store,
    ttl: Duration,
    cache: Arc<RwLock<HashMap<String, (Instant, GatewayRecord)>>>,
}

impl GatewayAuth {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl, cache: Arc::default() }
    }

    /// Authenticates the request's `Authorization: Basic …` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthenticatedGateway, ApiError> {
        let (id, credential) = basic_credentials(headers)?;
        let record = self.record(&id).await?;
        let Some(record) = record else {
            return Err(ApiError::UnknownGateway(format!("gateway {id:?} is not registered")));
        };
        if !constant_time_eq(&salted_hash(&record.credential_salt, &credential), &record.credential_hash) {
            return Err(ApiError::Unauthenticated(format!("wrong credential for gateway {id:?}")));
        }
        if record.revoked {
            return Err(ApiError::RevokedGateway(format!("gateway {id:?} has been revoked")));
        }
        Ok(AuthenticatedGateway { id })
    }

    async fn record(&self, id: &str) -> Result<Option<GatewayRecord>, ApiError> {
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, record)) = cache.get(id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(record.clone()));
            }
        }
        let record = self.store.gateway(id).await?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        match &record {
            Some(r) if !self.ttl.is_zero() => {
                cache.insert(id.to_owned(), (Instant::now(), r.clone()));
            }
            _ => {
                cache.remove(id);
            }
        }
        Ok(record)
    }
}

/// The user name and password of an HTTP Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let missing = || ApiError::Unauthenticated("HTTP Basic authentication is required (gateway id and credential)".into());
    let value = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| ApiError::Unauthenticated("Authorization header is not ASCII".into()))?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| ApiError::Unauthenticated("only HTTP Basic authentication is accepted".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::Unauthenticated("Basic credentials are not valid base64".into()))?;
    let text =
        String::from_utf8(decoded).map_err(|_| ApiError::Unauthenticated("Basic credentials are not UTF-8".into()))?;
    let (id, credential) =
        text.split_once(':').ok_or_else(|| ApiError::Unauthenticated("Basic credentials lack a ':'".into()))?;
    if validate_gateway_id(id).is_err() {
        return Err(ApiError::UnknownGateway(format!("{id:?} is not a gateway id")));
    }
    Ok((id.to_owned(), credential.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_and_verify() {
        let (salt_a, hash_a) = hash_credential("secret");
        let (salt_b, hash_b) = hash_credential("secret");
        assert_ne!(hash_a, hash_b);
        assert!(constant_time_eq(&salted_hash(&salt_a, "secret"), &hash_a));
        assert!(!constant_time_eq(&salted_hash(&salt_b, "secreT"), &hash_b));
    }

    #[test]
    fn parses_basic_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers).unwrap_err().code(), "unauthenticated");
        let token = base64::engine::general_purpose::STANDARD.encode("gw-1:pa:ss");
        headers.insert("authorization", format!("Basic {token}").parse().unwrap());
        assert_eq!(basic_credentials(&headers).unwrap(), ("gw-1".to_owned(), "pa:ss".to_owned()));
        headers.insert("authorization", "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&headers).unwrap_err().code(), "unauthenticated");
    }

    #[test]
    fn gateway_ids_are_checked() {
        assert!(validate_gateway_id("gw-1").is_ok());
        assert!(validate_gateway_id("").is_err());
        assert!(validate_gateway_id("a:b").is_err());
    }
}
