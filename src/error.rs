//! Why a Graph API call or a collection failed.
//!
//! [`GraphError::kind`] is the `error_code` label value of
//! `whatsapp_graph_api_errors_total`; [`GraphError::hint`] tells an operator
//! what to do. Messages never contain the access token: everything taken from
//! a response body is redacted before it gets here.

use std::time::Duration;

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
    /// The `error_code` label value.
    pub fn kind(&self) -> String {
        match self {
            GraphError::Api { code, .. } => code.to_string(),
            GraphError::Http { status } => format!("http_{status}"),
            GraphError::Decode(_) => "decode".into(),
            GraphError::Network(_) => "network".into(),
            GraphError::Timeout(_) => "timeout".into(),
            GraphError::TooLarge(_) => "too_large".into(),
            GraphError::CursorLoop => "cursor_loop".into(),
            GraphError::Throttled(_) => "throttled".into(),
        }
    }

    /// Whether another attempt may succeed: transient errors, 5xx, network
    /// failures and timeouts; never token, permission, parameter, not-found
    /// or rate-limit errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Api {
                code,
                status,
                is_transient,
                ..
            } => {
                let permanent = matches!(code, 190 | 10 | 100 | 803)
                    || (200..=299).contains(code)
                    || crate::graph::budget::RATE_LIMIT_CODES.contains(code)
                    || *status == 429;
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
        match self {
            GraphError::Api { code: 190, .. } => {
                "access token expired or revoked: issue a new system-user token"
            }
            GraphError::Api { code, .. } if *code == 10 || (200..=299).contains(code) => {
                "permission missing: grant whatsapp_business_management / whatsapp_business_messaging to the token's system user"
            }
            GraphError::Api {
                code: 4 | 17 | 32 | 613 | 80007 | 130429,
                ..
            } => {
                "rate limited: raise collect.min_interval or lower the number of replicas scraping"
            }
            GraphError::Api { code: 100, .. } => {
                "invalid parameter or unknown id: check the id in the config and graph_api.version"
            }
            GraphError::Api { code: 803, .. } => "object not found: check the id in the config",
            GraphError::Api {
                is_transient: true, ..
            }
            | GraphError::Api { code: 1 | 2, .. } => {
                "temporary Graph API failure: the next collection tries again; act only if it persists"
            }
            GraphError::Http { status } if *status >= 500 => {
                "temporary Graph API failure: the next collection tries again; act only if it persists"
            }
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

    #[test]
    fn kinds_are_label_values() {
        let api = GraphError::Api {
            status: 401,
            code: 190,
            subcode: None,
            message: "x".into(),
            is_transient: false,
        };
        assert_eq!(api.kind(), "190");
        assert!(api.hint().contains("system-user token"));
        assert_eq!(GraphError::Http { status: 502 }.kind(), "http_502");
        assert_eq!(GraphError::Decode(String::new()).kind(), "decode");
        assert_eq!(
            GraphError::Timeout(Duration::from_secs(1)).kind(),
            "timeout"
        );
        assert_eq!(GraphError::CursorLoop.kind(), "cursor_loop");
        assert!(!api.is_retryable());
        let transient = GraphError::Api {
            status: 500,
            code: 2,
            subcode: None,
            message: String::new(),
            is_transient: true,
        };
        assert!(transient.is_retryable());
        let limited = GraphError::Api {
            status: 400,
            code: 80007,
            subcode: None,
            message: String::new(),
            is_transient: true,
        };
        assert!(!limited.is_retryable());
        assert!(GraphError::Http { status: 503 }.is_retryable());
        assert!(!GraphError::Http { status: 404 }.is_retryable());
        assert!(!GraphError::Decode(String::new()).is_retryable());
    }
}
