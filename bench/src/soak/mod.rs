//! `qrlogin-bench soak`: two instances behind nginx on PostgreSQL + Redis,
//! mixed traffic for `--duration` seconds while a fault schedule kills an
//! instance with SIGKILL and starts it again, restarts Redis and restarts
//! PostgreSQL, each twice; then the invariants are checked from what the
//! clients saw, the probes, the instances' RSS, logs and metrics, and the
//! audit trail. Exits non-zero when any invariant has a violation.
//!
//! - [`stack`]: the processes (PostgreSQL, Redis, nginx, qrlogin);
//! - [`traffic`]: the scenarios, through nginx;
//! - [`faults`]: the schedule, the probes, the RSS sampler;
//! - [`checks`]: the invariants; [`report`]: results.json and BENCHMARKS.md.

mod checks;
mod faults;
mod http;
mod log;
mod report;
mod stack;
mod traffic;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use app::api::{paths, Me, SignedIn};
use serde_json::json;
use tokio::task::JoinSet;

use self::{
    checks::{AuditRow, Input},
    http::{Http, Req},
    log::{Clock, Log},
    report::{Setup, SoakResults, Traffic},
    stack::{InstanceSettings, Programs, Stack},
    traffic::{Account, OidcClient, PhoneSession, World},
};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Seconds of traffic (the faults are spread over them).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// People with a phone, each running one scenario after another.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Desktops that only wait (a new code when theirs runs out).
    #[arg(long, default_value_t = 20)]
    idle_desktops: usize,
    #[arg(long, default_value = "target/release/qrlogin")]
    qrlogin: PathBuf,
    #[arg(long, default_value = "target/site")]
    site_root: PathBuf,
    /// PostgreSQL's server programs (initdb, pg_ctl, psql).
    #[arg(
        long,
        env = "QRLOGIN_PG_BIN",
        default_value = "/usr/lib/postgresql/15/bin"
    )]
    pg_bin: PathBuf,
    /// [default: redis-server on PATH]
    #[arg(long)]
    redis_server: Option<PathBuf>,
    /// [default: nginx on PATH, or /usr/sbin/nginx]
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Folder whose results.json gets the `soak` object.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Markdown file that gets the "## Soak" section.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
    /// Leave the Markdown file alone (the test command's run).
    #[arg(long)]
    no_markdown: bool,
    /// Keep the scratch folder (data, logs) even when every invariant held.
    #[arg(long)]
    keep: bool,
}

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const TTLS: InstanceSettings = InstanceSettings {
    pending_ttl: 30,
    scanned_ttl: 30,
    approved_ttl: 20,
};

