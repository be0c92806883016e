//! Why a Graph API call failed, in the terms its callers need.
//!
//! [`GraphError::error_code`] is the `error_code` label value of
//! `whatsapp_graph_api_errors_total`; [`GraphError::rate_limit`] tells the
//! budget whether, and how widely, to hold calls back;
//! [`GraphError::is_retryable`] tells the client whether to try again;
//! [`GraphError::hint`] tells an operator what to do. Messages never contain
//! the access token: everything taken from a response body is redacted
//! before it gets here.

use std::borrow::Cow;
use std::time::Duration;

/// Graph error codes that mean "rate limited"; code 4 is the app-wide limit.
pub const RATE_LIMIT_CODES: [i64; 6] = [4, 17, 32, 613, 80007, 130429];

/// The Graph error code of the application-level rate limit.
const APP_RATE_LIMIT_CODE: i64 = 4;

/// Which calls a rate limit holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitScope {
    /// Every target on the same token (the app's limit, code 4).
    App,
    /// The target whose call was refused (business use case limits, HTTP 429).
    Target,
}

/// A failed Graph API request or pagination step.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum GraphError {
    /// The response carried a GraphAPIError body.
    #[error("Graph API error {code} (HTTP {status}): {message}")]
    Api {
        /// HTTP status of the response.
        status: u16,
        /// `error.code`.
        code: i64,
        /// `error.error_subcode`, if any.
        subcode: Option<i64>,
        /// `error.message`, redacted.
        message: String,
        /// `error.is_transient`.
        is_transient: bool,
    },
    /// A non-2xx response without a GraphAPIError body.
    #[error("HTTP {status} without a Graph error body")]
    Http {
        /// HTTP status.
        status: u16,
    },
    /// A complete 2xx body that is not the expected JSON.
    #[error("response is not the expected JSON: {0}")]
    Decode(String),
    /// Connection failure or a body cut short.
    #[error("network error: {0}")]
    Network(String),
    /// `graph_api.request_timeout` passed.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The body was larger than `graph_api.max_response_bytes`.
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
    /// The API handed back a cursor already used in this collection.
    #[error("pagination cursor repeated; stopped to avoid a loop")]
    CursorLoop,
    /// No call was made: the target is held back by the API budget.
    #[error("held back by the API budget for {0:?}")]
    Throttled(Duration),
}

