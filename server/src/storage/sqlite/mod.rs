//! The SQLite back-end (the embedded default) for accounts, sessions and
//! the audit trail: pragmas, migrations and the writer thread all live in
//! this module. Reads go through a small sqlx pool; the frequent writes
//! (new sessions, audit rows) through one [`writer::SqliteWriter`] thread.

mod connection;
mod writer;

use std::{path::Path, str::FromStr};

use async_trait::async_trait;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    SqlitePool,
};

use crate::domain::{
    account::{Account, NewSession, Session, SignInRecord, SESSION_IDLE_LIMIT_MS},
    audit::{AuditEvent, AuditRecord},
    secret::SecretHash,
    time::UnixMillis,
};
use crate::storage::{
    sql_rows::{audit_from, session_and_account_from, session_from, sign_in_from},
    traits::{AuditQuery, AuditStore, SessionStore, StoreError},
};
use connection::{BUSY_TIMEOUT, PRAGMAS};
use writer::SqliteWriter;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// New sessions and the audit trail go through one writer thread.
    writer: SqliteWriter,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date.
    pub async fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| e.to_string())?
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);
        for (name, value) in PRAGMAS {
            options = options.pragma(name, value);
        }
        // The readers' page cache holds the hot sessions.
        options = options.pragma("cache_size", "-16000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::migrate!("src/storage/sqlite/migrations")
            .run(&pool)
            .await
            .map_err(|e| e.to_string())?;
        let writer = SqliteWriter::start(path).map_err(|e| e.to_string())?;
        Ok(Self { pool, writer })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, StoreError> {
        let session = Session::start(new, now);
        self.writer
            .insert_session(*token_hash, session.clone())
            .await
            .map_err(unavailable)?
            .map_err(StoreError::Unavailable)?;
        Ok(session)
    }
    async fn session_by_token(
        &self,
        token_hash: &SecretHash,
        now: UnixMillis,
    ) -> Result<Option<(Session, Account)>, StoreError> {
        // Only an enabled account's: disabling ended its sessions, and one
        // stored in a race with it (its account read just before) works
        // no more than they do.
        let row = sqlx::query(
            "SELECT s.id, s.account_id, s.method, s.user_agent, s.ip, s.created_at,
                    s.last_seen_at, a.subject, a.username, a.display_name,
                    a.created_at AS account_created_at, a.admin, a.disabled
             FROM sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = ? AND s.last_seen_at > ? AND NOT a.disabled",
        )
        .bind(&token_hash.0[..])
        .bind(now.saturating_sub(SESSION_IDLE_LIMIT_MS) as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_and_account_from).transpose()?)
    }
    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ?")
            .bind(now as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, method, user_agent, ip, created_at, last_seen_at
             FROM sessions WHERE account_id = ? ORDER BY created_at DESC",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from).collect::<Result<_, _>>()?)
    }
    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ? AND account_id = ?")
            .bind(id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_sessions(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }
}

/// The audit filters of [`AuditQuery`], as parameters ?1 to ?7.
macro_rules! sqlite_audit_where {
    () => {
        "(?1 IS NULL OR login_id = ?1) AND (?2 IS NULL OR account_id = ?2)
         AND (?3 IS NULL OR event = ?3) AND (?4 IS NULL OR client_id = ?4)
         AND (?5 IS NULL OR ip = ?5) AND (?6 IS NULL OR at >= ?6)
         AND (?7 IS NULL OR at <= ?7)"
    };
}

/// Binds ?1 to ?7 of [`sqlite_audit_where`].
fn bind_audit_filters<'q>(
    sql: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    query: &'q AuditQuery,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let millis = |t: Option<UnixMillis>| t.map(|t| t.min(i64::MAX as u64) as i64);
    sql.bind(query.login_id.as_deref())
        .bind(query.account_id)
        .bind(query.event.map(AuditEvent::as_str))
        .bind(query.client_id.as_deref())
        .bind(query.ip.as_deref())
        .bind(millis(query.from))
        .bind(millis(query.to))
}

#[async_trait]
impl AuditStore for SqliteStore {
    fn append(&self, record: AuditRecord) -> bool {
        self.writer.try_audit(record)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.writer.flush().await.map_err(unavailable)
    }

    async fn events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.writer.flush().await.map_err(unavailable)?;
        const ASC: &str = concat!(
            "SELECT id, at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor
             FROM audit_events WHERE ",
            sqlite_audit_where!(),
            " ORDER BY id LIMIT ?8 OFFSET ?9"
        );
        const DESC: &str = concat!(
            "SELECT id, at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor
             FROM audit_events WHERE ",
            sqlite_audit_where!(),
            " ORDER BY id DESC LIMIT ?8 OFFSET ?9"
        );
        let sql = if query.newest_first { DESC } else { ASC };
        let rows = bind_audit_filters(sqlx::query(sql), query)
            .bind(query.limit.map_or(-1, i64::from))
            .bind(i64::from(query.offset.unwrap_or(0)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from).collect()
    }

    async fn count_events(&self, query: &AuditQuery) -> Result<u64, StoreError> {
        self.writer.flush().await.map_err(unavailable)?;
        const COUNT: &str = concat!(
            "SELECT count(*) AS n FROM audit_events WHERE ",
            sqlite_audit_where!()
        );
        let row = bind_audit_filters(sqlx::query(COUNT), query)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = sqlx::Row::try_get(&row, "n")?;
        Ok(n.max(0) as u64)
    }

