//! What the benchmark does: waiting desktops and approvals, whole flows
//! against the baseline, the bundle and the first QR.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use app::api::{LoginState, LoginStatus};
use serde::Serialize;
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};

use crate::{
    bundle,
    client::{self, Conn, Desktop, Phone, Proto},
    cluster, first_qr,
    report::{self, Results},
    servers::{self, Paths, Server, Shared, BENCH_PASSWORD, BENCH_USER, LOOPBACK},
    stats::{median, Latency},
};

#[derive(clap::Args)]
pub struct RunArgs {
    /// A smoke run: small numbers, a few seconds; checks every figure is
    /// produced but writes only to --out.
    #[arg(long)]
    quick: bool,
    /// Waiting desktops per level over h2c (many streams per connection).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000,10000,50000,100000"
    )]
    waiters: Vec<usize>,
    /// Waiting desktops per level over HTTP/1.1 (a connection each; the
    /// open-files limit caps these).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    http1_waiters: Vec<usize>,
    /// Approvals timed per level (in rounds of fresh attempts where there
    /// are fewer waiters).
    #[arg(long, default_value_t = 1000)]
    pub(crate) samples: usize,
    /// Seconds per throughput round.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) flow_seconds: f64,
    /// Throughput rounds (baseline and qrlogin alternate; this machine's
    /// baseline swings ±20% between rounds, hence several).
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// Concurrent clients in the throughput rounds (each on its own
    /// connections), as many users signing in at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Page loads for the first-QR median (cold and warm each); cold loads
    /// in this Chromium spread over ±60 ms, so not too few.
    #[arg(long, default_value_t = 21)]
    first_qr_loads: usize,
    /// Measure one part only and print it; writes nothing (for profiling).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Folder for results.json and latency.svg.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Markdown file whose generated section gets the new table.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
    #[arg(long, default_value = "target/release/qrlogin")]
    qrlogin: PathBuf,
    #[arg(long, default_value = "target/site")]
    site_root: PathBuf,
    /// Redis for the two-instance part (`redis://…`, `redis+unix://…`);
    /// that part runs only with it and --postgres.
    #[arg(long, env = "QRLOGIN_BENCH_REDIS")]
    redis: Option<String>,
    /// PostgreSQL database for the two-instance part.
    #[arg(long, env = "QRLOGIN_BENCH_POSTGRES")]
    postgres: Option<String>,
    /// Desktops waiting across the two instances (h2c), per level.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000")]
    pub(crate) cluster_waiters: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Flow,
    FirstQr,
    Waiting,
    Cluster,
}

impl RunArgs {
    fn apply_quick(&mut self) {
        if self.quick {
            self.waiters = vec![20, 200];
            self.http1_waiters = vec![20];
            self.samples = 20;
            self.flow_seconds = 0.5;
            self.rounds = 1;
            self.first_qr_loads = 2;
            self.cluster_waiters = vec![200];
        }
    }
}

/// Streams per h2c connection (below hyper's default cap of 200).
const STREAMS_PER_CONNECTION: usize = 100;
/// Source addresses for the client's sockets (each has its own ports).
const SOURCES: u8 = 8;
const LONG_POLL_S: u32 = 30;

