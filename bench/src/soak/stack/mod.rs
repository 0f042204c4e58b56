//! What the soak runs, and breaks: its own PostgreSQL and Redis (on UNIX
//! sockets in a scratch folder, as scripts/services.sh starts them), two
//! qrlogin instances, and nginx in front of them (round robin, no
//! stickiness, as scripts/cluster.sh). Every process is this one's child
//! (PostgreSQL through `pg_ctl`), so each can be killed and started again.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
};

mod instances;

pub use self::instances::Instance;

use crate::{
    client::{Conn, Proto},
    servers::LOOPBACK,
};

/// The live process of each instance slot, for the sampler.
#[derive(Default)]
pub struct Live {
    pub pids: [Option<u32>; 2],
}

pub type SharedLive = Arc<Mutex<Live>>;

pub fn live_pids(live: &SharedLive) -> [Option<u32>; 2] {
    live.lock().unwrap_or_else(PoisonError::into_inner).pids
}

/// Where the programs are.
pub struct Programs {
    pub qrlogin: PathBuf,
    pub site_root: PathBuf,
    pub pg_bin: PathBuf,
    pub redis_server: PathBuf,
    pub nginx: PathBuf,
}

/// Settings every instance gets.
pub struct InstanceSettings {
    pub pending_ttl: u64,
    pub scanned_ttl: u64,
    pub approved_ttl: u64,
}

pub const NAMES: [&str; 2] = ["A", "B"];
pub const REDIS_PREFIX: &str = "soak:";

pub struct Stack {
    pub dir: tempfile::TempDir,
    programs: Programs,
    settings: InstanceSettings,
    as_root: bool,
    redis: Option<Child>,
    nginx: Option<Child>,
    postgres_up: bool,
    pub instances: [Instance; 2],
    pub front: SocketAddr,
    pub live: SharedLive,
    /// Every instance log written, for the panic and drop checks.
    pub logs: Vec<PathBuf>,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command to its end; fails with its output when it fails.
async fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `limit` for `child` to end, then kills it.
async fn reap(child: &mut Child, limit: Duration) {
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

impl Stack {
    /// The scratch folder and PostgreSQL's data in it; nothing started.
    pub async fn prepare(programs: Programs, settings: InstanceSettings) -> anyhow::Result<Self> {
        for (what, path) in [
            ("qrlogin", &programs.qrlogin),
            ("initdb", &programs.pg_bin.join("initdb")),
            ("redis-server", &programs.redis_server),
            ("nginx", &programs.nginx),
        ] {
            if !path.is_file() {
                bail!("{what} is missing: {}", path.display());
            }
        }
        // Short and plain: it goes into socket paths and config files.
        let dir = tempfile::Builder::new()
            .prefix("qrsoak-")
            .tempdir_in("/tmp")?;
        let as_root = is_root();
        if as_root {
            // PostgreSQL refuses to run as root; its user must own the
            // folder, and nginx's unprivileged worker must pass through.
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
                "chown",
            )
            .await?;
            run(Command::new("chmod").arg("711").arg(dir.path()), "chmod").await?;
        }
        let stack = Self {
            dir,
            programs,
            settings,
            as_root,
            redis: None,
            nginx: None,
            postgres_up: false,
            instances: [Instance::new(NAMES[0])?, Instance::new(NAMES[1])?],
            front: free_port()?,
            live: SharedLive::default(),
            logs: Vec::new(),
        };
        let mut initdb = stack.pg_command("initdb");
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(stack.path("pg"));
        run(&mut initdb, "initdb").await?;
        Ok(stack)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn postgres_url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port=5432",
            self.dir.path().display()
        )
    }

    pub fn redis_url(&self) -> String {
        format!("redis+unix://{}", self.path("redis.sock").display())
    }

    /// One of PostgreSQL's server tools, as the postgres user when root.
    fn pg_command(&self, tool: &str) -> Command {
        let program = self.programs.pg_bin.join(tool);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The caller's folder may be closed to the postgres user.
        command.current_dir("/");
        command
    }

