//! The run's results: JSON, a Markdown table for BENCHMARKS.md, an SVG chart.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{bail, Context};
use plotters::prelude::*;
use serde::Serialize;

use crate::{
    bundle::{kb, Bundle},
    client::Proto,
    cluster::ClusterResults,
    first_qr::FirstQr,
    scenarios::{Flow, WaitingLevel},
};

const BEGIN: &str = "<!-- bench:begin (written by scripts/bench.sh) -->";
const END: &str = "<!-- bench:end -->";
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub open_files_limit: u64,
}

#[derive(Serialize)]
pub struct Target {
    pub name: &'static str,
    pub target: &'static str,
    pub measured: String,
    pub met: bool,
}

#[derive(Serialize)]
pub struct Results {
    pub date: String,
    pub commit: String,
    pub quick: bool,
    pub duration_s: f64,
    pub machine: Machine,
    pub waiting: Vec<WaitingLevel>,
    pub flow: Flow,
    pub bundle: Bundle,
    pub first_qr: FirstQr,
    /// Two instances on PostgreSQL + Redis, when the run had them.
    pub cluster: Option<ClusterResults>,
    pub targets: Vec<Target>,
}

pub(crate) fn machine(open_files_limit: u64) -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory_kb: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: (memory_kb / MIB * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        open_files_limit,
    }
}

pub(crate) fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{hash} (with uncommitted changes)"),
        _ => hash,
    }
}

