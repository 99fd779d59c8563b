//! Validating an association with its SP, following redirects.
//!
//! The control server asks `POST {base_url}/v1/validate` with the device id,
//! service type, asking gateway and its geo-location. The SP confirms,
//! rejects, or redirects to another SP; a redirect is validated again with
//! that SP (which must be registered), up to `max_redirects` hops. A chain
//! that comes back to an SP it already visited (A → B → A) is a loop and
//! ends with an error instead of going round. Every call has a timeout.
//!
//! Redirects are verdicts only: an HTTP `3xx` is not followed (it would send
//! the device id, gateway id and geo to any URL and take the verdict answered
//! there) but refused as a misbehaving SP ([`ValidationError::HttpRedirect`]).
//! An answer is read up to [`SP_ANSWER_MAX`] bytes
//! ([`ValidationError::AnswerTooLarge`] beyond).

use std::time::Duration;

use control_api::http_client::{BodyError, client_builder, read_body};
use control_api::routes;
use control_api::sp::{ValidateRequest, Verdict};
use sp_bound_id::SpIdentity;

use crate::error::ApiError;
use crate::limits::SP_ANSWER_MAX;
use crate::store::{Store, StoreError};

/// Why a validation chain ended without a confirmation.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("SP {sp} rejected the association: {reason}")]
    Rejected { sp: String, reason: String },
    #[error("SP {sp} did not answer within {timeout:?}")]
    Timeout { sp: String, timeout: Duration },
    #[error("SP {sp} is unreachable: {detail}")]
    Unreachable { sp: String, detail: String },
    #[error("SP {sp} gave an answer that is not a verdict: {detail}")]
    BadAnswer { sp: String, detail: String },
    #[error(
        "SP {sp} answered with an HTTP redirect ({status}{}); it is not followed: an SP redirects with a \
         redirect verdict naming a registered SP",
        location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default()
    )]
    HttpRedirect { sp: String, status: u16, location: Option<String> },
    #[error("SP {sp} answered more than {limit} bytes; a verdict is a short JSON object")]
    AnswerTooLarge { sp: String, limit: usize },
    #[error("SP {sp} is not registered with this control server (chain {chain:?})")]
    Unregistered { sp: String, chain: Vec<String> },
    #[error("redirect loop: {}", chain.join(" → "))]
    Loop { chain: Vec<String> },
    #[error("more than {max} redirects: {}", chain.join(" → "))]
    TooManyRedirects { max: usize, chain: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ValidationError {
    /// Whether the SP could not be asked at all (the case a stale-allowed
    /// policy covers).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Unreachable { .. })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let text = e.to_string();
        match e {
            ValidationError::Rejected { .. } => ApiError::SpRejected(text),
            ValidationError::Timeout { .. } => ApiError::SpTimeout(text),
            ValidationError::Unreachable { .. } => ApiError::SpUnreachable(text),
            ValidationError::BadAnswer { .. }
            | ValidationError::HttpRedirect { .. }
            | ValidationError::AnswerTooLarge { .. } => ApiError::SpBadAnswer(text),
            ValidationError::Unregistered { .. } => ApiError::UnregisteredTargetSp(text),
            ValidationError::Loop { .. } => ApiError::RedirectLoop(text),
            ValidationError::TooManyRedirects { .. } => ApiError::TooManyRedirects(text),
            ValidationError::Store(e) => e.into(),
        }
    }
}

/// A confirmed association: the SP that confirmed and the SPs asked on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub sp: String,
    pub chain: Vec<String>,
}

/// Calls SPs.
#[derive(Debug, Clone)]
pub struct SpClient {
    http: reqwest::Client,
    timeout: Duration,
    max_redirects: usize,
    /// Counts every call's outcome (`control_sp_validations_total`).
    metrics: std::sync::Arc<crate::metrics::ControlMetrics>,
}

impl SpClient {
    /// Fails only if the TLS backend cannot be set up.
    pub fn new(timeout: Duration, max_redirects: usize) -> Result<Self, reqwest::Error> {
        let http = client_builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(Self { http, timeout, max_redirects, metrics: Default::default() })
    }

    /// Counts call outcomes in `metrics` (the server's) instead of a private set.
    pub(crate) fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::ControlMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// One validation call to one SP.
    pub async fn validate_once(&self, sp: &str, base_url: &str, request: &ValidateRequest) -> Result<Verdict, ValidationError> {
        let url = format!("{}{}", base_url.trim_end_matches('/'), routes::SP_VALIDATE);
        let answer = self.http.post(&url).json(request).send().await.map_err(|e| self.call_error(sp, e))?;
        let status = answer.status();
        if status.is_redirection() {
            let location = answer.headers().get(reqwest::header::LOCATION).map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
            return Err(ValidationError::HttpRedirect { sp: sp.to_owned(), status: status.as_u16(), location });
        }
        if status.is_server_error() {
            return Err(ValidationError::Unreachable { sp: sp.to_owned(), detail: format!("HTTP {status}") });
        }
        if !status.is_success() {
            return Err(ValidationError::BadAnswer { sp: sp.to_owned(), detail: format!("HTTP {status}") });
        }
        let body = read_body(answer, SP_ANSWER_MAX).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => ValidationError::AnswerTooLarge { sp: sp.to_owned(), limit },
            BodyError::Read(e) => self.call_error(sp, e),
            other => ValidationError::Unreachable { sp: sp.to_owned(), detail: other.to_string() },
        })?;
        serde_json::from_slice(&body).map_err(|e| ValidationError::BadAnswer { sp: sp.to_owned(), detail: e.to_string() })
    }

    fn call_error(&self, sp: &str, e: reqwest::Error) -> ValidationError {
        if e.is_timeout() {
            ValidationError::Timeout { sp: sp.to_owned(), timeout: self.timeout }
        } else {
            ValidationError::Unreachable { sp: sp.to_owned(), detail: e.to_string() }
        }
    }

    /// Validates with `start` and follows redirects until an SP confirms.
    pub async fn validate_chain(
        &self,
        store: &Store,
        start: &str,
        request: &ValidateRequest,
    ) -> Result<Confirmed, ValidationError> {
        let mut chain = vec![start.to_owned()];
        loop {
            let current = chain.last().cloned().unwrap_or_default();
            let Some(sp) = store.sp(&current).await? else {
                return Err(ValidationError::Unregistered { sp: current, chain });
            };
            let verdict = self.validate_once(&current, &sp.base_url, request).await;
            self.metrics.sp_validation(&verdict);
            match verdict? {
                Verdict::Confirm => return Ok(Confirmed { sp: current, chain }),
                Verdict::Reject { reason } => return Err(ValidationError::Rejected { sp: current, reason }),
                Verdict::Redirect { sp: next } => {
                    let next = SpIdentity::new(&next).map_err(|e| ValidationError::BadAnswer {
                        sp: current.clone(),
                        detail: format!("redirect to {next:?}: {e}"),
                    })?;
                    let looped = chain.iter().any(|s| s == next.as_str());
                    chain.push(next.as_str().to_owned());
                    if looped {
                        return Err(ValidationError::Loop { chain });
                    }
                    if chain.len() > self.max_redirects + 1 {
                        return Err(ValidationError::TooManyRedirects { max: self.max_redirects, chain });
                    }
                }
            }
        }
    }
}
