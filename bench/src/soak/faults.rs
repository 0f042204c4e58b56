//! The fault schedule and its execution: an instance killed with SIGKILL
//! and started again, Redis stopped and started (SIGTERM, then SIGKILL),
//! PostgreSQL stopped and started (`pg_ctl stop -m fast`, then
//! `-m immediate`), each twice, one after the other. During each store
//! outage a prober asks each instance directly, every 100 ms, for
//! something that needs that store, timing each answer; it goes on until
//! both instances answer normally again. A sampler reads each instance's
//! RSS and dropped-audit counter every second.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use app::api::{paths, LoginCreated};
use serde::Serialize;
use tokio::sync::watch;

use super::{
    http::{Http, Req},
    log::{Clock, Log},
    stack::{self, SharedLive, Stack, NAMES},
    traffic::World,
};

#[derive(Clone, Copy, Debug)]
pub enum FaultKind {
    Kill(usize),
    Redis { sigkill: bool },
    Postgres { immediate: bool },
}

pub struct Planned {
    pub at: f64,
    pub kind: FaultKind,
}

/// Six faults, each kind twice, over the first three quarters of the run;
/// both kills in its first third, so the memory window (the last half,
/// at most the last 5 minutes) sees no new process.
pub fn schedule(duration: f64) -> Vec<Planned> {
    [
        (0.08, FaultKind::Kill(0)),
        (0.17, FaultKind::Redis { sigkill: false }),
        (0.26, FaultKind::Kill(1)),
        (0.35, FaultKind::Postgres { immediate: false }),
        (0.55, FaultKind::Redis { sigkill: true }),
        (0.75, FaultKind::Postgres { immediate: true }),
    ]
    .into_iter()
    .map(|(fraction, kind)| Planned {
        at: fraction * duration,
        kind,
    })
    .collect()
}

/// How long each store or instance stays down.
pub fn outage_for(duration: f64) -> f64 {
    (duration / 100.0).clamp(2.0, 8.0)
}

#[derive(Clone, Debug, Serialize)]
pub struct ProbeOutage {
    pub instance: &'static str,
    pub pid_before: Option<u32>,
    pub pid_after: Option<u32>,
    /// Probes sent between the stop signal and the store answering again.
    pub probes_while_down: u64,
    pub probes_503: u64,
    /// From the stop signal to the first 503 a probe got.
    pub first_503_after_s: Option<f64>,
    /// The slowest answer to a probe sent while the store was down.
    pub slowest_answer_s: f64,
    /// Probes answered late (≥ 1 s), not at all, or with another error.
    pub bad_probes: Vec<String>,
    /// From the store answering again to this instance answering normally.
    pub recovered_after_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// `instance_sigkill`, `redis_restart`, `postgres_restart`.
    pub kind: &'static str,
    pub target: &'static str,
    pub how: &'static str,
    pub planned_s: f64,
    /// The signal sent (or `pg_ctl stop` started).
    pub down_s: f64,
    /// The process gone.
    pub gone_s: f64,
    /// Started again.
    pub up_s: f64,
    /// Answering again (/healthz, PING, `pg_ctl start -w`).
    pub ready_s: f64,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    /// Store faults: what each instance's prober saw.
    pub probes: Vec<ProbeOutage>,
    /// Until when 503s count as this outage's (store faults: both
    /// instances recovered + 1 s).
    pub window_end_s: f64,
    /// Filled in by the checks: traffic answers in this fault's window.
    pub traffic_503: u64,
    pub balancer_5xx_in_flight: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub t_s: f64,
    pub what: String,
}

#[derive(Default)]
pub struct FaultRun {
    pub faults: Vec<FaultRecord>,
    pub events: Vec<Event>,
    /// Instances that exited by themselves, or a fault that could not run.
    pub failures: Vec<String>,
}

impl FaultRun {
    fn event(&mut self, log: &Log, what: String) {
        let t_s = log.now();
        eprintln!("  [{t_s:6.1} s] {what}");
        self.events.push(Event { t_s, what });
    }
}

