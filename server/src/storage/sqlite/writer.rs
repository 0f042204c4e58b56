//! The one thread that makes the server's frequent SQLite writes: new
//! sessions and the audit trail. It owns its own connection and commits
//! whatever has queued up in one transaction (group commit), with
//! statements prepared once. Someone waits for a new session, so it is
//! committed at once, with the audit rows recorded meanwhile; audit rows
//! alone wait up to [`AUDIT_DELAY`] for company (a commit costs about as
//! much as a hundred rows) and never wake the thread.
//!
//! Through sqlx these writes cost a hand-off to a pool thread per statement,
//! a freshly prepared multi-row INSERT per batch size, and page-cache
//! invalidation across four connections: about a quarter of the server's
//! CPU in the benchmark's whole flow.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use super::connection::{BUSY_TIMEOUT, PRAGMAS};
use crate::domain::{account::Session, audit::AuditRecord, secret::SecretHash};

/// Audit rows waiting for a commit; beyond this they are dropped (and
/// counted by the audit log) rather than slowing requests down.
const AUDIT_QUEUE: usize = 65_536;
/// Sign-ins waiting for the writer; beyond this they wait for room.
const SESSION_QUEUE: usize = 4096;
/// Most sign-ins in one transaction.
const BATCH: usize = 1024;
/// Longest an audit row waits for a commit.
pub const AUDIT_DELAY: Duration = Duration::from_millis(50);

/// A new session's row; `done` answers once it is committed.
pub(super) struct SessionRow {
    pub token_hash: SecretHash,
    pub session: Session,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// What someone waits for.
enum Job {
    Session(SessionRow),
    /// Answered once everything recorded before it is committed.
    Flush(oneshot::Sender<()>),
}

type AuditBuffer = Arc<Mutex<Vec<AuditRecord>>>;

/// Hands writes to the writer thread. Cheap to clone; the thread ends
/// (after committing what is queued) when the last clone is dropped.
#[derive(Clone)]
pub(super) struct SqliteWriter {
    jobs: flume::Sender<Job>,
    audit: AuditBuffer,
}

#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer has stopped")]
pub struct WriterStopped;

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the writer's connection: {0}")]
    Connection(#[from] rusqlite::Error),
    #[error("cannot start the writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl SqliteWriter {
    /// Opens its connection to `path` (schema already migrated) and starts
    /// the thread.
    pub fn start(path: &Path) -> Result<Self, StartError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        for (name, value) in PRAGMAS {
            connection.pragma_update(None, name, value)?;
        }
        // It only appends: a small cache (a large one costs time to reset
        // at every commit).
        connection.pragma_update(None, "cache_size", -2000)?;
        let (jobs, queued) = flume::bounded(SESSION_QUEUE);
        let audit = AuditBuffer::default();
        let buffer = audit.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queued, buffer))?;
        Ok(Self { jobs, audit })
    }

    /// Buffers an audit row for the next commit; false when the buffer is
    /// full.
    pub fn try_audit(&self, record: AuditRecord) -> bool {
        let mut buffer = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len() >= AUDIT_QUEUE {
            return false;
        }
        buffer.push(record);
        true
    }

    /// Stores a new session; resolves once it is committed.
    pub async fn insert_session(
        &self,
        token_hash: SecretHash,
        session: Session,
    ) -> Result<Result<(), String>, WriterStopped> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send_async(Job::Session(SessionRow {
                token_hash,
                session,
                done,
            }))
            .await
            .map_err(|_| WriterStopped)?;
        committed.await.map_err(|_| WriterStopped)
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) -> Result<(), WriterStopped> {
        let (done, flushed) = oneshot::channel();
        self.jobs
            .send_async(Job::Flush(done))
            .await
            .map_err(|_| WriterStopped)?;
        flushed.await.map_err(|_| WriterStopped)
    }
}

fn run(mut connection: Connection, queued: flume::Receiver<Job>, audit: AuditBuffer) {
    let mut jobs = Vec::with_capacity(BATCH);
    loop {
        let stopping = match queued.recv_timeout(AUDIT_DELAY) {
            Ok(job) => {
                jobs.push(job);
                jobs.extend(queued.try_iter().take(BATCH - 1));
                false
            }
            Err(flume::RecvTimeoutError::Timeout) => false,
            Err(flume::RecvTimeoutError::Disconnected) => true,
        };
        // Taken after the jobs: a flush covers every row recorded before it.
        let rows = std::mem::take(&mut *audit.lock().unwrap_or_else(PoisonError::into_inner));
        if !jobs.is_empty() || !rows.is_empty() {
            commit(&mut connection, &rows, &mut jobs);
        }
        if stopping {
            break;
        }
    }
    tracing::debug!("SQLite writer stopped");
}

