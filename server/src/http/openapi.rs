//! The OpenAPI document of API v1.

use axum::Json;

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}