pub async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    args.apply_quick();
    let repo = std::env::current_dir()?;
    // Every waiting desktop is a socket on both ends.
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX)?;
    let paths = Paths::new(args.qrlogin.clone(), args.site_root.clone())?;
    servers::add_bench_user(&paths, &paths.database()).await?;
    let shared = match (&args.redis, &args.postgres) {
        (Some(redis), Some(postgres)) => {
            let shared = Shared {
                redis: redis.clone(),
                postgres: postgres.clone(),
            };
            servers::add_bench_user(&paths, &shared.postgres).await?;
            Some(shared)
        }
        _ => None,
    };
    let started = Instant::now();
    match args.only {
        Some(Part::Flow) => {
            let flow = flow_against_baseline(&paths, &args).await?;
            println!("flow ratio median {:.2}", flow.ratio_median);
            return Ok(());
        }
        Some(Part::FirstQr) => {
            let server = Server::qrlogin(&paths, "qrlogin-first-qr").await?;
            let result = first_qr::measure(&repo, server.addr, args.first_qr_loads).await;
            server.stop().await?;
            println!("{:?}", result?);
            return Ok(());
        }
        Some(Part::Cluster) => {
            let shared = shared.context("the two-instance part needs --redis and --postgres")?;
            let results = cluster::measure(&paths, &shared, &args).await?;
            println!("{results:#?}");
            return Ok(());
        }
        Some(Part::Waiting) => {
            for (proto, n) in levels(&args) {
                let level = waiting_level(&paths, proto, n, args.samples).await?;
                println!(
                    "{proto:?} {n}: {:?}; RSS {:.0} MiB ({:.1} KiB per waiter above idle); \
                     create p99 {:.2} ms while waiting ({:.1} s)",
                    level.approve,
                    level.rss_waiting_bytes as f64 / (1024.0 * 1024.0),
                    level.rss_per_1k_waiters_bytes as f64 / 1024.0 / 1000.0,
                    level.create_while_waiting.p99_ms,
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        None => {}
    }
    eprintln!(
        "[{:5.1} s] bundle: measuring {}",
        started.elapsed().as_secs_f64(),
        args.site_root.display()
    );
    let bundle = bundle::measure_site(&args.site_root)?;

    eprintln!(
        "[{:5.1} s] flow: qrlogin's whole flow against plain axum",
        started.elapsed().as_secs_f64()
    );
    let flow = flow_against_baseline(&paths, &args).await?;

    eprintln!(
        "[{:5.1} s] first QR: Chromium, {} loads",
        started.elapsed().as_secs_f64(),
        args.first_qr_loads
    );
    let first_qr = {
        let server = Server::qrlogin(&paths, "qrlogin-first-qr").await?;
        let result = first_qr::measure(&repo, server.addr, args.first_qr_loads).await;
        server.stop().await?;
        result?
    };

    let mut waiting = Vec::new();
    for (proto, n) in levels(&args) {
        eprintln!(
            "[{:5.1} s] waiting: {n} desktops over {proto:?}",
            started.elapsed().as_secs_f64()
        );
        let level = waiting_level(&paths, proto, n, args.samples).await?;
        eprintln!(
            "  approve→answered p50 {:.2} ms p99 {:.2} ms max {:.2} ms; RSS {:.0} MiB",
            level.approve.p50_ms,
            level.approve.p99_ms,
            level.approve.max_ms,
            level.rss_waiting_bytes as f64 / 1048576.0
        );
        waiting.push(level);
    }

    let cluster = match &shared {
        Some(shared) => {
            eprintln!(
                "[{:5.1} s] two instances on PostgreSQL + Redis",
                started.elapsed().as_secs_f64()
            );
            Some(cluster::measure(&paths, shared, &args).await?)
        }
        None => {
            eprintln!("two-instance part skipped: no --redis and --postgres");
            None
        }
    };

    let results = Results::new(
        &repo,
        args.quick,
        fd_limit,
        started.elapsed(),
        waiting,
        flow,
        bundle,
        first_qr,
        cluster,
    )?;
    report::write(&results, &args.out, (!args.quick).then_some(&args.markdown))?;
    results.check_complete()?;
    print!("{}", report::summary(&results));
    Ok(())
}

/// The waiting levels to measure: HTTP/1.1 ones first.
fn levels(args: &RunArgs) -> Vec<(Proto, usize)> {
    let http1 = args.http1_waiters.iter().map(|&n| (Proto::H1, n));
    http1
        .chain(args.waiters.iter().map(|&n| (Proto::H2, n)))
        .collect()
}

// ---- waiting desktops ------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct WaitingLevel {
    pub proto: Proto,
    pub waiters: usize,
    pub connections: usize,
    /// From the phone's approve call to the waiting poll's answer.
    pub approve: Latency,
    pub rss_idle_bytes: u64,
    pub rss_waiting_bytes: u64,
    pub rss_per_1k_waiters_bytes: u64,
    /// `POST /api/v1/logins` one at a time, before any desktop waits...
    pub create_idle: Latency,
    /// ...and while all of them wait.
    pub create_while_waiting: Latency,
    /// Waiters whose poll failed (should be 0).
    pub failed_waiters: usize,
    /// Seconds to create the attempts and park every poll.
    pub setup_s: f64,
}

enum WaiterEvent {
    Changed {
        index: usize,
        status: LoginStatus,
        at: Instant,
    },
    Failed {
        index: usize,
        error: String,
    },
}

/// A desktop that long-polls until its attempt is approved; gives its
/// connection back for the next round.
async fn waiter(
    index: usize,
    mut conn: Conn,
    desktop: Desktop,
    parked: Arc<AtomicUsize>,
    events: mpsc::UnboundedSender<WaiterEvent>,
) -> Option<Conn> {
    let mut since = desktop.version;
    let mut first = true;
    loop {
        let answer = client::poll(&mut conn, &desktop, since, LONG_POLL_S);
        if std::mem::take(&mut first) {
            parked.fetch_add(1, Ordering::Relaxed);
        }
        match answer.await {
            Ok(status) if status.version > since => {
                since = status.version;
                let done =
                    status.state != LoginState::Pending && status.state != LoginState::Scanned;
                let _ = events.send(WaiterEvent::Changed {
                    index,
                    status,
                    at: Instant::now(),
                });
                if done {
                    return Some(conn);
                }
            }
            Ok(_) => {} // the wait ran out: poll again, as the page does
            Err(error) => {
                let _ = events.send(WaiterEvent::Failed {
                    index,
                    error: format!("{error:#}"),
                });
                return None;
            }
        }
    }
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES as usize) as u8))
}