impl Results {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        repo: &Path,
        quick: bool,
        open_files_limit: u64,
        duration: Duration,
        waiting: Vec<WaitingLevel>,
        flow: Flow,
        bundle: Bundle,
        first_qr: FirstQr,
        cluster: Option<ClusterResults>,
    ) -> anyhow::Result<Self> {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let mut results = Self {
            date,
            commit: commit(repo),
            quick,
            duration_s: duration.as_secs_f64(),
            machine: machine(open_files_limit),
            waiting,
            flow,
            bundle,
            first_qr,
            cluster,
            targets: Vec::new(),
        };
        results.targets = results.judge();
        Ok(results)
    }

    fn largest(&self, proto: Proto) -> Option<&WaitingLevel> {
        self.waiting
            .iter()
            .filter(|l| l.proto == proto)
            .max_by_key(|l| l.waiters)
    }

    fn judge(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let worst_p99 = self
            .waiting
            .iter()
            .max_by(|a, b| a.approve.p99_ms.total_cmp(&b.approve.p99_ms));
        if let Some(worst) = worst_p99 {
            targets.push(Target {
                name: "approve → waiting desktop answered",
                target: "p99 ≤ 5 ms",
                measured: format!(
                    "worst p99 {:.2} ms ({} waiters, {})",
                    worst.approve.p99_ms,
                    worst.waiters,
                    proto_name(worst.proto)
                ),
                met: self.waiting.iter().all(|l| l.approve.p99_ms <= 5.0),
            });
        }
        if let Some(most) = self.largest(Proto::H2) {
            targets.push(Target {
                name: "desktops waiting at once",
                target: "100,000 (h2c) with ≤ 1 GiB server RSS, create p99 ≤ 2 ms meanwhile",
                measured: format!(
                    "{} waiting, RSS {:.0} MiB, {} failed; create p99 {:.2} ms meanwhile",
                    most.waiters,
                    most.rss_waiting_bytes as f64 / MIB,
                    most.failed_waiters,
                    most.create_while_waiting.p99_ms
                ),
                met: most.waiters >= 100_000
                    && most.rss_waiting_bytes <= 1 << 30
                    && most.create_while_waiting.p99_ms <= 2.0
                    && most.failed_waiters == 0,
            });
        }
        if let Some(most) = self.largest(Proto::H1) {
            targets.push(Target {
                name: "memory per desktop waiting over HTTP/1.1",
                target: "≤ 20 KiB",
                measured: format!(
                    "{:.1} KiB ({} waiting, a connection each)",
                    most.rss_per_1k_waiters_bytes as f64 / 1024.0 / 1000.0,
                    most.waiters
                ),
                met: most.rss_per_1k_waiters_bytes <= 20 * 1024 * 1000,
            });
        }
        targets.push(flow_target(
            "whole flow vs four plain axum requests",
            "≤ 2×",
            2.0,
            &self.flow,
        ));
        if let Some(c) = &self.cluster {
            let worst = c
                .levels
                .iter()
                .max_by(|a, b| a.approve.p99_ms.total_cmp(&b.approve.p99_ms));
            if let Some(worst) = worst {
                targets.push(Target {
                    name: "approve on B → desktop waiting on A answered (two instances, Redis)",
                    target: "p99 ≤ 5 ms",
                    measured: format!(
                        "worst p99 {:.2} ms ({} waiting across both)",
                        worst.approve.p99_ms, worst.waiters
                    ),
                    met: c.levels.iter().all(|l| l.approve.p99_ms <= 5.0),
                });
            }
            targets.push(Target {
                name: "Redis round trips per sign-in (two instances)",
                target: "≤ 6",
                measured: format!(
                    "{:.2} ({:.1} Redis commands, those in scripts included)",
                    c.redis_round_trips_per_sign_in, c.redis_round_trips.commands_per_sign_in
                ),
                met: c.redis_round_trips_per_sign_in <= crate::cluster::ROUND_TRIPS_TARGET,
            });
            targets.push(flow_target(
                "whole flow across two instances (desktop on A, phone on B) vs four plain axum requests",
                "≤ 6×",
                6.0,
                &c.flow,
            ));
        }
        targets.push(Target {
            name: "login page WASM + JS",
            target: "≤ 100 kB brotli",
            measured: format!("{:.1} kB brotli", kb(self.bundle.wasm_js.brotli)),
            met: kb(self.bundle.wasm_js.brotli) <= 100.0,
        });
        targets.push(Target {
            name: "first QR on screen",
            target: "≤ 200 ms after navigation",
            measured: format!(
                "median {:.0} ms cold, {:.0} ms warm",
                self.first_qr.cold_median_ms, self.first_qr.warm_median_ms
            ),
            met: self.first_qr.cold_median_ms <= 200.0,
        });
        targets
    }

    /// Every figure the report promises is there and plausible.
    pub fn check_complete(&self) -> anyhow::Result<()> {
        for level in &self.waiting {
            if level.approve.samples == 0 || level.rss_waiting_bytes == 0 {
                bail!("{} waiters: figures missing", level.waiters);
            }
            if level.failed_waiters > 0 {
                bail!(
                    "{} waiters: {} polls failed",
                    level.waiters,
                    level.failed_waiters
                );
            }
        }
        for proto in [Proto::H1, Proto::H2] {
            if self.largest(proto).is_none() {
                bail!("no waiting level over {}", proto_name(proto));
            }
        }
        if self
            .flow
            .rounds
            .iter()
            .chain([&self.flow.one_client])
            .any(|r| r.flows_per_s <= 0.0 || r.baseline_requests_per_s <= 0.0)
        {
            bail!("a throughput round did no work");
        }
        if self.bundle.wasm_js.brotli == 0 || self.first_qr.cold_ms.is_empty() {
            bail!("bundle or first-QR figures missing");
        }
        // One instance: approve p99, desktops waiting, HTTP/1.1 memory, flow,
        // bundle, first QR; two instances: their p99, round trips, flow.
        let expected = 6 + 3 * usize::from(self.cluster.is_some());
        if self.targets.len() != expected {
            bail!("only {} of {expected} targets judged", self.targets.len());
        }
        if let Some(c) = &self.cluster {
            if c.levels.is_empty()
                || c.levels.iter().any(|l| {
                    l.approve.samples == 0
                        || l.rss_waiting_bytes.contains(&0)
                        || l.failed_waiters > 0
                })
                || c.flow.rounds.iter().any(|r| r.flows_per_s <= 0.0)
            {
                bail!("two-instance figures missing or failed");
            }
            if c.redis_round_trips_per_sign_in <= 0.0 {
                bail!("no Redis round trips counted");
            }
            if c.audit_rows_dropped > 0 {
                bail!(
                    "the two instances dropped {} audit rows under load",
                    c.audit_rows_dropped
                );
            }
        }
        Ok(())
    }
}

