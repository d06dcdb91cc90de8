//! The loopback floor for `tools/bench.py`: a minimal native hyper server that answers every
//! request with a fixed v2 response body. Whatever wafer adds shows above this.
//!
//! Usage: `loopback_floor 127.0.0.1:PORT`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BODY: &[u8] = br#"{"model_name":"iris","model_version":"1","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[0]},{"name":"probabilities","shape":[1,3],"datatype":"FP32","data":[0.9783633947372437,0.021636558696627617,5.5946692611996696e-8]}]}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                // Read the body as a real server must, then answer.
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(BODY)))
                        .unwrap_or_default(),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