/// `n` client handles: a connection each over HTTP/1.1, or streams shared
/// [`STREAMS_PER_CONNECTION`] to a connection over h2c. Also returns how
/// many connections that is.
pub(crate) async fn open_handles(
    addr: SocketAddr,
    proto: Proto,
    n: usize,
) -> anyhow::Result<(Vec<Conn>, usize)> {
    match proto {
        Proto::H1 => {
            let opening = Arc::new(Semaphore::new(256));
            let mut opened = JoinSet::new();
            for i in 0..n {
                let permit = opening.clone().acquire_owned().await?;
                opened.spawn(async move {
                    let conn = Conn::open(addr, source(i), Proto::H1).await;
                    drop(permit);
                    conn
                });
            }
            let mut handles = Vec::with_capacity(n);
            while let Some(conn) = opened.join_next().await {
                handles.push(conn??);
            }
            Ok((handles, n))
        }
        Proto::H2 => {
            let count = n.div_ceil(STREAMS_PER_CONNECTION);
            let mut conns = Vec::with_capacity(count);
            for i in 0..count {
                conns.push(Conn::open(addr, source(i), Proto::H2).await?);
            }
            let handles = (0..n)
                .map(|i| {
                    conns[i / STREAMS_PER_CONNECTION]
                        .share()
                        .context("h2 connection")
                })
                .collect::<anyhow::Result<_>>()?;
            Ok((handles, count))
        }
    }
}

/// One desktop per handle, each long-polling its new attempt.
pub(crate) struct Waiting {
    desktops: Vec<Desktop>,
    pub(crate) waiters: JoinSet<Option<Conn>>,
    events: mpsc::UnboundedReceiver<WaiterEvent>,
    pub(crate) failed: usize,
}

impl Waiting {
    /// Creates the attempts and returns once every poll is parked.
    pub(crate) async fn park(server: &Server, handles: Vec<Conn>) -> anyhow::Result<Self> {
        let n = handles.len();
        let desktops = create_many(server.addr, n, 32).await?;
        let parked = Arc::new(AtomicUsize::new(0));
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut waiters = JoinSet::new();
        for (i, conn) in handles.into_iter().enumerate() {
            waiters.spawn(waiter(
                i,
                conn,
                desktops[i].clone(),
                parked.clone(),
                events_tx.clone(),
            ));
        }
        while parked.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.wait_until_idle().await?;
        let mut waiting = Self {
            desktops,
            waiters,
            events,
            failed: 0,
        };
        while let Ok(event) = waiting.events.try_recv() {
            if let WaiterEvent::Failed { index, error } = event {
                eprintln!("  waiter {index} failed: {error}");
                waiting.failed += 1;
            }
        }
        Ok(waiting)
    }

