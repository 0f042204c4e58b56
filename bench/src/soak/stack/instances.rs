//! The two qrlogin instances: started (again) on their own ports, killed
//! with SIGKILL, stopped with SIGTERM, watched for exiting by themselves.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::PoisonError,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use super::{free_port, reap, signal, Stack, NAMES, REDIS_PREFIX};
use crate::{
    client::{Conn, Proto},
    servers::LOOPBACK,
};

pub struct Instance {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    child: Option<Child>,
    pub pid: Option<u32>,
    /// How many processes this slot has had.
    pub generation: u32,
}

impl Instance {
    pub(super) fn new(name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            name,
            addr: free_port()?,
            metrics: free_port()?,
            child: None,
            pid: None,
            generation: 0,
        })
    }
}

impl Stack {
    /// Starts instance `slot` (again) and waits for its /healthz.
    pub async fn start_instance(&mut self, slot: usize) -> anyhow::Result<()> {
        let public_url = format!("http://{}", self.front);
        let database = self.postgres_url();
        let redis = self.redis_url();
        let site_root = self.programs.site_root.clone();
        let s = &self.settings;
        let ttls = [
            ("--pending-ttl", s.pending_ttl),
            ("--scanned-ttl", s.scanned_ttl),
            ("--approved-ttl", s.approved_ttl),
        ];
        let instance = &mut self.instances[slot];
        instance.generation += 1;
        let log_path = self.dir.path().join(format!(
            "instance-{}-{}.log",
            instance.name.to_lowercase(),
            instance.generation
        ));
        let log = std::fs::File::create(&log_path)?;
        self.logs.push(log_path);
        let mut command = Command::new(&self.programs.qrlogin);
        command
            .arg("serve")
            .arg("--addr")
            .arg(instance.addr.to_string())
            .arg("--public-url")
            .arg(&public_url)
            .args(["--database", &database, "--redis", &redis])
            .args(["--redis-prefix", REDIS_PREFIX])
            .arg("--metrics-addr")
            .arg(instance.metrics.to_string())
            .arg("--site-root")
            .arg(&site_root)
            .args(["--trusted-proxies", "127.0.0.1"]);
        for (flag, value) in ttls {
            command.arg(flag).arg(value.to_string());
        }
        // Every request comes from 127.0.0.1: limits off.
        for flag in [
            "--limit-sign-in",
            "--limit-create",
            "--limit-poll",
            "--limit-scan",
            "--limit-decide",
            "--limit-user-code",
            "--limit-token",
        ] {
            command.args([flag, "0"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start qrlogin")?;
        instance.pid = child.id();
        instance.child = Some(child);
        let pid = instance.pid;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pids[slot] = pid;
        self.wait_healthy(slot).await
    }

    async fn wait_healthy(&mut self, slot: usize) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        let addr = self.instances[slot].addr;
        loop {
            if let Some(status) = self.exited(slot) {
                bail!("instance {} exited at start: {status}", NAMES[slot]);
            }
            if let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(1),
                Conn::open(addr, LOOPBACK, Proto::H1),
            )
            .await
            {
                let health =
                    tokio::time::timeout(Duration::from_secs(2), conn.get("/healthz")).await;
                if matches!(health, Ok(Ok(answer)) if answer.status == 200) {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                bail!(
                    "instance {} did not answer /healthz within 60 s",
                    NAMES[slot]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status of instance `slot`, if its process ended.
    pub fn exited(&mut self, slot: usize) -> Option<String> {
        let child = self.instances[slot].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(err) => Some(format!("cannot tell: {err}")),
        }
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn kill_instance(&mut self, slot: usize) -> anyhow::Result<()> {
        let instance = &mut self.instances[slot];
        let mut child = instance.child.take().context("instance not running")?;
        instance.pid = None;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pids[slot] = None;
        child.start_kill()?;
        reap(&mut child, Duration::from_secs(10)).await;
        Ok(())
    }

    /// SIGTERM: a graceful stop, which writes the queued audit rows.
    pub async fn stop_instance(&mut self, slot: usize) {
        let instance = &mut self.instances[slot];
        let Some(mut child) = instance.child.take() else {
            return;
        };
        instance.pid = None;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pids[slot] = None;
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
        }
        reap(&mut child, Duration::from_secs(15)).await;
    }
}
