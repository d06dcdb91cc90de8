//! Protocol errors and the one place they become HTTP statuses.

use thiserror::Error;
use wafer_features::FeatureError;
use wafer_scoring::ScoringError;

/// Why a request could not be answered.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ProtocolError {
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not a valid v2 inference request.
    #[error("invalid inference request: {0}")]
    InvalidRequest(String),
    /// The request does not fit the model.
    #[error("{0}")]
    InvalidInput(String),
    /// No model of that name is served here.
    #[error("model \"{0}\" not found")]
    ModelNotFound(String),
    /// The model is in the repository but could not be loaded; the others still serve.
    #[error("model \"{model}\" is unavailable: {reason}")]
    ModelUnavailable {
        /// The model name.
        model: String,
        /// Why it could not be built or loaded.
        reason: String,
    },
    /// The model is served but its drift is not watched: no reference profile, or the
    /// prediction log is off.
    #[error("no drift for model \"{model}\": {reason}")]
    DriftUnavailable {
        /// The model name.
        model: String,
        /// Why.
        reason: String,
    },
    /// No such route.
    #[error("no route for {method} {path}")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The route exists, with another method.
    #[error("method {method} not allowed for {path}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The body is larger than the server accepts.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A management route without the right bearer token.
    #[error("this endpoint needs the server's admin token (Authorization: Bearer ...)")]
    Unauthorized,
    /// The request's headers are larger than the server accepts.
    #[error("request headers exceed {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The model is at its concurrency limit and its queue is full, or the request waited
    /// past the queue's deadline: the client should retry later.
    #[error("model \"{model}\" is overloaded: {why}; retry after {retry_after_secs} s")]
    Overloaded {
        /// The model name.
        model: String,
        /// Queue full, or waited too long.
        why: String,
        /// Seconds for the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// The model ran past the request's deadline.
    #[error("{0}")]
    Timeout(String),
    /// The model or its runtime failed.
    #[error("{0}")]
    Internal(String),
}

impl ProtocolError {
    /// The HTTP status for this error. Every error reaches a client through here.
    pub fn status(&self) -> u16 {
        match self {
            ProtocolError::MalformedJson(_)
            | ProtocolError::InvalidRequest(_)
            | ProtocolError::InvalidInput(_) => 400,
            ProtocolError::Unauthorized => 401,
            ProtocolError::ModelNotFound(_)
            | ProtocolError::DriftUnavailable { .. }
            | ProtocolError::RouteNotFound { .. } => 404,
            ProtocolError::MethodNotAllowed { .. } => 405,
            ProtocolError::PayloadTooLarge { .. } => 413,
            ProtocolError::HeadersTooLarge { .. } => 431,
            ProtocolError::ModelUnavailable { .. } | ProtocolError::Overloaded { .. } => 503,
            ProtocolError::Timeout(_) => 504,
            ProtocolError::Internal(_) => 500,
        }
    }

    /// The response headers this error adds to its status: `Retry-After` for an overloaded
    /// model, `WWW-Authenticate` for a missing token.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ProtocolError::Overloaded {
                retry_after_secs, ..
            } => vec![("retry-after", retry_after_secs.to_string())],
            ProtocolError::Unauthorized => {
                vec![("www-authenticate", "Bearer realm=\"wafer\"".to_owned())]
            }
            _ => Vec::new(),
        }
    }

    /// The `{"error": "..."}` body for this error.
    pub fn body(&self) -> Vec<u8> {
        crate::error_body(&self.to_string())
    }
}

impl From<ScoringError> for ProtocolError {
    fn from(e: ScoringError) -> Self {
        if e.is_invalid_input() {
            ProtocolError::InvalidInput(e.to_string())
        } else {
            ProtocolError::Internal(e.to_string())
        }
    }
}

impl From<FeatureError> for ProtocolError {
    fn from(e: FeatureError) -> Self {
        ProtocolError::InvalidInput(e.to_string())
    }
}
