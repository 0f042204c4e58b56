//! Accounts and their sessions. Handlers see only [`AccountStore`]; the
//! default is a SQLite file (PostgreSQL can follow behind the same trait).

use std::{path::Path, str::FromStr, time::Duration};

use super::{Account, DisplayName, Username};
use crate::{login::UnixMillis, secret::SecretHash, sqlite_writer::SqliteWriter};
use async_trait::async_trait;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Row, SqlitePool,
};

/// A session unused for this long stops working.
pub const SESSION_IDLE_LIMIT_MS: u64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum AccountStoreError {
    #[error("an account with this username already exists")]
    UsernameTaken,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("database write failed: {0}")]
    Write(String),
}

/// How a session was signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// Username and password (phones).
    Password,
    /// By scanning a QR code with a signed-in phone (desktops).
    Qr,
}

impl SignInMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Qr => "qr",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: i64,
    pub method: SignInMethod,
    pub user_agent: String,
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub account_id: i64,
    pub method: String,
    pub user_agent: String,
    pub ip: String,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
}

/// One sign-in from the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    pub at: UnixMillis,
    /// The session it started, while that session still works.
    pub active_session: Option<String>,
    pub ip: String,
    pub user_agent: String,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Account, AccountStoreError>;
    /// The account and its password hash.
    async fn find_account(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, String)>, AccountStoreError>;
    /// Replaces the password hash; false if there is no such account.
    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, AccountStoreError>;
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, AccountStoreError>;
    async fn list_accounts(&self) -> Result<Vec<Account>, AccountStoreError>;
    /// Removes the account and all its sessions; false if there was none.
    async fn remove_account(&self, username: &Username) -> Result<bool, AccountStoreError>;

    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, AccountStoreError>;
    /// The live session with this token hash, and its account.
    async fn session_by_token(
        &self,
        token_hash: &SecretHash,
        now: UnixMillis,
    ) -> Result<Option<(Session, Account)>, AccountStoreError>;
    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), AccountStoreError>;
    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, AccountStoreError>;
    /// Revokes one of the account's sessions; false if it has none by that id.
    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, AccountStoreError>;

    /// The account's latest sign-ins, newest first.
    async fn recent_sign_ins(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<SignInRecord>, AccountStoreError>;
    /// Notes a visit to the phone home; returns the previous visit's time.
    async fn mark_home_seen(
        &self,
        account_id: i64,
        now: UnixMillis,
    ) -> Result<UnixMillis, AccountStoreError>;
}

pub struct SqliteAccountStore {
    pool: SqlitePool,
    /// New sessions (and the audit trail) go through one writer thread.
    writer: SqliteWriter,
}

impl SqliteAccountStore {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date.
    pub async fn open(path: &Path) -> Result<Self, AccountStoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| AccountStoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: no fsync per commit, still never corrupt; a power
            // cut may only lose the last moments' sessions and audit rows.
            .synchronous(SqliteSynchronous::Normal)
            // Fewer, larger checkpoints (each one fsyncs) and a page cache
            // that holds the hot sessions.
            .pragma("wal_autocheckpoint", "4000")
            .pragma("cache_size", "-16000")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| AccountStoreError::Open(e.to_string()))?;
        let writer =
            SqliteWriter::start(path).map_err(|e| AccountStoreError::Open(e.to_string()))?;
        Ok(Self { pool, writer })
    }

    /// The writer thread, for the audit trail to share.
    pub fn writer(&self) -> &SqliteWriter {
        &self.writer
    }
}

fn account_from(row: &sqlx::sqlite::SqliteRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn session_from(row: &sqlx::sqlite::SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        method: row.try_get("method")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
        created_at: row.try_get::<i64, _>("created_at")? as u64,
        last_seen_at: row.try_get::<i64, _>("last_seen_at")? as u64,
    })
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Account, AccountStoreError> {
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
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AccountStoreError::UsernameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn find_account(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, String)>, AccountStoreError> {
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
    ) -> Result<bool, AccountStoreError> {
        let done = sqlx::query("UPDATE accounts SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, AccountStoreError> {
        let row =
            sqlx::query("SELECT id, username, display_name, created_at FROM accounts WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(account_from).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, AccountStoreError> {
        let rows = sqlx::query(
            "SELECT id, username, display_name, created_at FROM accounts ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(account_from).collect::<Result<_, _>>()?)
    }

    async fn remove_account(&self, username: &Username) -> Result<bool, AccountStoreError> {
        let done = sqlx::query("DELETE FROM accounts WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, AccountStoreError> {
        let session = Session {
            // Time-ordered (74 random bits after the time), so new rows go
            // to the end of the id index instead of a random page of it.
            id: uuid::Uuid::now_v7().to_string(),
            account_id: new.account_id,
            method: new.method.as_str().to_owned(),
            user_agent: new.user_agent.clone(),
            ip: new.ip.clone(),
            created_at: now,
            last_seen_at: now,
        };
        self.writer
            .insert_session(*token_hash, session.clone())
            .await
            .map_err(|e| AccountStoreError::Write(e.to_string()))?
            .map_err(AccountStoreError::Write)?;
        Ok(session)
    }

    async fn session_by_token(
        &self,
        token_hash: &SecretHash,
        now: UnixMillis,
    ) -> Result<Option<(Session, Account)>, AccountStoreError> {
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
        let Some(row) = row else { return Ok(None) };
        let session = session_from(&row)?;
        let account = Account {
            id: session.account_id,
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            created_at: row.try_get("account_created_at")?,
        };
        Ok(Some((session, account)))
    }

    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), AccountStoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ?")
            .bind(now as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, AccountStoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, method, user_agent, ip, created_at, last_seen_at
             FROM sessions WHERE account_id = ? ORDER BY created_at DESC",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from).collect::<Result<_, _>>()?)
    }

    async fn recent_sign_ins(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<SignInRecord>, AccountStoreError> {
        // Audit rows may still be queued: read what this server has recorded.
        self.writer
            .flush()
            .await
            .map_err(|e| AccountStoreError::Write(e.to_string()))?;
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
        let record = |row: &sqlx::sqlite::SqliteRow| -> Result<SignInRecord, sqlx::Error> {
            Ok(SignInRecord {
                at: row.try_get::<i64, _>("at")? as u64,
                active_session: row.try_get("active_session")?,
                ip: row.try_get("ip")?,
                user_agent: row.try_get("user_agent")?,
            })
        };
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    async fn mark_home_seen(
        &self,
        account_id: i64,
        now: UnixMillis,
    ) -> Result<UnixMillis, AccountStoreError> {
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

    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, AccountStoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ? AND account_id = ?")
            .bind(id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// For tests: a store in a new file at `path` holding the account `alice`.
#[cfg(test)]
pub(crate) async fn store_with_alice(path: &Path) -> (SqliteAccountStore, Account) {
    let store = SqliteAccountStore::open(path).await.unwrap();
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