    /// Scans and approves `count` of the attempts, spread evenly, one at a
    /// time; the time from each approve call to its desktop's answer.
    pub(crate) async fn approve(
        &mut self,
        phone: &Phone,
        phone_conn: &mut Conn,
        count: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let n = self.desktops.len();
        let mut latencies = Vec::with_capacity(count);
        for k in 0..count {
            let index = k * n / count;
            let desktop = &self.desktops[index];
            phone.scan(phone_conn, &desktop.id).await?;
            let scanned = next_change(&mut self.events, index, &mut self.failed).await?;
            let match_code = scanned
                .0
                .match_code
                .context("the scanned status carries no match code")?;
            // The desktop polls again at once; let that request park.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let approving = Instant::now();
            phone.approve(phone_conn, &desktop.id, match_code).await?;
            let (status, at) = next_change(&mut self.events, index, &mut self.failed).await?;
            if status.state != LoginState::Approved {
                bail!("desktop {index} saw {:?} instead of approved", status.state);
            }
            latencies.push(at.saturating_duration_since(approving));
        }
        Ok(latencies)
    }

    /// Every waiter's connection, once all were approved.
    pub(crate) async fn handles(mut self) -> anyhow::Result<Vec<Conn>> {
        let mut handles = Vec::with_capacity(self.desktops.len());
        while let Some(conn) = self.waiters.join_next().await {
            handles.push(conn?.context("a waiter failed")?);
        }
        Ok(handles)
    }
}

/// `n` desktops waiting at once, and `samples` approvals timed: spread over
/// them when there are more waiters than samples, else in rounds of `n`
/// fresh attempts (so small levels still give a p99 of many samples).
async fn waiting_level(
    paths: &Paths,
    proto: Proto,
    n: usize,
    samples: usize,
) -> anyhow::Result<WaitingLevel> {
    let server = Server::qrlogin(paths, &format!("qrlogin-{proto:?}-{n}")).await?;
    let mut phone_conn = Conn::open(server.addr, LOOPBACK, Proto::H1).await?;
    let phone = client::sign_in(&mut phone_conn, BENCH_USER, BENCH_PASSWORD).await?;
    let create_idle = create_latency(server.addr, 200).await?;
    let rss_idle_bytes = server.rss_bytes()?;

    let setup = Instant::now();
    let (handles, connections) = open_handles(server.addr, proto, n).await?;
    let mut waiting = Waiting::park(&server, handles).await?;
    let setup_s = setup.elapsed().as_secs_f64();
    let rss_waiting_bytes = server.rss_bytes()?;
    let create_while_waiting = create_latency(server.addr, 200).await?;

    let mut latencies = Vec::with_capacity(samples);
    let mut failed_waiters = 0;
    loop {
        let count = (samples - latencies.len()).min(n);
        latencies.extend(waiting.approve(&phone, &mut phone_conn, count).await?);
        failed_waiters += waiting.failed;
        if latencies.len() >= samples {
            break;
        }
        let handles = waiting.handles().await?;
        waiting = Waiting::park(&server, handles).await?;
    }
    waiting.waiters.shutdown().await;
    server.stop().await?;
    Ok(WaitingLevel {
        proto,
        waiters: n,
        connections,
        approve: Latency::of(&latencies).context("no approvals timed")?,
        rss_idle_bytes,
        rss_waiting_bytes,
        rss_per_1k_waiters_bytes: rss_waiting_bytes.saturating_sub(rss_idle_bytes) * 1000
            / n.max(1) as u64,
        create_idle,
        create_while_waiting,
        failed_waiters,
        setup_s,
    })
}

/// The next change `index` sees; other waiters failing are counted.
async fn next_change(
    events: &mut mpsc::UnboundedReceiver<WaiterEvent>,
    index: usize,
    failed: &mut usize,
) -> anyhow::Result<(LoginStatus, Instant)> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .with_context(|| format!("desktop {index} heard nothing for 10 s"))?
            .context("every waiter is gone")?;
        match event {
            WaiterEvent::Changed {
                index: i,
                status,
                at,
            } if i == index => return Ok((status, at)),
            WaiterEvent::Failed { index: i, error } if i == index => {
                bail!("desktop {index} failed: {error}")
            }
            WaiterEvent::Failed { .. } => *failed += 1,
            WaiterEvent::Changed { .. } => {}
        }
    }
}