/// A target on a flow's median ratio under load (the one-client ratio shown
/// beside it).
fn flow_target(name: &'static str, target: &'static str, at_most: f64, flow: &Flow) -> Target {
    Target {
        name,
        target,
        measured: format!(
            "{:.2}× under load (median of {} rounds); {:.2}× one client at a time",
            flow.ratio_median,
            flow.rounds.len(),
            flow.one_client.ratio
        ),
        met: flow.ratio_median <= at_most,
    }
}

fn proto_name(proto: Proto) -> &'static str {
    match proto {
        Proto::H1 => "HTTP/1.1",
        Proto::H2 => "h2c",
    }
}

/// results.json and latency.svg into `out`; the table into `markdown`.
pub fn write(results: &Results, out: &Path, markdown: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let path = out.join("results.json");
    let mut json = serde_json::to_string_pretty(results)?;
    // The soak's part is `qrlogin-bench soak`'s to write: kept as it was.
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(soak) = crate::json_splice::get(&old, "soak") {
        let soak = soak.replace("\n  ", "\n");
        json = crate::json_splice::set(&json, "soak", &soak).context("results.json")?;
    }
    std::fs::write(path, json)?;
    chart(results, &out.join("latency.svg"))?;
    if let Some(markdown) = markdown {
        let old = std::fs::read_to_string(markdown)
            .with_context(|| format!("reading {}", markdown.display()))?;
        let (head, rest) = old
            .split_once(BEGIN)
            .with_context(|| format!("{} has no `{BEGIN}` line", markdown.display()))?;
        let (_, tail) = rest
            .split_once(END)
            .with_context(|| format!("{} has no `{END}` line", markdown.display()))?;
        let new = format!("{head}{BEGIN}\n{}{END}{tail}", table(results));
        std::fs::write(markdown, new)?;
    }
    Ok(())
}

pub fn summary(results: &Results) -> String {
    let mut s = String::new();
    if results.quick {
        s.push_str("smoke run: small numbers, so the verdicts below mean nothing; scripts/bench.sh judges the targets\n");
    }
    for t in &results.targets {
        let verdict = if t.met { "met" } else { "MISSED" };
        let _ = writeln!(s, "{verdict:>6}  {} ({}): {}", t.name, t.target, t.measured);
    }
    s
}

