//! The v2 REST routes, and KServe v1's predict.

use crate::ProtocolError;

/// A recognized v2 endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/health/live`
    Live,
    /// `GET /v2/health/ready`
    Ready,
    /// `GET /v2`
    ServerMetadata,
    /// `GET /v2/models`
    ModelList,
    /// `GET /metrics` (Prometheus text format)
    Metrics,
    /// `GET /v2/models/{model}[/versions/{v}]`
    ModelMetadata {
        /// The model name.
        model: String,
        /// The version, if the path names one.
        version: Option<String>,
    },
    /// `GET /v2/models/{model}[/versions/{v}]/ready`
    ModelReady {
        /// The model name.
        model: String,
        /// The version, if the path names one.
        version: Option<String>,
    },
    /// `GET /v2/models/{model}[/versions/{v}]/stats`
    ModelStats {
        /// The model name.
        model: String,
        /// The version, if the path names one.
        version: Option<String>,
    },
    /// `GET /v2/models/{model}[/versions/{v}]/drift`: the latest online drift result (wafer's
    /// own extension).
    ModelDrift {
        /// The model name.
        model: String,
        /// The version, if the path names one.
        version: Option<String>,
    },
    /// `POST /v2/models/{model}[/versions/{v}]/infer`
    Infer {
        /// The model name.
        model: String,
        /// The version, if the path names one.
        version: Option<String>,
    },
    /// `POST /v1/models/{model}:predict` (KServe v1: `{"instances": [...]}`)
    V1Predict {
        /// The model name.
        model: String,
    },
    /// `GET` or `POST /v2/repository/index` (Triton's model repository extension: every
    /// model and version with its state).
    RepositoryIndex,
    /// `POST /v2/repository/models/{model}/load`: (re)load a model from the repository.
    RepositoryLoad {
        /// The model name.
        model: String,
    },
    /// `POST /v2/repository/models/{model}/unload`
    RepositoryUnload {
        /// The model name.
        model: String,
    },
}

impl Route {
    /// The model this route addresses, if any.
    pub fn model(&self) -> Option<&str> {
        match self {
            Route::ModelMetadata { model, .. }
            | Route::ModelReady { model, .. }
            | Route::ModelStats { model, .. }
            | Route::ModelDrift { model, .. }
            | Route::Infer { model, .. }
            | Route::V1Predict { model } => Some(model),
            _ => None,
        }
    }

    /// Whether this is a management route (the repository extension), which a server guards
    /// with a token or does not offer.
    pub fn is_management(&self) -> bool {
        matches!(
            self,
            Route::RepositoryIndex | Route::RepositoryLoad { .. } | Route::RepositoryUnload { .. }
        )
    }
}

/// Matches a method and path (query string allowed) to a v2 route.
pub fn route(method: &str, path: &str) -> Result<Route, ProtocolError> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let not_found = || ProtocolError::RouteNotFound {
        method: method.to_owned(),
        path: path.to_owned(),
    };
    let (route, wants_post) = match segments.as_slice() {
        ["metrics"] => (Route::Metrics, false),
        ["v2"] => (Route::ServerMetadata, false),
        ["v2", "health", "live"] => (Route::Live, false),
        ["v2", "health", "ready"] => (Route::Ready, false),
        ["v2", "models"] => (Route::ModelList, false),
        ["v2", "models", model, rest @ ..] => {
            let (version, rest) = match rest {
                ["versions", v, rest @ ..] => (Some((*v).to_owned()), rest),
                _ => (None, rest),
            };
            let model = (*model).to_owned();
            match rest {
                [] => (Route::ModelMetadata { model, version }, false),
                ["ready"] => (Route::ModelReady { model, version }, false),
                ["stats"] => (Route::ModelStats { model, version }, false),
                ["drift"] => (Route::ModelDrift { model, version }, false),
                ["infer"] => (Route::Infer { model, version }, true),
                _ => return Err(not_found()),
            }
        }
        // Triton's client posts to the index (with an optional `{"ready": bool}` body).
        ["v2", "repository", "index"] if method == "POST" => (Route::RepositoryIndex, true),
        ["v2", "repository", "index"] => (Route::RepositoryIndex, false),
        ["v2", "repository", "models", model, "load"] => (
            Route::RepositoryLoad {
                model: (*model).to_owned(),
            },
            true,
        ),
        ["v2", "repository", "models", model, "unload"] => (
            Route::RepositoryUnload {
                model: (*model).to_owned(),
            },
            true,
        ),
        ["v1", "models", call] => match call.strip_suffix(":predict") {
            Some(model) if !model.is_empty() => (
                Route::V1Predict {
                    model: model.to_owned(),
                },
                true,
            ),
            _ => return Err(not_found()),
        },
        _ => return Err(not_found()),
    };
    let allowed = if wants_post {
        method == "POST"
    } else {
        method == "GET" || method == "HEAD"
    };
    if !allowed {
        return Err(ProtocolError::MethodNotAllowed {
            method: method.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/v2/health/live"), Ok(Route::Live));
        assert_eq!(route("GET", "/v2/"), Ok(Route::ServerMetadata));
        assert_eq!(
            route("POST", "/v2/models/iris/versions/1/infer"),
            Ok(Route::Infer {
                model: "iris".into(),
                version: Some("1".into())
            })
        );
        assert_eq!(
            route("GET", "/v2/models/iris/ready?x=1"),
            Ok(Route::ModelReady {
                model: "iris".into(),
                version: None
            })
        );
        assert_eq!(
            route("GET", "/v2/models/iris/infer").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(route("GET", "/v1/models").map_err(|e| e.status()), Err(404));
        assert_eq!(
            route("POST", "/v1/models/credit:predict"),
            Ok(Route::V1Predict {
                model: "credit".into()
            })
        );
        assert_eq!(
            route("GET", "/v1/models/credit:predict").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("GET", "/v2/models/credit/drift"),
            Ok(Route::ModelDrift {
                model: "credit".into(),
                version: None
            })
        );
        assert_eq!(
            route("GET", "/v2/models/iris/nope").map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("GET", "/v2/repository/index"),
            Ok(Route::RepositoryIndex)
        );
        assert_eq!(
            route("POST", "/v2/repository/index"),
            Ok(Route::RepositoryIndex)
        );
        assert_eq!(
            route("POST", "/v2/repository/models/iris/unload"),
            Ok(Route::RepositoryUnload {
                model: "iris".into()
            })
        );
        assert_eq!(
            route("GET", "/v2/repository/models/iris/load").map_err(|e| e.status()),
            Err(405)
        );
        assert!(Route::RepositoryLoad { model: "m".into() }.is_management());
        assert!(!Route::ModelList.is_management());
    }
}