/// Writes one batch in one transaction and answers its waiters. A session
/// whose row is refused (its account removed meanwhile) fails alone: a
/// failed statement does not end the transaction.
fn commit(connection: &mut Connection, audit: &[AuditRecord], jobs: &mut Vec<Job>) {
    let mut sessions = Vec::new();
    let mut flushed = Vec::new();
    for job in jobs.drain(..) {
        match job {
            Job::Session(row) => sessions.push(row),
            Job::Flush(done) => flushed.push(done),
        }
    }
    match write(connection, audit, &sessions) {
        Ok(results) => {
            for (row, result) in sessions.into_iter().zip(results) {
                let _ = row.done.send(result);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, lost_audit_rows = audit.len(), "SQLite write failed");
            for row in sessions {
                let _ = row.done.send(Err(err.to_string()));
            }
        }
    }
    for done in flushed {
        let _ = done.send(());
    }
}

/// One transaction; each session's own outcome, in order.
fn write(
    connection: &mut Connection,
    audit: &[AuditRecord],
    sessions: &[SessionRow],
) -> Result<Vec<Result<(), String>>, rusqlite::Error> {
    let transaction = connection.transaction()?;
    let mut results = Vec::with_capacity(sessions.len());
    {
        let mut insert_audit = transaction.prepare_cached(
            "INSERT INTO audit_events
             (at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for r in audit {
            if let Err(err) = insert_audit.execute(params![
                r.at as i64,
                r.event.as_str(),
                r.login_id,
                r.account_id,
                r.session_id,
                r.client_id,
                r.ip,
                r.user_agent,
                r.actor,
            ]) {
                tracing::error!(error = %err, "audit row refused");
            }
        }
        let mut insert_session = transaction.prepare_cached(
            "INSERT INTO sessions
             (id, token_hash, account_id, method, user_agent, ip, created_at, last_seen_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for row in sessions {
            let s = &row.session;
            let result = insert_session.execute(params![
                s.id,
                &row.token_hash.0[..],
                s.account_id,
                s.method,
                s.user_agent,
                s.ip,
                s.created_at as i64,
                s.last_seen_at as i64,
            ]);
            results.push(result.map(|_| ()).map_err(|e| e.to_string()));
        }
    }
    transaction.commit()?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{audit::AuditEvent, secret::Secret},
        storage::{
            sqlite::{store_with_alice, SqliteStore},
            SessionStore,
        },
    };

    fn session(account_id: i64) -> (SessionRow, oneshot::Receiver<Result<(), String>>) {
        let (done, answer) = oneshot::channel();
        let row = SessionRow {
            token_hash: Secret::new_random().hash(),
            session: Session {
                id: uuid::Uuid::new_v4().to_string(),
                account_id,
                method: "qr".into(),
                user_agent: "test".into(),
                ip: "127.0.0.1".into(),
                created_at: 1_000,
                last_seen_at: 1_000,
            },
            done,
        };
        (row, answer)
    }

    fn audit_row(account_id: i64) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: 1_000,
            event: AuditEvent::LoginRedeemed,
            login_id: None,
            account_id: Some(account_id),
            session_id: None,
            client_id: None,
            ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            actor: None,
        }
    }

    /// One refused row (an account removed while its sign-in queued) fails
    /// only its own sign-in; the rest of the transaction is committed.
    #[tokio::test]
    async fn a_refused_session_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let (store, account) = store_with_alice(&path).await;
        let (good, good_answer) = session(account.id);
        let good_hash = good.token_hash;
        let (orphan, orphan_answer) = session(account.id + 1000);
        let mut connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "foreign_keys", "on")
            .unwrap();
        let mut jobs = vec![Job::Session(orphan), Job::Session(good)];
        let audit = [audit_row(account.id), audit_row(account.id)];
        commit(&mut connection, &audit, &mut jobs);

        assert!(jobs.is_empty());
        assert!(orphan_answer.await.unwrap().is_err());
        assert_eq!(good_answer.await.unwrap(), Ok(()));
        assert!(store
            .session_by_token(&good_hash, 2_000)
            .await
            .unwrap()
            .is_some());
        let audit_rows: i64 = connection
            .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(audit_rows, 2);
    }

    /// What was queued before a flush is stored when it returns.
    #[tokio::test]
    async fn flush_waits_for_queued_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let writer = store.writer.clone();
        for _ in 0..100 {
            assert!(writer.try_audit(audit_row(1)));
        }
        writer.flush().await.unwrap();
        let connection = Connection::open(&path).unwrap();
        let audit_rows: i64 = connection
            .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(audit_rows, 100);
    }
}
