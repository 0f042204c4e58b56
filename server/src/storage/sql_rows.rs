//! Rows to domain values, for every SQL back-end: the column names are the
//! same in SQLite's and PostgreSQL's schemas.

use crate::{
    domain::{
        account::{Account, Session, SignInRecord},
        audit::{AuditEvent, AuditRecord},
    },
    storage::StoreError,
};

/// The column types the readers below need, by name. One impl per back-end
/// (its row type), so that each reader is written once.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn int_or_null(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text_or_null(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// SQLite's 0/1 integer, PostgreSQL's BOOLEAN.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int_or_null(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn text_or_null(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }
    };
}

columns_for!(sqlx::sqlite::SqliteRow);
columns_for!(sqlx::postgres::PgRow);

pub(crate) fn account_from(row: &impl Columns) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.int("id")?,
        subject: row.text("subject")?,
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        created_at: row.int("created_at")?,
        admin: row.flag("admin")?,
        disabled: row.flag("disabled")?,
    })
}

pub(crate) fn session_from(row: &impl Columns) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.text("id")?,
        account_id: row.int("account_id")?,
        method: row.text("method")?,
        user_agent: row.text("user_agent")?,
        ip: row.text("ip")?,
        created_at: row.int("created_at")? as u64,
        last_seen_at: row.int("last_seen_at")? as u64,
    })
}

/// A session row joined with its account's (`subject`, `username`,
/// `display_name`, `account_created_at`, `admin`, `disabled`).
pub(crate) fn session_and_account_from(
    row: &impl Columns,
) -> Result<(Session, Account), sqlx::Error> {
    let session = session_from(row)?;
    let account = Account {
        id: session.account_id,
        subject: row.text("subject")?,
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        created_at: row.int("account_created_at")?,
        admin: row.flag("admin")?,
        disabled: row.flag("disabled")?,
    };
    Ok((session, account))
}

pub(crate) fn sign_in_from(row: &impl Columns) -> Result<SignInRecord, sqlx::Error> {
    Ok(SignInRecord {
        at: row.int("at")? as u64,
        active_session: row.text_or_null("active_session")?,
        ip: row.text("ip")?,
        user_agent: row.text("user_agent")?,
    })
}

pub(crate) fn audit_from(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let event = row.text("event")?;
    Ok(AuditRecord {
        id: row.int("id")?,
        at: row.int("at")? as u64,
        event: AuditEvent::parse(&event)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown audit event {event:?}")))?,
        login_id: row.text_or_null("login_id")?,
        account_id: row.int_or_null("account_id")?,
        session_id: row.text_or_null("session_id")?,
        client_id: row.text_or_null("client_id")?,
        ip: row.text("ip")?,
        user_agent: row.text("user_agent")?,
        actor: row.text_or_null("actor")?,
    })
}
