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
    Row, SqlitePool,
};

use crate::domain::{
    account::{
        Account, DisplayName, NewSession, Session, SignInRecord, Username, SESSION_IDLE_LIMIT_MS,
    },
    audit::{AuditEvent, AuditRecord},
    secret::SecretHash,
    time::UnixMillis,
};
use crate::storage::{
    sql_rows::{account_from, audit_from, session_and_account_from, session_from, sign_in_from},
    traits::{AccountStore, AuditQuery, AuditStore, SessionStore, StoreError},
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
impl AccountStore for SqliteStore {
    async fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Account, StoreError> {
        let result = sqlx::query(
            "INSERT INTO accounts (username, display_name, password_hash, created_at)
             VALUES (?, ?, ?, ?) RETURNING id, username, display_name, created_at",
        )
        .bind(username.as_str())
        .bind(display_name.as_str())
        .bind(password_hash)
        .bind(now as i64)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(account_from(&row)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Duplicate),
            Err(e) => Err(e.into()),
        }
    }
    async fn find_account(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, display_name, created_at, password_hash
             FROM accounts WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some((account_from(&row)?, row.try_get("password_hash")?)),
            None => None,
        })
    }
    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE accounts SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let row =
            sqlx::query("SELECT id, username, display_name, created_at FROM accounts WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(account_from).transpose()?)
    }
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, display_name, created_at FROM accounts ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(account_from).collect::<Result<_, _>>()?)
    }
    async fn remove_account(&self, username: &Username) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM accounts WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
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
        let row = sqlx::query(
            "SELECT s.id, s.account_id, s.method, s.user_agent, s.ip, s.created_at,
                    s.last_seen_at, a.username, a.display_name, a.created_at AS account_created_at
             FROM sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = ? AND s.last_seen_at > ?",
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
        let rows = sqlx::query(
            "SELECT at, event, login_id, account_id, session_id, client_id, ip, user_agent
             FROM audit_events
             WHERE (?1 IS NULL OR login_id = ?1) AND (?2 IS NULL OR account_id = ?2)
               AND (?3 IS NULL OR event = ?3)
             ORDER BY id LIMIT ?4",
        )
        .bind(query.login_id.as_deref())
        .bind(query.account_id)
        .bind(query.event.map(AuditEvent::as_str))
        .bind(query.limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from).collect()
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