    async fn recent_sign_ins(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<SignInRecord>, StoreError> {
        // Audit rows may still be queued: read what this server has recorded.
        self.writer.flush().await.map_err(unavailable)?;
        let rows = sqlx::query(
            "SELECT e.at, s.id AS active_session, e.ip, e.user_agent
             FROM audit_events e LEFT JOIN sessions s ON s.id = e.session_id
             WHERE e.account_id = ? AND e.event = 'signed_in'
             ORDER BY e.at DESC, e.id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(sign_in_from).collect::<Result<_, _>>()?)
    }
    async fn mark_sign_ins_seen(
        &self,
        account_id: i64,
        now: UnixMillis,
    ) -> Result<UnixMillis, StoreError> {
        // Two statements, not a read-then-write transaction: in WAL mode such
        // a transaction cannot upgrade its lock while another writer commits
        // (SQLITE_BUSY without retry). Two racing visits are harmless.
        let before: Option<i64> =
            sqlx::query_scalar("SELECT home_seen_at FROM accounts WHERE id = ?")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        sqlx::query("UPDATE accounts SET home_seen_at = ? WHERE id = ?")
            .bind(now as i64)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(before.unwrap_or(0) as u64)
    }
}

/// For tests: a store in a new file at `path` holding the account `alice`.
#[cfg(test)]
pub(crate) async fn store_with_alice(path: &Path) -> (SqliteStore, Account) {
    use crate::{
        domain::account::{DisplayName, Username},
        storage::AccountStore,
    };
    let store = SqliteStore::open(path).await.unwrap();
    let account = store
        .create_account(
            &Username::parse("alice").unwrap(),
            &DisplayName::parse("Alice").unwrap(),
            "not-a-hash",
            1_000,
        )
        .await
        .unwrap();
    (store, account)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::{
        domain::{
            account::{DisplayName, SignInMethod, Username},
            secret::Secret,
        },
        storage::AccountStore,
    };

    /// The migration that made ids AUTOINCREMENT and gave accounts subjects.
    const NEVER_REUSED: i64 = 20261211000001;

    /// A database made before ids were never reused: its rows keep their
    /// ids (and get them as subjects, the `sub` their apps know), its
    /// sessions and their cascade survive, and no id is given out again,
    /// not even one removed before the upgrade whose records remain.
    #[tokio::test]
    async fn an_older_database_keeps_its_ids_and_never_reuses_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let token = Secret::new_random().hash();
        {
            let options = SqliteConnectOptions::from_str("sqlite:")
                .unwrap()
                .filename(&path)
                .create_if_missing(true)
                .pragma("foreign_keys", "on");
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            let mut old = sqlx::migrate!("src/storage/sqlite/migrations");
            old.migrations = Cow::Owned(
                old.migrations
                    .iter()
                    .filter(|m| m.version < NEVER_REUSED)
                    .cloned()
                    .collect(),
            );
            old.run(&pool).await.unwrap();
            for statement in [
                "INSERT INTO accounts (username, display_name, password_hash, created_at)
                 VALUES ('alice', 'Alice', 'h', 1), ('bob', 'Bob', 'h', 2),
                        ('carol', 'Carol', 'h', 3)",
                // Carol, the highest id, was removed; her consent stayed.
                "DELETE FROM accounts WHERE id = 3",
                "INSERT INTO provider_records VALUES ('consent', '3:app', '{}', 1, 9e15)",
            ] {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            sqlx::query("INSERT INTO sessions VALUES ('s', ?, 2, 'password', 'ua', 'ip', 1, 1)")
                .bind(&token.0[..])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }

        let store = SqliteStore::open(&path).await.unwrap();
        let bob = store.account_by_id(2).await.unwrap().unwrap();
        assert_eq!((bob.subject.as_str(), bob.username.as_str()), ("2", "bob"));
        let (session, account) = store.session_by_token(&token, 2).await.unwrap().unwrap();
        assert_eq!((session.id.as_str(), account), ("s", bob.clone()));

        let dave = store
            .create_account(
                &Username::parse("dave").unwrap(),
                &DisplayName::parse("Dave").unwrap(),
                "h",
                4,
            )
            .await
            .unwrap();
        assert_eq!(dave.id, 4, "not carol's 3");
        assert!(uuid::Uuid::try_parse(&dave.subject).is_ok());
        // Removing the highest id does not make it free either.
        assert!(store.remove_account(dave.id, &[]).await.unwrap());
        let erin = store
            .create_account(
                &Username::parse("erin").unwrap(),
                &DisplayName::parse("Erin").unwrap(),
                "h",
                5,
            )
            .await
            .unwrap();
        assert_eq!(erin.id, 5);

        // The rebuilt tables keep their rules: sessions need an account,
        // and go with it.
        let new = NewSession {
            account_id: 99,
            method: SignInMethod::Qr,
            user_agent: "ua".into(),
            ip: "ip".into(),
        };
        let other = Secret::new_random().hash();
        assert!(store.create_session(&other, &new, 6).await.is_err());
        assert!(store.remove_account(bob.id, &[]).await.unwrap());
        assert!(store.session_by_token(&token, 7).await.unwrap().is_none());
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
}