fn table(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Run of {} on commit `{}`: {} ({} cores, {} GiB, Linux {}, open-files limit {}); {:.0} s in all.\n",
        r.date, r.commit, m.cpu, m.cores, m.memory_gib, m.kernel, m.open_files_limit, r.duration_s
    );
    s.push_str("### Targets\n\n| target | design | measured | |\n|---|---|---|---|\n");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.name,
            t.target,
            t.measured,
            if t.met { "met" } else { "**missed**" }
        );
    }
    s.push_str(
        "\n### Approve → waiting desktop answered, and memory while waiting\n\n\
         N desktops long-poll (`wait=30`, polling again when it runs out); a phone scans, \
         then approves one at a time; the time is from sending approve to the desktop's \
         poll answer. Where N is below the approvals timed, the approvals run in rounds of N \
         fresh attempts, each round with all N waiting. RSS is the server's VmRSS (/proc) with \
         all N waiting. \
         Create latency is `POST /api/v1/logins`, one at a time, before and while they wait.\n\n\
         | protocol | waiters | connections | approvals | p50 ms | p99 ms | max ms | RSS MiB | RSS per 1k waiters | create p50 / p99 ms idle | create p50 / p99 ms waiting | set-up s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in &r.waiting {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} MiB | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} |",
            proto_name(l.proto),
            l.waiters,
            l.connections,
            l.approve.samples,
            l.approve.p50_ms,
            l.approve.p99_ms,
            l.approve.max_ms,
            l.rss_waiting_bytes as f64 / MIB,
            l.rss_per_1k_waiters_bytes as f64 / MIB,
            l.create_idle.p50_ms,
            l.create_idle.p99_ms,
            l.create_while_waiting.p50_ms,
            l.create_while_waiting.p99_ms,
            l.setup_s
        );
    }
    let f = &r.flow;
    let _ = write!(
        s,
        "\n### Whole flow against plain axum\n\n\
         {} clients, each on its own keep-alive HTTP/1.1 connections, {} s per round, the \
         baseline and qrlogin alternating; then one client each, one request at a time. A flow \
         is {} requests: create, scan, a status read (the desktop learns the match code), \
         approve, redeem. Ratio = cost of one flow / cost of four baseline requests = baseline \
         req/s ÷ (4 × flows/s), the load generator's own work included (it shares the 2 cores). \
         Server CPU is each server's user + system time from /proc over the round, per request \
         or flow; its ratio leaves the load generator out.\n\n{FLOW_HEADER}",
        f.concurrency, f.seconds_per_round, f.requests_per_flow
    );
    flow_rows(&mut s, f);
    if let Some(c) = &r.cluster {
        cluster_tables(&mut s, c);
    }
    s.push_str(
        "\n### Login bundle (release, as served from target/site/pkg)\n\n\
         gzip level 9, brotli quality 11.\n\n\
         | file | raw kB | gzip kB | brotli kB |\n|---|---:|---:|---:|\n",
    );
    let b = &r.bundle;
    for file in b.files.iter().chain([&b.wasm_js, &b.total]) {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.1} |",
            file.file,
            kb(file.raw),
            kb(file.gzip),
            kb(file.brotli)
        );
    }
    let q = &r.first_qr;
    let _ = write!(
        s,
        "\n### First QR on screen\n\n\
         Debian Chromium via Playwright: time from navigation start (the page's \
         `performance.now()` clock) until the QR's `<svg>` is in the DOM, seen by a \
         MutationObserver that reports through the console (nothing is evaluated in \
         the page while it loads); the median of {} loads each, after one unmeasured \
         load that starts Chromium.\n\n\
         | loads | median ms | all ms |\n|---|---:|---|\n\
         | cold (new context, empty cache) | {:.0} | {} |\n\
         | warm (reload, cached WASM) | {:.0} | {} |\n\n\
         ![approve latency against waiting desktops](docs/bench/latency.svg)\n\n",
        q.loads,
        q.cold_median_ms,
        join_ms(&q.cold_ms),
        q.warm_median_ms,
        join_ms(&q.warm_ms)
    );
    s
}

/// The table header every flow table shares, then its rows.
const FLOW_HEADER: &str = "| round | plain axum req/s | qrlogin flows/s | ratio | baseline server CPU µs/request | qrlogin server CPU µs/flow | CPU ratio |\n\
     |---:|---:|---:|---:|---:|---:|---:|\n";

fn flow_rows(s: &mut String, f: &Flow) {
    let row = |s: &mut String, name: &str, round: &crate::scenarios::FlowRound| {
        let _ = writeln!(s, "| {name} | {} |", round.table_cells());
    };
    for (i, round) in f.rounds.iter().enumerate() {
        row(s, &(i + 1).to_string(), round);
    }
    let _ = writeln!(s, "| median | | | **{:.2}** | | | |", f.ratio_median);
    row(s, "one client each", &f.one_client);
}

