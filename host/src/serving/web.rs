//! The browser side of wafer, from the host: writing a model's web bundle (`wafer build
//! --web`) and serving a folder of static files (`wafer web`: the demo page, the wasm-bindgen
//! package and the bundles) on a local address.
//!
//! It is not the browser build itself: that is the `wafer-web` crate, built for
//! `wasm32-unknown-unknown` by `tools/web.sh`.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use wafer_protocol::{Bundle, Pipeline};

use crate::serving::repo::ModelSource;

/// The bundle of a model folder: its name, `model.onnx`, `features.toml` and metadata. The model
/// and spec are loaded natively first, so a bundle that will not load in the page is never
/// written; and the lite graph reads the model too, which marks the bundle `lite` when it runs
/// every node and gives tract's outputs on a probe (the page then needs no tract).
pub fn bundle(source: &ModelSource) -> anyhow::Result<Vec<u8>> {
    let onnx_path = source.dir.join("model.onnx");
    let onnx =
        std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let spec_path = source.dir.join("features.toml");
    let features = match std::fs::read_to_string(&spec_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", spec_path.display())),
    };
    let pipeline = Pipeline::load(&source.name, &onnx, features.as_deref())
        .with_context(|| format!("loading model \"{}\"", source.name))?;
    let metadata = pipeline.model().metadata().clone();
    let lite = match pipeline.model().to_lite(&onnx) {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(model = %source.name, "the lite browser build cannot run it: {e}");
            false
        }
    };
    Ok(Bundle {
        name: source.name.clone(),
        onnx,
        features,
        metadata: Some(metadata),
        lite,
    }
    .to_bytes())
}

/// Serves the files under `root` at `addr` until the process ends, calling `listening` with
/// the bound address once it accepts connections.
pub async fn serve_dir(
    root: PathBuf,
    addr: SocketAddr,
    listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let root = root
        .canonicalize()
        .with_context(|| format!("the page folder {}", root.display()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    listening(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let root = root.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let root = root.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&root, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(root: &Path, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, kind: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            wafer_protocol::error_body("only GET is served here"),
        );
    }
    let Some(path) = file_path(root, request.uri().path()) else {
        return answer(
            StatusCode::NOT_FOUND,
            "application/json",
            wafer_protocol::error_body("no such file"),
        );
    };
    match std::fs::read(&path) {
        Ok(body) => answer(StatusCode::OK, content_type(&path), body),
        Err(_) => answer(
            StatusCode::NOT_FOUND,
            "application/json",
            wafer_protocol::error_body("no such file"),
        ),
    }
}

/// The file a URL path names under `root`: `/` is `index.html`; no path leaves `root`.
fn file_path(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let path = root.join(relative);
    if path.is_dir() {
        Some(path.join("index.html"))
    } else {
        Some(path)
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("css") => "text/css",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/page");
        assert_eq!(
            file_path(root, "/pkg/wafer_web.js"),
            Some(root.join("pkg/wafer_web.js"))
        );
        assert_eq!(file_path(root, "/../etc/passwd"), None);
        assert_eq!(file_path(root, "/a/../../b"), None);
    }
}