async fn create_many(addr: SocketAddr, n: usize, workers: usize) -> anyhow::Result<Vec<Desktop>> {
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let count = n / workers + usize::from(w < n % workers);
        tasks.spawn(async move {
            let mut conn = Conn::open(addr, source(w), Proto::H1).await?;
            let mut made = Vec::with_capacity(count);
            for _ in 0..count {
                made.push(client::create(&mut conn).await?);
            }
            anyhow::Ok(made)
        });
    }
    let mut desktops = Vec::with_capacity(n);
    while let Some(made) = tasks.join_next().await {
        desktops.extend(made??);
    }
    Ok(desktops)
}

async fn create_latency(addr: SocketAddr, count: usize) -> anyhow::Result<Latency> {
    let mut conn = Conn::open(addr, LOOPBACK, Proto::H1).await?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        client::create(&mut conn).await?;
        times.push(start.elapsed());
    }
    Latency::of(&times).context("no creates timed")
}

// ---- whole flow against the baseline ---------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct FlowRound {
    pub baseline_requests_per_s: f64,
    pub flows_per_s: f64,
    /// Cost of one flow / cost of four baseline requests.
    pub ratio: f64,
    /// The baseline server's CPU time per request (user + system, /proc).
    pub baseline_server_cpu_us: f64,
    /// qrlogin's CPU time per flow.
    pub qrlogin_server_cpu_us: f64,
    /// qrlogin's CPU per flow / the baseline's per four requests: the
    /// servers' own cost, without the load generator's.
    pub server_cpu_ratio: f64,
}

impl FlowRound {
    /// The round's figures as Markdown table cells, in field order; the
    /// report's table and the progress line both use it.
    pub fn table_cells(&self) -> String {
        format!(
            "{:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.2}",
            self.baseline_requests_per_s,
            self.flows_per_s,
            self.ratio,
            self.baseline_server_cpu_us,
            self.qrlogin_server_cpu_us,
            self.server_cpu_ratio
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    pub concurrency: usize,
    pub seconds_per_round: f64,
    /// create, scan, status read (for the match code), approve, redeem.
    pub requests_per_flow: usize,
    pub rounds: Vec<FlowRound>,
    pub ratio_median: f64,
    /// One client each, one request at a time: the ratio of latencies
    /// rather than of throughput under load.
    pub one_client: FlowRound,
}

async fn flow_against_baseline(paths: &Paths, args: &RunArgs) -> anyhow::Result<Flow> {
    let qrlogin = Server::qrlogin(paths, "qrlogin-flow").await?;
    let flow = flow_against(paths, args, &[&qrlogin]).await;
    qrlogin.stop().await?;
    flow
}

/// Whole flows on `instances` (the desktop on the first, the phone on the
/// last) against the plain axum baseline; their CPU is summed.
pub(crate) async fn flow_against(
    paths: &Paths,
    args: &RunArgs,
    instances: &[&Server],
) -> anyhow::Result<Flow> {
    let (Some(desktop_side), Some(phone_side)) = (instances.first(), instances.last()) else {
        bail!("no qrlogin instance to measure");
    };
    let addrs = (desktop_side.addr, phone_side.addr);
    let baseline = Server::baseline(paths).await?;
    let mut conn = Conn::open(phone_side.addr, LOOPBACK, Proto::H1).await?;
    let phone = Arc::new(client::sign_in(&mut conn, BENCH_USER, BENCH_PASSWORD).await?);
    let seconds = Duration::from_secs_f64(args.flow_seconds);
    // Warm both up (connections, allocator, database pages) before timing.
    run_clients(&[&baseline], args.concurrency, seconds / 4, |until| {
        hello(baseline.addr, until)
    })
    .await?;
    run_clients(instances, args.concurrency, seconds / 4, |until| {
        whole_flow(addrs, phone.clone(), until)
    })
    .await?;
    let round = |concurrency: usize| {
        let (baseline, phone) = (&baseline, &phone);
        async move {
            let (baseline_rps, baseline_cpu) =
                run_clients(&[baseline], concurrency, seconds, |until| {
                    hello(baseline.addr, until)
                })
                .await?;
            let (flows, flow_cpu) = run_clients(instances, concurrency, seconds, |until| {
                whole_flow(addrs, phone.clone(), until)
            })
            .await?;
            let round = FlowRound {
                baseline_requests_per_s: baseline_rps,
                flows_per_s: flows,
                ratio: baseline_rps / (4.0 * flows),
                baseline_server_cpu_us: baseline_cpu,
                qrlogin_server_cpu_us: flow_cpu,
                server_cpu_ratio: flow_cpu / (4.0 * baseline_cpu),
            };
            eprintln!(
                "  {concurrency} clients (baseline req/s | flows/s | ratio | baseline CPU µs/request | \
                 qrlogin CPU µs/flow | CPU ratio): {}",
                round.table_cells()
            );
            anyhow::Ok(round)
        }
    };
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        rounds.push(round(args.concurrency).await?);
    }
    let one_client = round(1).await?;
    baseline.stop().await?;
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.ratio).collect();
    Ok(Flow {
        concurrency: args.concurrency,
        seconds_per_round: args.flow_seconds,
        requests_per_flow: 5,
        ratio_median: median(&mut ratios).context("no rounds")?,
        rounds,
        one_client,
    })
}

