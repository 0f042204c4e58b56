//! Two instances sharing PostgreSQL and Redis: desktops wait on both, and
//! each is approved through the *other* instance, so every answer crosses
//! Redis pub/sub; and the whole flow (desktop on A, phone on B) against
//! plain axum.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::{
    client::{self, Conn, Proto},
    scenarios::{flow_against, open_handles, Flow, RunArgs, Waiting},
    servers::{Paths, Server, Shared, BENCH_PASSWORD, BENCH_USER, LOOPBACK},
    stats::Latency,
};

#[derive(Clone, Debug, Serialize)]
pub struct ClusterLevel {
    /// Desktops waiting across both instances (half on each), over h2c.
    pub waiters: usize,
    /// From the approve sent to one instance to the answer of the desktop
    /// waiting on the other.
    pub approve: Latency,
    /// Each instance's VmRSS with all of them waiting.
    pub rss_waiting_bytes: [u64; 2],
    pub failed_waiters: usize,
    pub setup_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterResults {
    pub levels: Vec<ClusterLevel>,
    /// Desktop on A, phone on B; both instances' CPU.
    pub flow: Flow,
    /// Audit rows the two dropped during the flow rounds (must be 0: the
    /// PostgreSQL batcher keeps up).
    pub audit_rows_dropped: u64,
}

pub async fn measure(
    paths: &Paths,
    shared: &Shared,
    args: &RunArgs,
) -> anyhow::Result<ClusterResults> {
    let started = Instant::now();
    let mut levels = Vec::new();
    for &n in &args.cluster_waiters {
        eprintln!(
            "  [{:5.1} s] {n} desktops waiting across two instances",
            started.elapsed().as_secs_f64()
        );
        let level = waiting_level(paths, shared, n, args.samples).await?;
        eprintln!(
            "    approve on one → answered on the other: p50 {:.2} ms p99 {:.2} ms; RSS {:.0} + {:.0} MiB",
            level.approve.p50_ms,
            level.approve.p99_ms,
            level.rss_waiting_bytes[0] as f64 / 1048576.0,
            level.rss_waiting_bytes[1] as f64 / 1048576.0,
        );
        levels.push(level);
    }
    eprintln!(
        "  [{:5.1} s] whole flow on PostgreSQL + Redis, desktop on A and phone on B",
        started.elapsed().as_secs_f64()
    );
    let [a, b] = instances(paths, shared, "flow").await?;
    let flow = flow_against(paths, args, &[&a, &b]).await;
    let audit_rows_dropped = a.audit_rows_dropped().await? + b.audit_rows_dropped().await?;
    a.stop().await?;
    b.stop().await?;
    Ok(ClusterResults {
        levels,
        flow: flow?,
        audit_rows_dropped,
    })
}

/// Two fresh instances whose Redis keys no earlier measurement used.
async fn instances(paths: &Paths, shared: &Shared, name: &str) -> anyhow::Result<[Server; 2]> {
    let prefix = format!("bench-{name}-{}:", std::process::id());
    Ok([
        Server::qrlogin_shared(paths, &format!("cluster-{name}-a"), shared, &prefix).await?,
        Server::qrlogin_shared(paths, &format!("cluster-{name}-b"), shared, &prefix).await?,
    ])
}

async fn waiting_level(
    paths: &Paths,
    shared: &Shared,
    n: usize,
    samples: usize,
) -> anyhow::Result<ClusterLevel> {
    let servers = instances(paths, shared, &n.to_string()).await?;
    let mut phone_conns = Vec::new();
    for server in &servers {
        phone_conns.push(Conn::open(server.addr, LOOPBACK, Proto::H1).await?);
    }
    let phone = client::sign_in(&mut phone_conns[0], BENCH_USER, BENCH_PASSWORD).await?;

    let setup = Instant::now();
    let share = (n / 2).max(1);
    let mut waiting = Vec::new();
    for server in &servers {
        let (handles, _) = open_handles(server.addr, Proto::H2, share).await?;
        waiting.push(Waiting::park(server, handles).await?);
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let rss_waiting_bytes = [servers[0].rss_bytes()?, servers[1].rss_bytes()?];

    // Half the approvals go through B to desktops on A, half the other way;
    // in rounds of fresh attempts while there are fewer waiters than samples.
    let mut latencies = Vec::with_capacity(samples);
    let mut failed_waiters = 0;
    loop {
        // Either every waiter of both groups, or the last approvals needed.
        let count = (samples - latencies.len()).div_ceil(2).min(share);
        for (i, group) in waiting.iter_mut().enumerate() {
            let other = &mut phone_conns[1 - i];
            latencies.extend(group.approve(&phone, other, count).await?);
            failed_waiters += group.failed;
        }
        if latencies.len() >= samples {
            break;
        }
        let mut parked = Vec::new();
        for (server, group) in servers.iter().zip(waiting) {
            parked.push(Waiting::park(server, group.handles().await?).await?);
        }
        waiting = parked;
    }
    for mut group in waiting {
        group.waiters.shutdown().await;
    }
    for server in servers {
        server.stop().await?;
    }
    Ok(ClusterLevel {
        waiters: 2 * share,
        approve: Latency::of(&latencies).context("no approvals timed")?,
        rss_waiting_bytes,
        failed_waiters,
        setup_s,
    })
}
