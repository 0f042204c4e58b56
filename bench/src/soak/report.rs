//! The soak's results: a `soak` object merged into docs/bench/results.json
//! (the other keys kept), and a "## Soak" section in BENCHMARKS.md between
//! markers of its own (made at the end of the file the first time).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Context;
use serde::Serialize;

use super::{
    checks::{AuditSummary, InvariantResult, RssVerdict},
    faults::{Event, FaultRecord, RssSeries},
    log::KindCount,
};
use crate::{json_splice, report::Machine};

const BEGIN: &str =
    "<!-- soak:begin (written by `qrlogin-bench soak`, scripts/bench.sh --soak) -->";
const END: &str = "<!-- soak:end -->";

#[derive(Serialize)]
pub struct Setup {
    pub instances: usize,
    pub users: usize,
    pub idle_desktops: usize,
    pub balancer: &'static str,
    pub stores: &'static str,
    pub pending_ttl_s: u64,
    pub scanned_ttl_s: u64,
    pub approved_ttl_s: u64,
    pub outage_s: f64,
}

#[derive(Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub requests_per_s: f64,
    /// Calls with no answer at all (connection broken, timed out).
    pub unanswered: u64,
    /// Finished flows by scenario.
    pub flows: BTreeMap<&'static str, u64>,
    /// Login attempts by scenario and end.
    pub attempts: BTreeMap<String, u64>,
    /// Device authorizations by what the phone did and how they ended.
    pub devices: BTreeMap<String, u64>,
    pub calls: BTreeMap<&'static str, KindCount>,
    /// Answers a scenario did not expect (not violations by themselves).
    pub unexpected: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub struct SoakResults {
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    pub duration_s: f64,
    pub wall_s: f64,
    pub passed: bool,
    pub violations: u64,
    pub setup: Setup,
    pub invariants: Vec<InvariantResult>,
    pub faults: Vec<FaultRecord>,
    pub timeline: Vec<Event>,
    pub rss: Vec<RssVerdict>,
    pub audit: AuditSummary,
    pub traffic: Traffic,
    /// Each process's RSS, `[seconds, MiB]` every second; an instance started
    /// again after a SIGKILL is a new series.
    pub rss_series: Vec<RssSeries>,
}

/// `soak` into `out`/results.json, and the section into `markdown`.
pub fn write(results: &SoakResults, out: &Path, markdown: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let path = out.join("results.json");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "{}".into());
    let new = json_splice::set(&old, "soak", &serde_json::to_string_pretty(results)?)
        .with_context(|| format!("{} is not a JSON object", path.display()))?;
    std::fs::write(&path, new)?;
    if let Some(markdown) = markdown {
        let old = std::fs::read_to_string(markdown)
            .with_context(|| format!("reading {}", markdown.display()))?;
        let section = format!("{BEGIN}\n{}{END}", section(results));
        let new = match old.split_once(BEGIN) {
            Some((head, rest)) => {
                let (_, tail) = rest
                    .split_once(END)
                    .with_context(|| format!("{} has no `{END}` line", markdown.display()))?;
                format!("{head}{section}{tail}")
            }
            None => format!("{}\n\n## Soak\n\n{section}\n", old.trim_end()),
        };
        std::fs::write(markdown, new)?;
    }
    Ok(())
}

fn opt_s(value: Option<f64>) -> String {
    value.map_or("never".into(), |v| format!("{v:.2}"))
}

