//! The PostgreSQL back-end for accounts, sessions and the audit trail, for
//! several instances sharing one database. Same guarantees as SQLite's: a
//! new session is committed before the call returns; audit rows go in
//! batches ([`audit_batcher`]) and none is dropped unless the buffer fills.

mod audit_batcher;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

use super::{
    sql_rows::{audit_from, session_and_account_from, session_from, sign_in_from},
    traits::{AuditQuery, AuditStore, SessionStore, StoreError},
};
use crate::domain::{
    account::{Account, NewSession, Session, SignInRecord, SESSION_IDLE_LIMIT_MS},
    audit::{AuditEvent, AuditRecord},
    secret::SecretHash,
    time::UnixMillis,
};
use audit_batcher::AuditBatcher;

/// How long a request waits for a connection before it answers 503: a
/// database that is down must not hold requests (or the pool) for long:
/// under 1 s with the connect retries sqlx makes inside it (the soak found
/// 1.03 s with 1 s).
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    audit: AuditBatcher,
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, String> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection broken by a restart is found and replaced here,
            // not failed in front of a request.
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::migrate!("src/storage/postgres/migrations")
            .run(&pool)
            .await
            .map_err(|e| e.to_string())?;
        let audit = AuditBatcher::start(pool.clone());
        Ok(Self { pool, audit })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, StoreError> {
        let session = Session::start(new, now);
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, account_id, method, user_agent, ip,
                                   created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&session.id)
        .bind(&token_hash.0[..])
        .bind(session.account_id)
        .bind(&session.method)
        .bind(&session.user_agent)
        .bind(&session.ip)
        .bind(session.created_at as i64)
        .execute(&self.pool)
        .await?;
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
             WHERE s.token_hash = $1 AND s.last_seen_at > $2 AND NOT a.disabled",
        )
        .bind(&token_hash.0[..])
        .bind(now.saturating_sub(SESSION_IDLE_LIMIT_MS) as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_and_account_from).transpose()?)
    }

    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, method, user_agent, ip, created_at, last_seen_at
             FROM sessions WHERE account_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from).collect::<Result<_, _>>()?)
    }

    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND account_id = $2")
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

/// The audit filters of [`AuditQuery`], as parameters $1 to $7.
macro_rules! postgres_audit_where {
    () => {
        "($1::text IS NULL OR login_id = $1) AND ($2::bigint IS NULL OR account_id = $2)
         AND ($3::text IS NULL OR event = $3) AND ($4::text IS NULL OR client_id = $4)
         AND ($5::text IS NULL OR ip = $5) AND ($6::bigint IS NULL OR at >= $6)
         AND ($7::bigint IS NULL OR at <= $7)"
    };
}

/// Binds $1 to $7 of [`postgres_audit_where`].
fn bind_audit_filters<'q>(
    sql: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    query: &'q AuditQuery,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
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
impl AuditStore for PostgresStore {
    fn append(&self, record: AuditRecord) -> bool {
        self.audit.push(record)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.audit.flush().await.map_err(StoreError::Unavailable)
    }

    async fn events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.flush().await?;
        const ASC: &str = concat!(
            "SELECT id, at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor
             FROM audit_events WHERE ",
            postgres_audit_where!(),
            " ORDER BY id LIMIT $8 OFFSET $9"
        );
        const DESC: &str = concat!(
            "SELECT id, at, event, login_id, account_id, session_id, client_id, ip, user_agent, actor
             FROM audit_events WHERE ",
            postgres_audit_where!(),
            " ORDER BY id DESC LIMIT $8 OFFSET $9"
        );
        let sql = if query.newest_first { DESC } else { ASC };
        let rows = bind_audit_filters(sqlx::query(sql), query)
            .bind(query.limit.map(i64::from))
            .bind(i64::from(query.offset.unwrap_or(0)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from).collect()
    }

    async fn count_events(&self, query: &AuditQuery) -> Result<u64, StoreError> {
        self.flush().await?;
        const COUNT: &str = concat!(
            "SELECT count(*) AS n FROM audit_events WHERE ",
            postgres_audit_where!()
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
        self.flush().await?;
        let rows = sqlx::query(
            "SELECT e.at, s.id AS active_session, e.ip, e.user_agent
             FROM audit_events e LEFT JOIN sessions s ON s.id = e.session_id
             WHERE e.account_id = $1 AND e.event = 'signed_in'
             ORDER BY e.at DESC, e.id DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(sign_in_from).collect::<Result<_, _>>()?)
    }

    async fn mark_sign_ins_seen(
        &self,
        account_id: i64,
        now: UnixMillis,
    ) -> Result<UnixMillis, StoreError> {
        // One statement: the old value is read under the row's lock.
        let before: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts a SET home_seen_at = $1
             FROM (SELECT id, home_seen_at FROM accounts WHERE id = $2 FOR UPDATE) old
             WHERE a.id = old.id RETURNING old.home_seen_at",
        )
        .bind(now as i64)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(before.unwrap_or(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::{
        domain::account::{DisplayName, Username},
        storage::{testing, AccountStore},
    };

    /// Accounts made before subjects existed get their id as subject (the
    /// `sub` their apps know); new ones a UUID. Ids were never reused here:
    /// a sequence never gives a value out twice.
    #[tokio::test]
    async fn older_accounts_keep_their_id_as_subject() {
        let Some(url) = testing::fresh_postgres().await else {
            return;
        };
        {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            let mut old = sqlx::migrate!("src/storage/postgres/migrations");
            old.migrations = Cow::Owned(
                old.migrations
                    .iter()
                    .filter(|m| m.version < 4)
                    .cloned()
                    .collect(),
            );
            old.run(&pool).await.unwrap();
            for statement in [
                "INSERT INTO accounts (username, display_name, password_hash, created_at)
                 VALUES ('alice', 'Alice', 'h', 1), ('bob', 'Bob', 'h', 2)",
                "DELETE FROM accounts WHERE id = 2",
            ] {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = PostgresStore::open(&url).await.unwrap();
        let alice = store.account_by_id(1).await.unwrap().unwrap();
        assert_eq!(alice.subject, "1");
        let carol = store
            .create_account(
                &Username::parse("carol").unwrap(),
                &DisplayName::parse("Carol").unwrap(),
                "h",
                3,
            )
            .await
            .unwrap();
        assert_eq!(carol.id, 3, "not bob's 2");
        assert!(uuid::Uuid::try_parse(&carol.subject).is_ok());
    }
}