fn on_path(name: &str, fallback: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(fallback))
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    if args.duration < 30.0 {
        bail!("--duration must be at least 30 s (six faults, one after another)");
    }
    let repo = std::env::current_dir()?;
    let wall = Instant::now();
    let open_files = rlimit::increase_nofile_limit(u64::MAX)?;
    let programs = Programs {
        qrlogin: args.qrlogin.clone(),
        site_root: args.site_root.clone(),
        pg_bin: args.pg_bin.clone(),
        redis_server: args
            .redis_server
            .clone()
            .unwrap_or_else(|| on_path("redis-server", "/usr/bin/redis-server")),
        nginx: args
            .nginx
            .clone()
            .unwrap_or_else(|| on_path("nginx", "/usr/sbin/nginx")),
    };
    eprintln!("soak: PostgreSQL, Redis, two qrlogin instances and nginx");
    let mut stack = Stack::prepare(programs, TTLS).await?;
    eprintln!(
        "  scratch folder (data, logs): {}",
        stack.dir.path().display()
    );
    stack.start_postgres().await?;
    stack.start_redis().await?;

    // Accounts and the app, through the CLI (which migrates the database).
    let accounts: Vec<Account> = (0..args.users)
        .map(|i| Account {
            username: format!("soak{i}"),
            password: format!("soak-password-{i}-{}", std::process::id()),
        })
        .collect();
    let intruder = Account {
        username: "intruder".into(),
        password: format!("intruder-password-{}", std::process::id()),
    };
    for account in accounts.iter().chain([&intruder]) {
        stack
            .cli(
                &["user", "add", &account.username],
                Some(&format!("{}\n", account.password)),
            )
            .await?;
    }
    let added = stack
        .cli(
            &[
                "client",
                "add",
                "Soak app",
                "--redirect-uri",
                REDIRECT_URI,
                "--json",
            ],
            None,
        )
        .await?;
    let added: serde_json::Value =
        serde_json::from_str(added.trim()).context("`client add --json` printed no JSON")?;
    let client = OidcClient {
        id: added["client_id"].as_str().unwrap_or_default().to_owned(),
        secret: added["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        redirect_uri: REDIRECT_URI.to_owned(),
    };
    for slot in 0..2 {
        stack.start_instance(slot).await?;
    }
    stack.start_nginx().await?;

    let clock = Clock::start();
    let log = Arc::new(Log::new(clock));
    let (intruder_phone, intruder_session) = sign_in_directly(&log, stack.front, &intruder).await?;
    let world = Arc::new(World {
        log: log.clone(),
        front: stack.front,
        instances: [stack.instances[0].addr, stack.instances[1].addr],
        client,
        phones: accounts,
        intruder: intruder_phone,
        pending_ttl: TTLS.pending_ttl as f64,
        scanned_ttl: TTLS.scanned_ttl as f64,
        approved_ttl: TTLS.approved_ttl as f64,
        stop: AtomicBool::new(false),
        abandoned: Mutex::default(),
    });
    let metrics = [stack.instances[0].metrics, stack.instances[1].metrics];
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(faults::sample(
        stack.live.clone(),
        metrics,
        clock,
        sampling.clone(),
    ));
    let duration = args.duration;
    let plan = faults::schedule(duration);
    let outage = faults::outage_for(duration);
    eprintln!(
        "soak: {duration:.0} s of traffic ({} people, {} waiting desktops); faults at {} s",
        args.users,
        args.idle_desktops,
        plan.iter()
            .map(|p| format!("{:.0}", p.at))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut users = JoinSet::new();
    for i in 0..args.users {
        users.spawn(traffic::user(world.clone(), i));
    }
    let abandoned = tokio::spawn(traffic::check_abandoned(world.clone(), true));
    let mut idle = JoinSet::new();
    for i in 0..args.idle_desktops {
        idle.spawn(traffic::idle_desktop(world.clone(), i));
    }

    let mut fault_run = faults::run(&mut stack, &world, &plan, duration, outage).await;

    world.stop.store(true, Ordering::Relaxed);
    idle.abort_all();
    while idle.join_next().await.is_some() {}
    eprintln!(
        "soak: traffic stopped at {:.1} s; the flows under way finish",
        log.now()
    );
    let drained = tokio::time::timeout(Duration::from_secs(180), async {
        while users.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!("soak: flows still running after 180 s were cut short");
        users.abort_all();
    }
    eprintln!("soak: waiting for the abandoned approvals to expire");
    let _ = abandoned.await;
    traffic::check_abandoned(world.clone(), false).await;
    sampling.store(true, Ordering::Relaxed);
    let mut samples = sampler.await.unwrap_or_default();
    faults::sample_once(&stack.live, metrics, clock, &mut samples).await;

    // Graceful stops write the instances' queued audit rows.
    stack.stop_nginx().await;
    for slot in 0..2 {
        stack.stop_instance(slot).await;
    }
    let audit = audit_rows(&stack).await?;
    let account_ids: HashMap<String, String> = stack
        .query("SELECT username, id FROM accounts")
        .await?
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
        .collect();
    let sessions: Vec<(String, String)> = stack
        .query("SELECT account_id, method FROM sessions")
        .await?
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
        .collect();
    let log_lines = stack
        .logs
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                name,
                stack::grep(path, "panicked"),
                stack::grep(path, "audit queue full"),
            )
        })
        .collect();
    stack.shutdown().await;

    let recorded = log.take();
    let instance_addrs = [
        stack.instances[0].addr.to_string(),
        stack.instances[1].addr.to_string(),
    ];
    let verdict = checks::evaluate(Input {
        recorded: &recorded,
        faults: &mut fault_run,
        samples: &samples,
        duration,
        instance_addrs,
        audit: &audit,
        accounts: &account_ids,
        sessions: &sessions,
        intruder: &intruder.username,
        intruder_sessions: &HashSet::from([intruder_session]),
        log_lines,
    });
    let violations: u64 = verdict.invariants.iter().map(|i| i.violations).sum();
    let mut devices: BTreeMap<String, u64> = BTreeMap::new();
    for d in &recorded.devices {
        let what = format!(
            "{} ({}), {}",
            if d.approve { "approved" } else { "denied" },
            if d.told_ok {
                "phone told ok"
            } else {
                "phone not told ok"
            },
            d.outcome
        );
        *devices.entry(what).or_default() += 1;
    }
    let results = SoakResults {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        commit: crate::report::commit(&repo),
        machine: crate::report::machine(open_files),
        duration_s: duration,
        wall_s: wall.elapsed().as_secs_f64(),
        passed: violations == 0,
        violations,
        setup: Setup {
            instances: 2,
            users: args.users,
            idle_desktops: args.idle_desktops,
            balancer: "nginx (as scripts/cluster.sh: round robin, no stickiness, keep-alive to the instances, a dead one skipped; but a failed instance is tried again after 1 s, not 10 s, so that two kills 11 s apart in the short run never leave it with no instance to try)",
            stores: "PostgreSQL 15 and Redis (appendonly, appendfsync always) on UNIX sockets",
            pending_ttl_s: TTLS.pending_ttl,
            scanned_ttl_s: TTLS.scanned_ttl,
            approved_ttl_s: TTLS.approved_ttl,
            outage_s: outage,
        },
        invariants: verdict.invariants,
        faults: fault_run.faults,
        timeline: fault_run.events,
        rss: verdict.rss,
        audit: verdict.audit,
        traffic: Traffic {
            requests: recorded.calls.len() as u64,
            requests_per_s: recorded.calls.len() as f64 / duration,
            unanswered: verdict.unanswered,
            flows: recorded.flows.clone(),
            attempts: checks::attempt_outcomes(&recorded),
            devices,
            calls: log::count_calls(&recorded.calls),
            unexpected: recorded.unexpected.clone(),
        },
        rss_series: samples.rss,
    };
    report::write(
        &results,
        &args.out,
        (!args.no_markdown).then_some(args.markdown.as_path()),
    )?;
    print!("{}", report::summary(&results));
    if violations > 0 || args.keep {
        let kept = stack.keep();
        eprintln!("soak: kept {} (data and logs)", kept.display());
    }
    if violations > 0 {
        bail!(
            "{violations} invariant violation(s); see {}",
            args.out.join("results.json").display()
        );
    }
    Ok(())
}