/// The generated part of the "## Soak" section.
pub fn section(r: &SoakResults) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let setup = &r.setup;
    let _ = writeln!(
        s,
        "Run of {} on commit `{}`: {:.0} s of traffic, {:.0} s in all; {} ({} cores, {} GiB, Linux {}). \
         **{}**: {} violation{}.\n",
        r.date,
        r.commit,
        r.duration_s,
        r.wall_s,
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        if r.passed { "Passed" } else { "Failed" },
        r.violations,
        if r.violations == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        s,
        "`qrlogin-bench soak` starts its own {stores}, {n} release instances sharing them and {balancer} \
         in front. {users} people, each with a phone signed in by password, loop through nginx over \
         the scenarios below (QR sign-ins approved and redeemed, some with two redeems at once, \
         denied, with the wrong number picked, scanned afterwards by an intruder account, \
         approved and walked away from, cancelled; password sign-ins signed out or revoked from \
         the phone; QR sessions revoked from the phone; the OpenID Connect code flow with refresh \
         and revocation; the device flow approved or denied), while {idle} more desktops only \
         wait. TTLs: pending {p} s, scanned {sc} s, approved {a} s; rate limits off (everything \
         comes from 127.0.0.1). Every client retries a 503 or a broken connection as the pages \
         do. The faults run one after another, each store or instance down for {o:.0} s; during \
         each store outage a prober asks each instance directly every 100 ms for something that \
         needs that store (a status read for Redis, a token request for PostgreSQL).\n",
        stores = setup.stores,
        n = setup.instances,
        balancer = setup.balancer,
        users = setup.users,
        idle = setup.idle_desktops,
        p = setup.pending_ttl_s,
        sc = setup.scanned_ttl_s,
        a = setup.approved_ttl_s,
        o = setup.outage_s,
    );
    s.push_str("### Invariants\n\n| invariant | checked | violations |\n|---|---:|---:|\n");
    for i in &r.invariants {
        let _ = writeln!(
            s,
            "| `{}`: {} | {} | {} |",
            i.name,
            i.description,
            i.checked,
            if i.violations == 0 {
                "0".to_owned()
            } else {
                format!("**{}**", i.violations)
            }
        );
    }
    for i in r.invariants.iter().filter(|i| i.violations > 0) {
        let _ = writeln!(s, "\n`{}` ({} in all):\n", i.name, i.violations);
        for d in &i.details {
            let _ = writeln!(s, "- {d}");
        }
    }
    s.push_str(
        "\n### Fault timeline\n\nTimes in seconds from the start of the traffic. *First 503* is \
         from the stop signal to the first 503 a prober got; *recovered* from the store answering \
         again to the instance answering normally (same process). *Traffic 503s* are the clients' \
         answers inside the outage; *nginx 502s* are requests that were in flight on an instance \
         when it was killed.\n\n\
         | # | at | fault | down for | back after | first 503 A / B | recovered A / B | traffic 503s | nginx 502s |\n\
         |---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (n, f) in r.faults.iter().enumerate() {
        let probe = |name: &str| f.probes.iter().find(|p| p.instance == name);
        let (first, recovered) = if f.probes.is_empty() {
            ("–".to_owned(), "–".to_owned())
        } else {
            (
                format!(
                    "{} / {}",
                    opt_s(probe("A").and_then(|p| p.first_503_after_s)),
                    opt_s(probe("B").and_then(|p| p.first_503_after_s))
                ),
                format!(
                    "{} / {}",
                    opt_s(probe("A").and_then(|p| p.recovered_after_s)),
                    opt_s(probe("B").and_then(|p| p.recovered_after_s))
                ),
            )
        };
        let what = match f.kind {
            "instance_sigkill" => format!(
                "instance {}: {} (pid {} → {})",
                f.target,
                f.how,
                f.old_pid.map_or("?".into(), |p| p.to_string()),
                f.new_pid.map_or("?".into(), |p| p.to_string())
            ),
            _ => format!("{}: {}", f.target, f.how),
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {what} | {:.1} | {:.2} | {first} | {recovered} | {} | {} |",
            n + 1,
            f.down_s,
            f.up_s - f.down_s,
            f.ready_s - f.up_s,
            f.traffic_503,
            f.balancer_5xx_in_flight
        );
    }
    let other_events: Vec<&Event> = r
        .timeline
        .iter()
        .filter(|e| e.what.contains("by itself") || e.what.contains("failed"))
        .collect();
    for e in other_events {
        let _ = writeln!(s, "\n- {:.1} s: {}", e.t_s, e.what);
    }
    let t = &r.traffic;
    let _ = write!(
        s,
        "\n### Traffic\n\n{} requests ({:.0} a second), {} of them without an answer (broken by a \
         kill, or during a restart).\n\n| scenario | flows |\n|---|---:|\n",
        t.requests, t.requests_per_s, t.unanswered
    );
    for (name, n) in &t.flows {
        let _ = writeln!(s, "| {name} | {n} |");
    }
    s.push_str("\n| login attempts, by scenario and end | attempts |\n|---|---:|\n");
    for (name, n) in &t.attempts {
        let _ = writeln!(s, "| {name} | {n} |");
    }
    for (name, n) in &t.devices {
        let _ = writeln!(s, "| device: {name} | {n} |");
    }
    if !t.unexpected.is_empty() {
        s.push_str(
            "\nAnswers a scenario did not expect (none of them an invariant's business by \
             itself; the first 15):\n\n",
        );
        let mut unexpected: Vec<(&String, &u64)> = t.unexpected.iter().collect();
        unexpected.sort_by(|a, b| b.1.cmp(a.1));
        for (what, n) in unexpected.into_iter().take(15) {
            let _ = writeln!(s, "- {n} × {what}");
        }
    }
    let a = &r.audit;
    let _ = write!(
        s,
        "\n### Audit trail and memory\n\n{} audit rows read; the clients' answers promised {} \
         (a created, scanned, approved, denied, redeemed or cancelled attempt, a session \
         signed in): {} missing, {} of them queued on an instance in the second before it was \
         SIGKILLed (the documented loss: at most 50 ms of rows). Rows dropped per the \
         instances' metrics: {}.\n\n\
         RSS is each instance's VmRSS (/proc) every second. The judged window is the last 5 \
         minutes (the last half of shorter runs), on the process each slot has at the end; an \
         instance started again after a SIGKILL begins a new series (both kills come before \
         the window), and a process younger than the window is judged from 10 s after its \
         start. A password hash (argon2id) holds 19 MiB while it runs, and the allocator may \
         keep it for 10-20 s, so samples swing by multiples of that; a leak raises the floor, \
         so growth is the lowest RSS of the window's last third against the lowest of its \
         first third (the medians of both thirds are shown too). Windows under 2 minutes (the \
         60-s run's) are reported, not judged: their thirds are too short for that floor.\n\n\
         | instance | pid | window s | samples | floor first → last MiB | median first → last MiB | max MiB | floor growth |\n\
         |---|---:|---|---:|---:|---:|---:|---:|\n",
        a.rows_read, a.expected_rows, a.missing_rows, a.lost_with_a_kill, a.dropped_by_metrics
    );
    for v in &r.rss {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0}–{:.0} | {} | {:.1} → {:.1} | {:.1} → {:.1} | {:.1} | {:+.1} %{} |",
            v.instance,
            v.pid,
            v.window_s[0],
            v.window_s[1],
            v.samples,
            v.floor_first_mib,
            v.floor_last_mib,
            v.median_first_mib,
            v.median_last_mib,
            v.max_mib,
            v.growth_percent,
            if v.judged {
                ""
            } else {
                " (window under 2 minutes: not judged)"
            }
        );
    }
    s.push('\n');
    s
}

/// A few lines for the terminal.
pub fn summary(r: &SoakResults) -> String {
    let mut s = String::new();
    for i in &r.invariants {
        let _ = writeln!(
            s,
            "{:>6}  {} ({} checked, {} violations)",
            if i.violations == 0 { "ok" } else { "FAILED" },
            i.name,
            i.checked,
            i.violations
        );
        for d in i.details.iter().take(5) {
            let _ = writeln!(s, "          {d}");
        }
    }
    s
}