impl GraphError {
    /// The `error_code` label value: the Graph error code, `http_<status>`,
    /// or one of ours (`decode`, `network`, `timeout`, ...).
    pub fn error_code(&self) -> Cow<'static, str> {
        match self {
            GraphError::Api { code, .. } => Cow::Owned(code.to_string()),
            GraphError::Http { status } => Cow::Owned(format!("http_{status}")),
            GraphError::Decode(_) => Cow::Borrowed("decode"),
            GraphError::Network(_) => Cow::Borrowed("network"),
            GraphError::Timeout(_) => Cow::Borrowed("timeout"),
            GraphError::TooLarge(_) => Cow::Borrowed("too_large"),
            GraphError::CursorLoop => Cow::Borrowed("cursor_loop"),
            GraphError::Throttled(_) => Cow::Borrowed("throttled"),
        }
    }

    /// Whether Meta refused the call for its rate limits, and whose calls
    /// that holds back.
    pub fn rate_limit(&self) -> Option<RateLimitScope> {
        match self {
            GraphError::Api { code, .. } if *code == APP_RATE_LIMIT_CODE => {
                Some(RateLimitScope::App)
            }
            GraphError::Api { code, .. } if RATE_LIMIT_CODES.contains(code) => {
                Some(RateLimitScope::Target)
            }
            GraphError::Api { status: 429, .. } | GraphError::Http { status: 429 } => {
                Some(RateLimitScope::Target)
            }
            _ => None,
        }
    }

    /// Whether another attempt may succeed: transient errors, 5xx, network
    /// failures and timeouts; never token, permission, parameter, not-found
    /// or rate-limit errors.
    pub fn is_retryable(&self) -> bool {
        if self.rate_limit().is_some() {
            return false;
        }
        match self {
            GraphError::Api {
                code,
                status,
                is_transient,
                ..
            } => {
                let permanent = matches!(code, 190 | 10 | 100 | 803) || (200..=299).contains(code);
                !permanent && (*is_transient || *status >= 500)
            }
            GraphError::Http { status } => *status >= 500,
            GraphError::Network(_) | GraphError::Timeout(_) => true,
            GraphError::Decode(_)
            | GraphError::TooLarge(_)
            | GraphError::CursorLoop
            | GraphError::Throttled(_) => false,
        }
    }

    /// What an operator should do about it.
    pub fn hint(&self) -> &'static str {
        const TEMPORARY: &str =
            "temporary Graph API failure: the next collection tries again; act only if it persists";
        if self.rate_limit().is_some() {
            return "rate limited: raise collect.min_interval or lower the number of replicas scraping";
        }
        match self {
            GraphError::Api { code: 190, .. } => {
                "access token expired or revoked: issue a new system-user token"
            }
            GraphError::Api { code, .. } if *code == 10 || (200..=299).contains(code) => {
                "permission missing: grant whatsapp_business_management / whatsapp_business_messaging to the token's system user"
            }
            GraphError::Api { code: 100, .. } => {
                "invalid parameter or unknown id: check the id in the config and graph_api.version"
            }
            GraphError::Api { code: 803, .. } => "object not found: check the id in the config",
            GraphError::Api {
                is_transient: true, ..
            }
            | GraphError::Api { code: 1 | 2, .. } => TEMPORARY,
            GraphError::Http { status } if *status >= 500 => TEMPORARY,
            GraphError::Api { .. } | GraphError::Http { .. } => {
                "the Graph API refused the request; see the message"
            }
            GraphError::Throttled(_) => {
                "holding back to stay within the API budget: see whatsapp_graph_api_usage_percent"
            }
            GraphError::Decode(_) | GraphError::TooLarge(_) | GraphError::CursorLoop => {
                "the Graph API sent a response the exporter cannot use; check graph_api.base_url"
            }
            GraphError::Network(_) | GraphError::Timeout(_) => {
                "cannot reach the Graph API: check network, proxy and graph_api.request_timeout"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64, is_transient: bool) -> GraphError {
        GraphError::Api {
            status,
            code,
            subcode: None,
            message: "x".into(),
            is_transient,
        }
    }

    #[test]
    fn error_codes_are_label_values() {
        let expired = api(401, 190, false);
        assert_eq!(expired.error_code(), "190");
        assert!(expired.hint().contains("system-user token"));
        assert_eq!(GraphError::Http { status: 502 }.error_code(), "http_502");
        assert_eq!(GraphError::Decode(String::new()).error_code(), "decode");
        assert_eq!(
            GraphError::Timeout(Duration::from_secs(1)).error_code(),
            "timeout"
        );
        assert_eq!(GraphError::CursorLoop.error_code(), "cursor_loop");
        // Ours are static: no allocation for a label value we name.
        assert!(matches!(
            GraphError::Network(String::new()).error_code(),
            Cow::Borrowed("network")
        ));
    }

    #[test]
    fn retries_only_what_may_succeed() {
        assert!(!api(401, 190, false).is_retryable());
        assert!(api(500, 2, true).is_retryable());
        assert!(!api(400, 80007, true).is_retryable());
        assert!(GraphError::Http { status: 503 }.is_retryable());
        assert!(!GraphError::Http { status: 404 }.is_retryable());
        assert!(!GraphError::Http { status: 429 }.is_retryable());
        assert!(!GraphError::Decode(String::new()).is_retryable());
    }

    #[test]
    fn rate_limits_and_their_scope() {
        assert_eq!(api(400, 4, false).rate_limit(), Some(RateLimitScope::App));
        for code in RATE_LIMIT_CODES.into_iter().filter(|c| *c != 4) {
            assert_eq!(
                api(400, code, false).rate_limit(),
                Some(RateLimitScope::Target),
                "{code}"
            );
            assert!(api(400, code, false).hint().starts_with("rate limited"));
        }
        assert_eq!(
            GraphError::Http { status: 429 }.rate_limit(),
            Some(RateLimitScope::Target)
        );
        assert_eq!(api(400, 100, false).rate_limit(), None);
        assert_eq!(GraphError::Network(String::new()).rate_limit(), None);
    }
}
