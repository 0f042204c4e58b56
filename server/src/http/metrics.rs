//! Prometheus metrics for operators, on an address of their own
//! (`--metrics-addr`, off by default) and never on the public one.
//!
//! | metric                                   | what                                 |
//! |------------------------------------------|--------------------------------------|
//! | `qrlogin_http_requests_total`            | requests by route, method and status |
//! | `qrlogin_http_request_duration_seconds`  | latency histogram by route           |
//! | `qrlogin_attempts_total`                 | attempts by outcome (audit event)    |
//! | `qrlogin_desktops_waiting`               | long polls waiting now               |
//! | `qrlogin_audit_rows_dropped_total`       | audit rows dropped (queue full)      |
//! | `qrlogin_store_errors_total`             | requests that met a store error      |
//! | `qrlogin_password_hashes_refused_total`  | sign-ins refused: no hash slot free  |
//! | `qrlogin_redis_reconnects_total`         | the Redis subscriber's reconnections |
//! | `qrlogin_redis_round_trips_total`        | Redis round trips by operation (`op`) |
//!
//! The services record through the `metrics` facade; with no recorder
//! installed (metrics off) every record is a no-op.

use std::{net::SocketAddr, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
    routing::get,
    Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: the API answers in well under a
/// millisecond; long polls take up to 30 s.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 15.0, 30.0,
];

/// Installs the process-wide recorder.
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("qrlogin_http_request_duration_seconds".into()),
            &BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

/// Serves `GET /metrics` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Hands the matched route on to [`record`], which runs outside routing
/// (so that it also sees what no route answered).
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Counts every request by its route (the pattern, never the raw path:
/// ids would make a series per attempt) and status, and times it.
pub async fn record(request: Request, next: Next) -> Response {
    // Only the methods the server knows: any other would be a new series
    // per made-up method, a memory leak anyone could drive.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let status = response.status().as_u16().to_string();
    metrics::histogram!("qrlogin_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "qrlogin_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status
    )
    .increment(1);
    response
}