    // ---- PostgreSQL ---------------------------------------------------------

    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        let opts = format!(
            "-k {} -c listen_addresses='' -p 5432",
            self.dir.path().display()
        );
        let mut start = self.pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.path("pg"))
            .args(["-w", "-t", "60", "-l"])
            .arg(self.path("pg.log"))
            .arg("-o")
            .arg(opts)
            .arg("start");
        run(&mut start, "pg_ctl start").await?;
        self.postgres_up = true;
        Ok(())
    }

    /// `fast`: connections closed, a shutdown checkpoint; `immediate`:
    /// everything killed at once, crash recovery at the next start.
    pub async fn stop_postgres(&mut self, mode: &str) -> anyhow::Result<()> {
        let mut stop = self.pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.path("pg"))
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        run(&mut stop, "pg_ctl stop").await?;
        self.postgres_up = false;
        Ok(())
    }

    /// Rows of `sql`, tab-separated columns.
    pub async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let mut psql = Command::new(self.programs.pg_bin.join("psql"));
        psql.arg("-h")
            .arg(self.dir.path())
            .args([
                "-p", "5432", "-U", "postgres", "-d", "postgres", "-XAtq", "-F", "\t", "-c",
            ])
            .arg(sql);
        let out = run(&mut psql, "psql").await?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(ToOwned::to_owned).collect())
            .collect())
    }

    // ---- Redis --------------------------------------------------------------

    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path().display();
        // Every write fsynced: approvals must survive a restart (as
        // scripts/services.sh and docs/deploy.md configure it).
        let config = format!(
            "port 0\nunixsocket {dir}/redis.sock\nunixsocketperm 777\ndaemonize no\n\
             logfile {dir}/redis.log\ndir {dir}\nappendonly yes\nappendfsync always\nsave \"\"\n"
        );
        std::fs::write(self.path("redis.conf"), config)?;
        let child = Command::new(&self.programs.redis_server)
            .arg(self.path("redis.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server")?;
        self.redis = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if self.redis_ping().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "Redis did not answer PING within 30 s (see {})",
            self.path("redis.log").display()
        )
    }

    async fn redis_ping(&self) -> bool {
        let Ok(mut socket) = tokio::net::UnixStream::connect(self.path("redis.sock")).await else {
            return false;
        };
        if socket.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), socket.read(&mut answer)).await,
            Ok(Ok(n)) if answer[..n].starts_with(b"+PONG")
        )
    }

    /// Stops Redis with SIGTERM (it writes what it has and exits) or
    /// SIGKILL; returns once the process is gone.
    pub async fn stop_redis(&mut self, kill: bool) -> anyhow::Result<()> {
        let mut child = self.redis.take().context("Redis is not running")?;
        match (kill, child.id()) {
            (false, Some(pid)) => signal(pid, "TERM"),
            _ => child.start_kill()?,
        }
        reap(&mut child, Duration::from_secs(30)).await;
        Ok(())
    }

    // ---- nginx --------------------------------------------------------------

    pub async fn start_nginx(&mut self) -> anyhow::Result<()> {
        let prefix = self.path("nginx");
        std::fs::create_dir_all(prefix.join("tmp"))?;
        let p = prefix.display();
        let upstreams: String = self
            .instances
            .iter()
            .map(|i| format!("    server {} max_fails=1 fail_timeout=1s;\n", i.addr))
            .collect();
        // As scripts/services.sh's start_balancer, in the foreground.
        let config = format!(
            r#"daemon off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {p}/tmp/client_body;
  proxy_temp_path {p}/tmp/proxy;
  fastcgi_temp_path {p}/tmp/fastcgi;
  uwsgi_temp_path {p}/tmp/uwsgi;
  scgi_temp_path {p}/tmp/scgi;
  upstream qrlogin {{
{upstreams}    keepalive 32;
  }}
  server {{
    listen {front};
    keepalive_requests 100000;
    location / {{
      proxy_pass http://qrlogin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "";
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 60s;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"#,
            front = self.front
        );
        std::fs::write(prefix.join("nginx.conf"), config)?;
        let child = Command::new(&self.programs.nginx)
            .arg("-p")
            .arg(format!("{p}/"))
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start nginx")?;
        self.nginx = Some(child);
        wait_for_port(self.front, "nginx").await
    }

    // ---- qrlogin ------------------------------------------------------------

    /// A `qrlogin` CLI command against the soak's stores; `stdin` is fed to it.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut child = Command::new(&self.programs.qrlogin)
            .args(args)
            .arg("--database")
            .arg(self.postgres_url())
            .arg("--redis")
            .arg(self.redis_url())
            .args(["--redis-prefix", REDIS_PREFIX])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run qrlogin")?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or("").as_bytes()).await?;
        }
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "`qrlogin {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops everything, instances first (so their audit queues are
    /// written), then nginx, Redis and PostgreSQL.
    pub async fn shutdown(&mut self) {
        for slot in 0..2 {
            self.stop_instance(slot).await;
        }
        self.stop_nginx().await;
        if self.redis.is_some() {
            let _ = self.stop_redis(false).await;
        }
        if self.postgres_up {
            let _ = self.stop_postgres("fast").await;
        }
    }

    pub async fn stop_nginx(&mut self) {
        if let Some(mut nginx) = self.nginx.take() {
            // SIGTERM: nginx's fast shutdown (SIGQUIT would wait for polls).
            if let Some(pid) = nginx.id() {
                signal(pid, "TERM");
            }
            reap(&mut nginx, Duration::from_secs(10)).await;
        }
    }

    /// Leaves the scratch folder (data, logs) in place; returns it.
    pub fn keep(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_owned()
    }
}

impl Drop for Stack {
    /// After an error: nothing may outlive the soak. (Children with
    /// kill_on_drop go by themselves; nginx's worker and PostgreSQL not.)
    fn drop(&mut self) {
        if let Some(pid) = self.nginx.as_ref().and_then(Child::id) {
            signal(pid, "TERM");
        }
        if self.postgres_up {
            let program = self.programs.pg_bin.join("pg_ctl");
            let mut command = if self.as_root {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                std::process::Command::new(program)
            };
            let _ = command
                .current_dir("/")
                .arg("-D")
                .arg(self.path("pg"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn wait_for_port(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{what} does not listen on {addr}")
}

/// Resident memory of `pid`, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `qrlogin_audit_rows_dropped_total` from an instance's metrics.
pub async fn audit_rows_dropped(metrics: SocketAddr) -> Option<u64> {
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        Conn::open(metrics, LOOPBACK, Proto::H1),
    )
    .await
    .ok()?
    .ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(2), conn.get("/metrics"))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer.body);
    // Absent until the first drop.
    Some(
        text.lines()
            .find_map(|line| line.strip_prefix("qrlogin_audit_rows_dropped_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map_or(0, |n| n as u64),
    )
}

/// Lines of the log at `path` containing `needle`.
pub fn grep(path: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter(|l| l.contains(needle))
                .map(ToOwned::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