/// The intruder's phone, signed in before the traffic; and its session id.
async fn sign_in_directly(
    log: &Arc<Log>,
    front: std::net::SocketAddr,
    account: &Account,
) -> anyhow::Result<(PhoneSession, String)> {
    let mut http = Http::new(front, "front", log);
    let body = json!({ "username": account.username, "password": account.password });
    let reply = http
        .until_answered("sign_in", 30.0, || Req::post(paths::SESSION).json(&body))
        .await;
    let signed_in: SignedIn = reply
        .json()
        .with_context(|| format!("the intruder cannot sign in: {}", reply.describe()))?;
    let reply = http
        .until_answered("me", 30.0, || Req::get(paths::ME).bearer(&signed_in.token))
        .await;
    let me: Me = reply
        .json()
        .with_context(|| format!("/me: {}", reply.describe()))?;
    Ok((
        PhoneSession {
            username: signed_in.user.username,
            token: signed_in.token,
        },
        me.session.id,
    ))
}

async fn audit_rows(stack: &Stack) -> anyhow::Result<Vec<AuditRow>> {
    let rows = stack
        .query(
            "SELECT event, coalesce(login_id, ''), coalesce(account_id::text, ''), \
             coalesce(session_id, '') FROM audit_events WHERE event IN ('login_created', \
             'login_scanned', 'login_approved', 'login_denied', 'login_redeemed', \
             'login_cancelled', 'signed_in')",
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|mut r| {
            r.resize(4, String::new());
            AuditRow {
                event: std::mem::take(&mut r[0]),
                login_id: std::mem::take(&mut r[1]),
                account_id: std::mem::take(&mut r[2]),
                session_id: std::mem::take(&mut r[3]),
            }
        })
        .collect())
}
