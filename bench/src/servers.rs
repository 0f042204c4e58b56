//! The two servers under test, each its own process on a free loopback port.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::{io::AsyncWriteExt, process::Command};

use crate::client::{Conn, Proto};

pub const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const BENCH_USER: &str = "bench";
pub const BENCH_PASSWORD: &str = "benchmark-password-1";

/// Where the release build put things, and a scratch folder for this run.
pub struct Paths {
    pub qrlogin: PathBuf,
    pub site_root: PathBuf,
    pub scratch: tempfile::TempDir,
}

impl Paths {
    pub fn new(qrlogin: PathBuf, site_root: PathBuf) -> anyhow::Result<Self> {
        if !qrlogin.is_file() {
            bail!(
                "{} is missing: build it with `cargo leptos build --release` (scripts/bench.sh does)",
                qrlogin.display()
            );
        }
        Ok(Self {
            qrlogin,
            site_root,
            scratch: tempfile::Builder::new()
                .prefix("qrlogin-bench-")
                .tempdir()?,
        })
    }

    /// The SQLite database of the single-instance parts.
    pub fn database(&self) -> String {
        self.scratch.path().join("bench.db").display().to_string()
    }
}

/// PostgreSQL and Redis for the two-instance part.
#[derive(Clone)]
pub struct Shared {
    pub postgres: String,
    pub redis: String,
}

pub struct Server {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pid: u32,
    /// Where its Prometheus metrics are, if it serves them.
    metrics: Option<SocketAddr>,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

fn log_file(paths: &Paths, name: &str) -> anyhow::Result<(Stdio, Stdio)> {
    let file = std::fs::File::create(paths.scratch.path().join(format!("{name}.log")))?;
    Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
}

/// Adds the phone's account to `database` through the real CLI.
pub async fn add_bench_user(paths: &Paths, database: &str) -> anyhow::Result<()> {
    let mut child = Command::new(&paths.qrlogin)
        .args(["user", "add", BENCH_USER, "--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{BENCH_PASSWORD}\n").as_bytes())
            .await?;
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("`qrlogin user add` failed: {status}");
    }
    Ok(())
}

impl Server {
    /// The release qrlogin on SQLite, limits off (all load comes from one
    /// address) and codes that outlive the run.
    pub async fn qrlogin(paths: &Paths, name: &str) -> anyhow::Result<Self> {
        Self::qrlogin_with(paths, name, &paths.database(), &[]).await
    }

    /// One of several instances sharing `shared`, its Redis keys under
    /// `prefix` (each measurement starts from an empty Redis), serving
    /// metrics (the audit rows it dropped are read from there).
    pub async fn qrlogin_shared(
        paths: &Paths,
        name: &str,
        shared: &Shared,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let metrics = free_port()?;
        let metrics_arg = metrics.to_string();
        let extra = [
            "--redis",
            &shared.redis,
            "--redis-prefix",
            prefix,
            "--metrics-addr",
            &metrics_arg,
        ];
        let mut server = Self::qrlogin_with(paths, name, &shared.postgres, &extra).await?;
        server.metrics = Some(metrics);
        Ok(server)
    }

    /// Audit rows the server dropped so far (from its metrics).
    pub async fn audit_rows_dropped(&self) -> anyhow::Result<u64> {
        let text = self.metrics_text().await?;
        // Absent until the first drop.
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("qrlogin_audit_rows_dropped_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Its Prometheus metrics, as text.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let addr = self.metrics.context("this server serves no metrics")?;
        let mut conn = Conn::open(addr, LOOPBACK, Proto::H1).await?;
        let answer = conn.get("/metrics").await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    async fn qrlogin_with(
        paths: &Paths,
        name: &str,
        database: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let (out, err) = log_file(paths, name)?;
        let mut command = Command::new(&paths.qrlogin);
        command
            .arg("serve")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--public-url")
            .arg(format!("http://{addr}"))
            .args(["--database", database])
            .args(extra)
            .arg("--site-root")
            .arg(&paths.site_root)
            .args(["--pending-ttl", "3600", "--scanned-ttl", "3600"])
            .args([
                "--limit-sign-in",
                "0",
                "--limit-create",
                "0",
                "--limit-poll",
                "0",
            ])
            .args(["--limit-scan", "0", "--limit-decide", "0"])
            .stdout(out)
            .stderr(err);
        Self::start(command, addr).await
    }

    /// The plain axum baseline: this same binary, `baseline` subcommand.
    pub async fn baseline(paths: &Paths) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let (out, err) = log_file(paths, "baseline")?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("baseline")
            .arg("--addr")
            .arg(addr.to_string())
            .stdout(out)
            .stderr(err);
        Self::start(command, addr).await
    }

    async fn start(mut command: Command, addr: SocketAddr) -> anyhow::Result<Self> {
        let mut child = command.kill_on_drop(true).spawn()?;
        let pid = child.id().context("server exited at once")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("server on {addr} exited: {status} (see its log in the scratch folder)");
            }
            if let Ok(mut conn) = Conn::open(addr, LOOPBACK, Proto::H1).await {
                if conn.get("/healthz").await.is_ok_and(|a| a.status == 200) {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("server on {addr} did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            addr,
            pid,
            metrics: None,
        })
    }

    /// CPU time the server has used (user + system), from /proc; in
    /// clock ticks of 10 ms, so measure over seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        // USER_HZ is 100 on Linux whatever the kernel's own tick.
        Ok(cpu_ticks(self.pid)? as f64 / 100.0)
    }

    /// Resident memory, from /proc.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_of(self.pid)
    }

    /// Waits until the server has used no CPU for 300 ms: every request
    /// sent so far has been read and parked (at most 60 s).
    pub async fn wait_until_idle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = cpu_ticks(self.pid)?;
        let mut quiet = 0;
        while quiet < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = cpu_ticks(self.pid)?;
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
        Ok(())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// User + system CPU time, in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmRSS in /proc status")?
        .parse()?;
    Ok(kb * 1024)
}
