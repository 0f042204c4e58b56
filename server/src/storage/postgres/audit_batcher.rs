//! Audit rows for PostgreSQL, written in batches by one task: a request
//! only pushes its row into a buffer; every [`AUDIT_DELAY`] (or when
//! someone flushes) the task stores everything buffered in one multi-row
//! INSERT. A row is dropped only when the buffer is full; one that fails to
//! be written (the database is down) stays buffered and is tried again.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::domain::audit::AuditRecord;

/// Rows waiting to be written; beyond this new rows are dropped (and
/// counted by the audit log) rather than slowing requests down.
const AUDIT_QUEUE: usize = 65_536;
/// Most rows in one INSERT.
const BATCH: usize = 4096;
/// Longest a row waits for company.
const AUDIT_DELAY: Duration = Duration::from_millis(50);

type Buffer = Arc<Mutex<VecDeque<AuditRecord>>>;
type FlushDone = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub(super) struct AuditBatcher {
    buffer: Buffer,
    flushes: mpsc::UnboundedSender<FlushDone>,
}

fn lock(buffer: &Buffer) -> MutexGuard<'_, VecDeque<AuditRecord>> {
    // Nothing panics while holding the lock: a poisoned buffer is intact.
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AuditBatcher {
    /// Starts the writing task; it ends (after a last write) when every
    /// clone is dropped.
    pub fn start(pool: PgPool) -> Self {
        let buffer = Buffer::default();
        let (flushes, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, buffer.clone(), requests));
        Self { buffer, flushes }
    }

    /// Buffers a row; false when the buffer is full.
    pub fn push(&self, record: AuditRecord) -> bool {
        let mut buffer = lock(&self.buffer);
        if buffer.len() >= AUDIT_QUEUE {
            return false;
        }
        buffer.push_back(record);
        true
    }

    /// Resolves once everything buffered before it is stored.
    pub async fn flush(&self) -> Result<(), String> {
        let (done, written) = oneshot::channel();
        self.flushes
            .send(done)
            .map_err(|_| "the audit writer has stopped".to_owned())?;
        written
            .await
            .map_err(|_| "the audit writer has stopped".to_owned())?
    }
}

async fn run(pool: PgPool, buffer: Buffer, mut requests: mpsc::UnboundedReceiver<FlushDone>) {
    let mut tick = tokio::time::interval(AUDIT_DELAY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut waiting = Vec::new();
        let last = tokio::select! {
            _ = tick.tick() => false,
            request = requests.recv() => match request {
                Some(done) => { waiting.push(done); false }
                None => true,
            },
        };
        while let Ok(done) = requests.try_recv() {
            waiting.push(done);
        }
        let result = write_buffered(&pool, &buffer).await;
        if let Err(err) = &result {
            tracing::warn!(error = %err, "cannot write audit rows; they stay queued");
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
        if last {
            return;
        }
    }
}

/// Writes what is buffered, a batch at a time; a batch that fails goes
/// back to the front of the buffer.
async fn write_buffered(pool: &PgPool, buffer: &Buffer) -> Result<(), String> {
    loop {
        let batch: Vec<AuditRecord> = {
            let mut buffer = lock(buffer);
            let n = buffer.len().min(BATCH);
            buffer.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(err) = insert(pool, &batch).await {
            let mut buffer = lock(buffer);
            for record in batch.into_iter().rev() {
                buffer.push_front(record);
            }
            buffer.truncate(AUDIT_QUEUE);
            return Err(err.to_string());
        }
    }
}

/// One INSERT for the whole batch: a column per array.
async fn insert(pool: &PgPool, batch: &[AuditRecord]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&AuditRecord) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_events
           (at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[])",
    )
    .bind(batch.iter().map(|r| r.at as i64).collect::<Vec<_>>())
    .bind(column(|r| Some(r.event.as_str().to_owned())))
    .bind(column(|r| r.login_id.clone()))
    .bind(batch.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(column(|r| r.session_id.clone()))
    .bind(column(|r| r.client_id.clone()))
    .bind(column(|r| Some(r.ip.clone())))
    .bind(column(|r| Some(r.user_agent.clone())))
    .bind(column(|r| r.actor.clone()))
    .execute(pool)
    .await?;
    Ok(())
}
