//! The one thread that makes the server's frequent SQLite writes: new
//! sessions and the audit trail. It owns its own connection and commits
//! whatever has queued up while the previous commit ran in one transaction
//! (group commit), with statements prepared once.
//!
//! Through sqlx these writes cost a hand-off to a pool thread per statement,
//! a freshly prepared multi-row INSERT per batch size, and page-cache
//! invalidation across four connections: about a quarter of the server's
//! CPU in the benchmark's whole flow.

use std::{path::Path, time::Duration};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::{account::store::Session, audit::AuditRecord, secret::SecretHash};

/// Jobs waiting for the writer; beyond this, audit events are dropped
/// (and counted) while sign-ins wait for room.
const QUEUE: usize = 65_536;
/// Most jobs in one transaction.
const BATCH: usize = 1024;

/// A new session's row; `done` answers once it is committed.
pub struct SessionRow {
    pub token_hash: SecretHash,
    pub session: Session,
    pub done: oneshot::Sender<Result<(), String>>,
}

enum Job {
    Audit(AuditRecord),
    Session(SessionRow),
    /// Answered once every job sent before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Queues writes for the writer thread. Cheap to clone; the thread ends
/// (after committing what is queued) when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer has stopped")]
pub struct WriterStopped;

impl SqliteWriter {
    /// Opens its connection to `path` (schema already migrated) and starts
    /// the thread.
    pub fn start(path: &Path) -> Result<Self, rusqlite::Error> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // As the pool's connections: WAL, no fsync per commit.
        connection.pragma_update(None, "journal_mode", "wal")?;
        connection.pragma_update(None, "synchronous", "normal")?;
        connection.pragma_update(None, "foreign_keys", "on")?;
        connection.pragma_update(None, "wal_autocheckpoint", 4000)?;
        connection.pragma_update(None, "cache_size", -16000)?;
        let (jobs, queued) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queued))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { jobs })
    }

    /// Queues an audit row without waiting; false when the queue is full.
    pub fn try_audit(&self, record: AuditRecord) -> bool {
        self.jobs.try_send(Job::Audit(record)).is_ok()
    }

    /// Stores a new session; resolves once it is committed.
    pub async fn insert_session(
        &self,
        token_hash: SecretHash,
        session: Session,
    ) -> Result<Result<(), String>, WriterStopped> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job::Session(SessionRow {
                token_hash,
                session,
                done,
            }))
            .await
            .map_err(|_| WriterStopped)?;
        committed.await.map_err(|_| WriterStopped)
    }

    /// Waits until everything queued so far is committed (at shutdown).
    pub async fn flush(&self) -> Result<(), WriterStopped> {
        let (done, flushed) = oneshot::channel();
        self.jobs
            .send(Job::Flush(done))
            .await
            .map_err(|_| WriterStopped)?;
        flushed.await.map_err(|_| WriterStopped)
    }
}

fn run(mut connection: Connection, mut queued: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = queued.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH {
            match queued.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&mut connection, &mut batch);
    }
    tracing::debug!("SQLite writer stopped");
}

/// Writes `batch` in one transaction and answers its waiters. A session
/// whose row is refused (its account removed meanwhile) fails alone: a
/// failed statement does not end the transaction.
fn commit(connection: &mut Connection, batch: &mut Vec<Job>) {
    let mut audit = Vec::new();
    let mut sessions = Vec::new();
    let mut flushed = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::Audit(record) => audit.push(record),
            Job::Session(row) => sessions.push(row),
            Job::Flush(done) => flushed.push(done),
        }
    }
    match write(connection, &audit, &sessions) {
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
             (at, event, login_id, account_id, session_id, ip, user_agent)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for r in audit {
            if let Err(err) = insert_audit.execute(params![
                r.at as i64,
                r.event.as_str(),
                r.login_id,
                r.account_id,
                r.session_id,
                r.ip,
                r.user_agent,
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
        account::{
            store::{AccountStore, SqliteAccountStore},
            DisplayName, Username,
        },
        audit::AuditEvent,
        secret::Secret,
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
            at: 1_000,
            event: AuditEvent::LoginRedeemed,
            login_id: None,
            account_id: Some(account_id),
            session_id: None,
            ip: "127.0.0.1".into(),
            user_agent: "test".into(),
        }
    }

    /// One refused row (an account removed while its sign-in queued) fails
    /// only its own sign-in; the rest of the transaction is committed.
    #[tokio::test]
    async fn a_refused_session_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let store = SqliteAccountStore::open(&path).await.unwrap();
        let account = store
            .create_account(
                &Username::parse("alice").unwrap(),
                &DisplayName::parse("Alice").unwrap(),
                "not-a-hash",
                1_000,
            )
            .await
            .unwrap();
        let (good, good_answer) = session(account.id);
        let good_hash = good.token_hash;
        let (orphan, orphan_answer) = session(account.id + 1000);
        let mut connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "foreign_keys", "on")
            .unwrap();
        let mut batch = vec![
            Job::Audit(audit_row(account.id)),
            Job::Session(orphan),
            Job::Session(good),
            Job::Audit(audit_row(account.id)),
        ];
        commit(&mut connection, &mut batch);

        assert!(batch.is_empty());
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
        let store = SqliteAccountStore::open(&path).await.unwrap();
        let writer = store.writer().clone();
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
