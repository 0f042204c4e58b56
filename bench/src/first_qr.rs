//! First QR on screen, measured in Debian's Chromium by a small Playwright
//! script (end2end/bench/first-qr.mjs) against the running server.

use std::{net::SocketAddr, path::Path};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::stats::median;

#[derive(Deserialize)]
struct Loads {
    cold_ms: Vec<f64>,
    warm_ms: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FirstQr {
    pub loads: usize,
    /// A new browser context per load: nothing cached.
    pub cold_median_ms: f64,
    /// Reloads in one context: WASM and JS from the cache.
    pub warm_median_ms: f64,
    pub cold_ms: Vec<f64>,
    pub warm_ms: Vec<f64>,
}

pub async fn measure(repo: &Path, server: SocketAddr, loads: usize) -> anyhow::Result<FirstQr> {
    let output = tokio::process::Command::new("node")
        .current_dir(repo.join("end2end"))
        .arg("bench/first-qr.mjs")
        .arg(format!("http://{server}/login"))
        .arg(loads.to_string())
        .output()
        .await
        .context("running node end2end/bench/first-qr.mjs")?;
    if !output.status.success() {
        bail!(
            "first-qr.mjs failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut result: Loads =
        serde_json::from_slice(&output.stdout).context("first-qr.mjs printed no result")?;
    Ok(FirstQr {
        loads,
        cold_median_ms: median(&mut result.cold_ms).context("no cold loads")?,
        warm_median_ms: median(&mut result.warm_ms).context("no warm loads")?,
        cold_ms: result.cold_ms,
        warm_ms: result.warm_ms,
    })
}
