//! Rows to domain values, for every SQL back-end: the column names are the
//! same in SQLite's and PostgreSQL's schemas.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::domain::account::{Account, Session, SignInRecord};

fn get<'r, R, T>(row: &'r R, column: &'static str) -> Result<T, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column)
}

pub(crate) fn account_from<R>(row: &R) -> Result<Account, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Account {
        id: get(row, "id")?,
        username: get(row, "username")?,
        display_name: get(row, "display_name")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn session_from<R>(row: &R) -> Result<Session, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Session {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        method: get(row, "method")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        created_at: get::<_, i64>(row, "created_at")? as u64,
        last_seen_at: get::<_, i64>(row, "last_seen_at")? as u64,
    })
}

/// A session row joined with its account's (`username`, `display_name`,
/// `account_created_at`).
pub(crate) fn session_and_account_from<R>(row: &R) -> Result<(Session, Account), sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let session = session_from(row)?;
    let account = Account {
        id: session.account_id,
        username: get(row, "username")?,
        display_name: get(row, "display_name")?,
        created_at: get(row, "account_created_at")?,
    };
    Ok((session, account))
}

pub(crate) fn sign_in_from<R>(row: &R) -> Result<SignInRecord, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(SignInRecord {
        at: get::<_, i64>(row, "at")? as u64,
        active_session: get(row, "active_session")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}

pub(crate) fn audit_from<R>(
    row: &R,
) -> Result<crate::domain::audit::AuditRecord, crate::storage::StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    use crate::domain::audit::{AuditEvent, AuditRecord};
    let event: String = get(row, "event")?;
    Ok(AuditRecord {
        at: get::<_, i64>(row, "at")? as u64,
        event: AuditEvent::parse(&event).ok_or_else(|| {
            crate::storage::StoreError::Unavailable(format!("unknown audit event {event:?}"))
        })?,
        login_id: get(row, "login_id")?,
        account_id: get(row, "account_id")?,
        session_id: get(row, "session_id")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}