/// `concurrency` clients, each on its own keep-alive connections, repeat
/// their work on `server` until `duration` is over; returns units of work
/// per second, and the server's CPU time per unit in µs.
async fn run_clients<F, Fut>(
    servers: &[&Server],
    concurrency: usize,
    duration: Duration,
    client: F,
) -> anyhow::Result<(f64, f64)>
where
    F: Fn(Instant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let cpu = || -> anyhow::Result<f64> { servers.iter().map(|server| server.cpu_seconds()).sum() };
    let cpu_before = cpu()?;
    let start = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        clients.spawn(client(start + duration));
    }
    let mut done = 0;
    while let Some(count) = clients.join_next().await {
        done += count??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu()? - cpu_before;
    Ok((done as f64 / elapsed, cpu * 1e6 / done.max(1) as f64))
}

async fn hello(addr: SocketAddr, until: Instant) -> anyhow::Result<u64> {
    let mut conn = Conn::open(addr, LOOPBACK, Proto::H1).await?;
    let mut done = 0;
    while Instant::now() < until {
        let answer = conn.get("/hello").await?;
        if answer.status != 200 {
            bail!("baseline answered {}", answer.status);
        }
        done += 1;
    }
    Ok(done)
}

/// create, scan, read the match code, approve, redeem: a whole sign-in,
/// the desktop on the first address and the phone on the second.
async fn whole_flow(
    (desktop_addr, phone_addr): (SocketAddr, SocketAddr),
    phone: Arc<Phone>,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut desktop_conn = Conn::open(desktop_addr, LOOPBACK, Proto::H1).await?;
    let mut phone_conn = Conn::open(phone_addr, LOOPBACK, Proto::H1).await?;
    let mut done = 0;
    while Instant::now() < until {
        one_sign_in(&mut desktop_conn, &mut phone_conn, &phone).await?;
        done += 1;
    }
    Ok(done)
}

/// One sign-in: create, scan, the desktop's long poll answered with the
/// match code (as the page waits: past the version it was created at),
/// approve, redeem.
pub(crate) async fn one_sign_in(
    desktop_conn: &mut Conn,
    phone_conn: &mut Conn,
    phone: &Phone,
) -> anyhow::Result<()> {
    let desktop = client::create(desktop_conn).await?;
    phone.scan(phone_conn, &desktop.id).await?;
    let status = client::poll(desktop_conn, &desktop, desktop.version, LONG_POLL_S).await?;
    let code = status.match_code.context("no match code after the scan")?;
    phone.approve(phone_conn, &desktop.id, code).await?;
    client::redeem(desktop_conn, &desktop).await
}