fn cluster_tables(s: &mut String, c: &ClusterResults) {
    s.push_str(
        "\n### Two instances on PostgreSQL + Redis\n\n\
         Two qrlogin processes share one PostgreSQL and one Redis (both on unix sockets, \
         started by scripts/bench.sh from Debian's packages, on the same 2 cores). Half the \
         desktops long-poll on A, half on B (h2c); each is approved through the *other* \
         instance, so every answer travels approve → Redis PUBLISH → the waiting \
         instance's one subscriber → the desktop's poll.\n\n\
         | waiters (half on each) | approvals | p50 ms | p99 ms | max ms | RSS A MiB | RSS B MiB | set-up s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in &c.levels {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} |",
            l.waiters,
            l.approve.samples,
            l.approve.p50_ms,
            l.approve.p99_ms,
            l.approve.max_ms,
            l.rss_waiting_bytes[0] as f64 / MIB,
            l.rss_waiting_bytes[1] as f64 / MIB,
            l.setup_s
        );
    }
    let _ = write!(
        s,
        "\nThe whole flow on the two instances (the desktop on A, the phone on B; qrlogin's CPU \
         is both instances' together; PostgreSQL's and Redis's own CPU is not counted, they \
         share the machine) against the same plain axum, {} clients; audit rows dropped meanwhile \
         (from the instances' metrics): {}.\n\n{FLOW_HEADER}",
        c.flow.concurrency, c.audit_rows_dropped
    );
    flow_rows(s, &c.flow);
    let r = &c.redis_round_trips;
    let by_op = r
        .by_op
        .iter()
        .map(|(op, n)| format!("{op} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        s,
        "\nRedis round trips per sign-in ({} sign-ins one at a time, desktop on A, phone on B, \
         counted by Redis's `INFO commandstats` before and after: every call qrlogin makes is \
         one script): **{:.2}** (target ≤ {}); {:.1} commands with those the scripts ran. \
         By operation (the instances' `qrlogin_redis_round_trips_total`): {by_op}.\n",
        r.sign_ins,
        r.round_trips_per_sign_in,
        crate::cluster::ROUND_TRIPS_TARGET,
        r.commands_per_sign_in
    );
}

fn join_ms(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One figure of a waiting level.
type Figure = fn(&WaitingLevel) -> f64;

/// p50 / p99 / max of approve → answered against N, log-scaled N.
fn chart(results: &Results, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let max_n = results
        .waiting
        .iter()
        .map(|l| l.waiters)
        .max()
        .unwrap_or(10) as f64;
    let max_ms = results
        .waiting
        .iter()
        .map(|l| l.approve.max_ms)
        .fold(5.5_f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("approve → waiting desktop answered", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((10.0..max_n * 1.5).log_scale(), 0.0..max_ms * 1.1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("desktops waiting")
        .y_desc("ms")
        .x_label_formatter(&|n| format!("{n:.0}"))
        .draw()
        .map_err(plot_error)?;
    let target = [(10.0, 5.0), (max_n * 1.5, 5.0)];
    chart
        .draw_series(LineSeries::new(target, RED.stroke_width(1)))
        .map_err(plot_error)?
        .label("target p99 ≤ 5 ms")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    let series: [(&str, Figure, RGBColor); 3] = [
        ("p50", |l| l.approve.p50_ms, GREEN),
        ("p99", |l| l.approve.p99_ms, BLUE),
        ("max", |l| l.approve.max_ms, BLACK),
    ];
    for proto in [Proto::H1, Proto::H2] {
        let levels: Vec<&WaitingLevel> = results
            .waiting
            .iter()
            .filter(|l| l.proto == proto)
            .collect();
        for (name, value, color) in series {
            let points: Vec<(f64, f64)> = levels
                .iter()
                .map(|l| (l.waiters as f64, value(l)))
                .collect();
            let style = if proto == Proto::H1 {
                color.stroke_width(1)
            } else {
                color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(points.clone(), style).point_size(3))
                .map_err(plot_error)?
                .label(format!("{name} {}", proto_name(proto)))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}