pub async fn run(
    stack: &mut Stack,
    world: &Arc<World>,
    plan: &[Planned],
    duration: f64,
    outage: f64,
) -> FaultRun {
    let mut out = FaultRun::default();
    for planned in plan {
        watch_until(stack, world, planned.at, &mut out).await;
        let result = match planned.kind {
            FaultKind::Kill(slot) => kill(stack, world, slot, planned.at, outage, &mut out).await,
            FaultKind::Redis { .. } | FaultKind::Postgres { .. } => {
                store_fault(stack, world, planned, outage, &mut out).await
            }
        };
        match result {
            Ok(record) => out.faults.push(record),
            Err(err) => {
                let what = format!("{:?} failed: {err:#}", planned.kind);
                out.event(&world.log, what.clone());
                out.failures.push(what);
            }
        }
    }
    watch_until(stack, world, duration, &mut out).await;
    out
}

/// Until `until`, restarts any instance that ended by itself (and says so).
async fn watch_until(stack: &mut Stack, world: &World, until: f64, out: &mut FaultRun) {
    while world.log.now() < until {
        for (slot, name) in NAMES.iter().enumerate() {
            if let Some(status) = stack.exited(slot) {
                let what =
                    format!("instance {name} exited by itself ({status}); starting it again");
                out.event(&world.log, what.clone());
                out.failures.push(what);
                if let Err(err) = stack.start_instance(slot).await {
                    out.event(
                        &world.log,
                        format!("instance {name} did not start: {err:#}"),
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn kill(
    stack: &mut Stack,
    world: &World,
    slot: usize,
    planned: f64,
    outage: f64,
    out: &mut FaultRun,
) -> anyhow::Result<FaultRecord> {
    let log = &world.log;
    let old_pid = stack.instances[slot].pid;
    let down = log.now();
    stack.kill_instance(slot).await?;
    let gone = log.now();
    out.event(
        log,
        format!("SIGKILL instance {} (pid {old_pid:?})", NAMES[slot]),
    );
    tokio::time::sleep(Duration::from_secs_f64(outage)).await;
    let up = log.now();
    stack.start_instance(slot).await?;
    let ready = log.now();
    let new_pid = stack.instances[slot].pid;
    out.event(
        log,
        format!(
            "instance {} started again (pid {new_pid:?}), healthy after {:.2} s",
            NAMES[slot],
            ready - up
        ),
    );
    Ok(FaultRecord {
        kind: "instance_sigkill",
        target: NAMES[slot],
        how: "SIGKILL, then started again",
        planned_s: planned,
        down_s: down,
        gone_s: gone,
        up_s: up,
        ready_s: ready,
        old_pid,
        new_pid,
        probes: Vec::new(),
        window_end_s: ready,
        traffic_503: 0,
        balancer_5xx_in_flight: 0,
    })
}

#[derive(Clone)]
enum Probe {
    /// A status read of an attempt: Redis.
    Status { path: String, cookie: String },
    /// A token request with a made-up code: the database.
    Token { form: Vec<(String, String)> },
}

struct ProbeAnswer {
    sent: f64,
    answered: f64,
    status: Option<u16>,
    /// The answer of an instance whose store works.
    normal: bool,
    describe: String,
}

async fn store_fault(
    stack: &mut Stack,
    world: &Arc<World>,
    planned: &Planned,
    outage: f64,
    out: &mut FaultRun,
) -> anyhow::Result<FaultRecord> {
    let log = &world.log;
    let (kind, target, how) = match planned.kind {
        FaultKind::Redis { sigkill: false } => {
            ("redis_restart", "redis", "SIGTERM, then started again")
        }
        FaultKind::Redis { sigkill: true } => {
            ("redis_restart", "redis", "SIGKILL, then started again")
        }
        FaultKind::Postgres { immediate: false } => (
            "postgres_restart",
            "postgres",
            "pg_ctl stop -m fast, then start",
        ),
        FaultKind::Postgres { immediate: true } => (
            "postgres_restart",
            "postgres",
            "pg_ctl stop -m immediate (crash recovery at start), then start",
        ),
        FaultKind::Kill(_) => anyhow::bail!("not a store fault"),
    };
    // A probe for each instance, straight to it.
    let mut probes = Vec::new();
    for (slot, name) in NAMES.iter().enumerate() {
        let addr = stack.instances[slot].addr;
        let probe = match planned.kind {
            FaultKind::Redis { .. } => {
                let mut http = Http::new(addr, name, log);
                let reply = http
                    .until_answered("probe_setup", 10.0, || Req::post(paths::LOGINS))
                    .await;
                let created: LoginCreated = reply.json().context("no attempt for the probe")?;
                Probe::Status {
                    path: paths::with_id(paths::LOGIN, &created.id),
                    cookie: reply.cookie(None).context("no bind cookie for the probe")?,
                }
            }
            _ => Probe::Token {
                form: vec![
                    ("grant_type".into(), "authorization_code".into()),
                    ("code".into(), "soak-probe-no-such-code".into()),
                    ("redirect_uri".into(), world.client.redirect_uri.clone()),
                    ("client_id".into(), world.client.id.clone()),
                    ("client_secret".into(), world.client.secret.clone()),
                ],
            },
        };
        probes.push((slot, addr, probe));
    }
    let pids_before = [stack.instances[0].pid, stack.instances[1].pid];
    let (ready_tx, ready_rx) = watch::channel(None::<f64>);
    let stop = Arc::new(AtomicBool::new(false));
    let mut probers = Vec::new();
    for (slot, addr, probe) in probes {
        probers.push(tokio::spawn(prober(
            world.log.clone(),
            addr,
            NAMES[slot],
            probe,
            ready_rx.clone(),
            stop.clone(),
        )));
    }
    // A moment of normal answers first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = log.now();
    match planned.kind {
        FaultKind::Redis { sigkill } => stack.stop_redis(sigkill).await?,
        FaultKind::Postgres { immediate } => {
            stack
                .stop_postgres(if immediate { "immediate" } else { "fast" })
                .await?
        }
        FaultKind::Kill(_) => {}
    }
    let gone = log.now();
    out.event(
        log,
        format!("{target} stopped ({how}), gone after {:.2} s", gone - down),
    );
    tokio::time::sleep(Duration::from_secs_f64(outage)).await;
    let up = log.now();
    match planned.kind {
        FaultKind::Redis { .. } => stack.start_redis().await?,
        _ => stack.start_postgres().await?,
    }
    let ready = log.now();
    ready_tx.send_replace(Some(ready));
    let mut answers = Vec::new();
    for handle in probers {
        // A prober ends 1 s after its instance answers normally, or 30 s
        // after the store is back.
        answers.push(handle.await.unwrap_or_default());
    }
    stop.store(true, Ordering::Relaxed);
    let pids_after = [stack.instances[0].pid, stack.instances[1].pid];
    let mut outages = Vec::new();
    let mut window_end = ready;
    for (slot, answers) in answers.iter().enumerate() {
        let outage = judge_probes(
            NAMES[slot],
            answers,
            down,
            ready,
            pids_before[slot],
            pids_after[slot],
        );
        window_end = window_end.max(ready + outage.recovered_after_s.unwrap_or(30.0));
        outages.push(outage);
    }
    let summary: Vec<String> = outages
        .iter()
        .map(|o| {
            format!(
                "{}: first 503 after {}, recovered after {}",
                o.instance,
                o.first_503_after_s
                    .map_or("-".into(), |s| format!("{s:.2} s")),
                o.recovered_after_s
                    .map_or("NEVER".into(), |s| format!("{s:.2} s")),
            )
        })
        .collect();
    out.event(
        log,
        format!(
            "{target} answering again after {:.2} s; {}",
            ready - up,
            summary.join("; ")
        ),
    );
    Ok(FaultRecord {
        kind,
        target,
        how,
        planned_s: planned.at,
        down_s: down,
        gone_s: gone,
        up_s: up,
        ready_s: ready,
        old_pid: None,
        new_pid: None,
        probes: outages,
        window_end_s: window_end + 1.0,
        traffic_503: 0,
        balancer_5xx_in_flight: 0,
    })
}

fn judge_probes(
    instance: &'static str,
    answers: &[ProbeAnswer],
    down: f64,
    ready: f64,
    pid_before: Option<u32>,
    pid_after: Option<u32>,
) -> ProbeOutage {
    let mut outage = ProbeOutage {
        instance,
        pid_before,
        pid_after,
        probes_while_down: 0,
        probes_503: 0,
        first_503_after_s: None,
        slowest_answer_s: 0.0,
        bad_probes: Vec::new(),
        recovered_after_s: None,
    };
    for a in answers {
        let took = a.answered - a.sent;
        if a.sent >= down && a.sent < ready {
            outage.probes_while_down += 1;
            outage.slowest_answer_s = outage.slowest_answer_s.max(took);
            if a.status == Some(503) {
                outage.probes_503 += 1;
            }
            let fine = (a.status == Some(503) || a.normal) && took < 1.0;
            if !fine {
                outage.bad_probes.push(format!(
                    "probe sent at {:.2} s: {} after {took:.2} s",
                    a.sent, a.describe
                ));
            }
        }
        if a.status == Some(503) && a.answered >= down && outage.first_503_after_s.is_none() {
            outage.first_503_after_s = Some(a.answered - down);
        }
        if a.normal && a.sent >= ready && outage.recovered_after_s.is_none() {
            outage.recovered_after_s = Some((a.answered - ready).max(0.0));
        }
    }
    outage
}

async fn prober(
    log: Arc<Log>,
    addr: SocketAddr,
    target: &'static str,
    probe: Probe,
    ready: watch::Receiver<Option<f64>>,
    stop: Arc<AtomicBool>,
) -> Vec<ProbeAnswer> {
    let mut http = Http::new(addr, target, &log);
    let mut answers = Vec::new();
    let mut recovered_at: Option<f64> = None;
    while !stop.load(Ordering::Relaxed) {
        let (kind, req, normal_status) = match &probe {
            Probe::Status { path, cookie } => {
                ("probe_redis", Req::get(path.clone()).cookie(cookie), 200)
            }
            Probe::Token { form } => {
                let pairs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                ("probe_postgres", Req::post(paths::TOKEN).form(&pairs), 400)
            }
        };
        let reply = http.call(kind, req.timeout(Duration::from_secs(5))).await;
        let normal = reply.status == Some(normal_status);
        answers.push(ProbeAnswer {
            sent: reply.sent,
            answered: reply.answered,
            status: reply.status,
            normal,
            describe: reply.describe(),
        });
        let back = *ready.borrow();
        if let Some(back) = back {
            if normal && reply.sent >= back {
                recovered_at.get_or_insert(reply.answered);
            }
            let now = log.now();
            if recovered_at.is_some_and(|r| now > r + 1.0) || now > back + 30.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answers
}

// ---- the sampler ------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct RssSeries {
    pub instance: &'static str,
    pub pid: u32,
    pub first_s: f64,
    /// `[seconds, MiB]` every second.
    pub samples: Vec<[f64; 2]>,
}

#[derive(Default)]
pub struct Samples {
    pub rss: Vec<RssSeries>,
    /// The last `qrlogin_audit_rows_dropped_total` read from each process.
    pub dropped: BTreeMap<u32, u64>,
}

pub async fn sample(
    live: SharedLive,
    metrics: [SocketAddr; 2],
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Samples {
    let mut samples = Samples::default();
    while !stop.load(Ordering::Relaxed) {
        sample_once(&live, metrics, clock, &mut samples).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}

pub async fn sample_once(
    live: &SharedLive,
    metrics: [SocketAddr; 2],
    clock: Clock,
    samples: &mut Samples,
) {
    let pids = stack::live_pids(live);
    for (slot, pid) in pids.iter().enumerate() {
        let Some(pid) = *pid else { continue };
        let t = clock.now();
        if let Some(bytes) = stack::rss_bytes(pid) {
            let mib = (bytes as f64 / 1048576.0 * 10.0).round() / 10.0;
            let t = (t * 10.0).round() / 10.0;
            match samples
                .rss
                .iter_mut()
                .rev()
                .find(|s| s.instance == NAMES[slot])
            {
                Some(series) if series.pid == pid => series.samples.push([t, mib]),
                _ => samples.rss.push(RssSeries {
                    instance: NAMES[slot],
                    pid,
                    first_s: t,
                    samples: vec![[t, mib]],
                }),
            }
        }
        if let Some(dropped) = stack::audit_rows_dropped(metrics[slot]).await {
            samples.dropped.insert(pid, dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_twice_kills_before_the_memory_window() {
        for duration in [60.0, 600.0] {
            let plan = schedule(duration);
            let count = |f: fn(&FaultKind) -> bool| plan.iter().filter(|p| f(&p.kind)).count();
            assert_eq!(count(|k| matches!(k, FaultKind::Kill(_))), 2);
            assert_eq!(count(|k| matches!(k, FaultKind::Redis { .. })), 2);
            assert_eq!(count(|k| matches!(k, FaultKind::Postgres { .. })), 2);
            let window = duration - (duration / 2.0).min(300.0);
            let outage = outage_for(duration);
            for p in &plan {
                if matches!(p.kind, FaultKind::Kill(_)) {
                    assert!(p.at + outage < window, "{duration}: kill at {}", p.at);
                }
            }
            assert!(plan.iter().all(|p| p.at + outage < duration));
        }
        assert_eq!(outage_for(60.0), 2.0);
        assert_eq!(outage_for(600.0), 6.0);
    }
}
