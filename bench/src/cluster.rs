//! Two instances sharing PostgreSQL and Redis: desktops wait on both, and
//! each is approved through the *other* instance, so every answer crosses
//! Redis pub/sub; and the whole flow (desktop on A, phone on B) against
//! plain axum; and Redis's round trips per sign-in.

use std::{collections::BTreeMap, time::Instant};

use anyhow::Context;
use serde::Serialize;

use crate::{
    client::{self, Conn, Proto},
    redis_stats,
    scenarios::{flow_against, one_sign_in, open_handles, Flow, RunArgs, Waiting},
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
    /// Redis round trips per sign-in (desktop on A, phone on B), from
    /// Redis's `INFO commandstats`; the target is
    /// [`ROUND_TRIPS_TARGET`].
    pub redis_round_trips_per_sign_in: f64,
    pub redis_round_trips: RedisRoundTrips,
}

/// Most Redis round trips a sign-in across two instances may cost.
pub const ROUND_TRIPS_TARGET: f64 = 6.0;

/// Sign-ins one at a time, desktop on A and phone on B (limits off, as in
/// the flow rounds), counted by Redis before and after.
#[derive(Clone, Debug, Serialize)]
pub struct RedisRoundTrips {
    pub sign_ins: usize,
    /// Scripts called (every qrlogin call to Redis is one), per sign-in.
    pub round_trips_per_sign_in: f64,
    /// Every command Redis ran, those inside the scripts included.
    pub commands_per_sign_in: f64,
    /// Both instances' `qrlogin_redis_round_trips_total`, by operation,
    /// per sign-in (create, scan, approve, redeem: the attempt's scripts;
    /// clock: the session cache's revocation check; read: an attempt read
    /// from Redis rather than from the instance's copy; gate: rate limits).
    pub by_op: BTreeMap<String, f64>,
}

/// Sign-ins measured for [`RedisRoundTrips`].
const ROUND_TRIP_SIGN_INS: usize = 200;

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
    let round_trips = round_trips(shared, &a, &b).await;
    a.stop().await?;
    b.stop().await?;
    let round_trips = round_trips?;
    eprintln!(
        "  Redis round trips per sign-in: {:.2} (target ≤ {ROUND_TRIPS_TARGET}); {:.1} commands; by operation {:?}",
        round_trips.round_trips_per_sign_in, round_trips.commands_per_sign_in, round_trips.by_op
    );
    Ok(ClusterResults {
        levels,
        flow: flow?,
        audit_rows_dropped,
        redis_round_trips_per_sign_in: round_trips.round_trips_per_sign_in,
        redis_round_trips: round_trips,
    })
}

/// [`ROUND_TRIP_SIGN_INS`] sign-ins, the desktop on `a` and the phone on
/// `b`, counted by Redis and by the instances.
async fn round_trips(shared: &Shared, a: &Server, b: &Server) -> anyhow::Result<RedisRoundTrips> {
    let mut desktop_conn = Conn::open(a.addr, LOOPBACK, Proto::H1).await?;
    let mut phone_conn = Conn::open(b.addr, LOOPBACK, Proto::H1).await?;
    let phone = client::sign_in(&mut phone_conn, BENCH_USER, BENCH_PASSWORD).await?;
    // One first: the scripts are loaded, the connections warm.
    one_sign_in(&mut desktop_conn, &mut phone_conn, &phone).await?;
    let ops_before = ops(a, b).await?;
    let before = redis_stats::calls(&shared.redis).await?;
    for _ in 0..ROUND_TRIP_SIGN_INS {
        one_sign_in(&mut desktop_conn, &mut phone_conn, &phone).await?;
    }
    let after = redis_stats::calls(&shared.redis).await?;
    let ops_after = ops(a, b).await?;
    let per = |n: f64| n / ROUND_TRIP_SIGN_INS as f64;
    let by_op = ops_after
        .into_iter()
        .map(|(op, n)| {
            let n = n - ops_before.get(&op).copied().unwrap_or(0.0);
            (op, per(n))
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    Ok(RedisRoundTrips {
        sign_ins: ROUND_TRIP_SIGN_INS,
        round_trips_per_sign_in: per((after.round_trips - before.round_trips) as f64),
        commands_per_sign_in: per((after.commands - before.commands) as f64),
        by_op,
    })
}

/// `qrlogin_redis_round_trips_total` of both instances, by operation.
async fn ops(a: &Server, b: &Server) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut ops = BTreeMap::new();
    for server in [a, b] {
        for (op, n) in round_trips_by_op(&server.metrics_text().await?) {
            *ops.entry(op).or_default() += n;
        }
    }
    Ok(ops)
}

/// The `qrlogin_redis_round_trips_total{op="…"} N` lines of a metrics text.
fn round_trips_by_op(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("qrlogin_redis_round_trips_total{")?;
            let (labels, value) = rest.split_once("} ")?;
            let op = labels
                .split(',')
                .find_map(|l| l.strip_prefix("op=\"")?.strip_suffix('"'))?;
            Some((op.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_are_read_by_operation() {
        let text = "# TYPE qrlogin_redis_round_trips_total counter\n\
            qrlogin_redis_round_trips_total{op=\"scan\"} 201\n\
            qrlogin_redis_round_trips_total{op=\"clock\"} 402\n\
            qrlogin_attempts_total{outcome=\"login_created\"} 3\n";
        assert_eq!(
            super::round_trips_by_op(text),
            [("scan".to_owned(), 201.0), ("clock".to_owned(), 402.0)]
        );
    }
}
