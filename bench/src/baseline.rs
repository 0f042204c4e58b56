//! The yardstick: the plainest axum server that answers JSON, served the
//! same way qrlogin is (`axum::serve`, HTTP/1.1 and h2c).

use axum::{routing::get, Json, Router};
use serde_json::{json, Value};

async fn hello() -> Json<Value> {
    Json(json!({ "hello": "world" }))
}

pub async fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/healthz", get(hello));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
