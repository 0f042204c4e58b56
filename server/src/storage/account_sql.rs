//! [`AccountStore`] for both SQL back-ends: the same statements (SQLite
//! takes PostgreSQL's `$n` placeholders as `?n`), those that span several
//! tables each in one transaction, written once.

use async_trait::async_trait;

use super::{
    postgres::PostgresStore,
    provider_sql::{for_postgres, for_sqlite, removal},
    sql_rows::account_from,
    sqlite::SqliteStore,
    traits::{AccountStore, RecordSelector, StoreError},
};
use crate::domain::{
    account::{Account, DisplayName, Username},
    time::UnixMillis,
};

macro_rules! account_store_for {
    ($store:ty, $sql:expr) => {
        impl $store {
            /// `statement` (on the account, `$1` its id), then its sessions
            /// and the records `records` selects removed: all or nothing;
            /// false (and nothing done) if the statement changed no row.
            async fn end_account(
                &self,
                statement: &str,
                account_id: i64,
                records: &[RecordSelector],
            ) -> Result<bool, StoreError> {
                // A write first: on SQLite the transaction takes the write
                // lock at once and never has to upgrade a read lock
                // (SQLITE_BUSY in WAL mode).
                let mut transaction = self.pool().begin().await?;
                let done = sqlx::query(&$sql(statement))
                    .bind(account_id)
                    .execute(&mut *transaction)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                // On removal the foreign key's cascade would do it; said
                // here as well.
                sqlx::query(&$sql("DELETE FROM sessions WHERE account_id = $1"))
                    .bind(account_id)
                    .execute(&mut *transaction)
                    .await?;
                for selector in records {
                    let (statement, kind, key) = removal(selector);
                    sqlx::query(&$sql(statement))
                        .bind(kind)
                        .bind(key)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                Ok(true)
            }
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn create_account(
                &self,
                username: &Username,
                display_name: &DisplayName,
                password_hash: &str,
                now: UnixMillis,
            ) -> Result<Account, StoreError> {
                let result = sqlx::query(&$sql(
                    "INSERT INTO accounts (subject, username, display_name, password_hash, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     RETURNING id, subject, username, display_name, created_at, admin, disabled",
                ))
                .bind(Account::new_subject())
                .bind(username.as_str())
                .bind(display_name.as_str())
                .bind(password_hash)
                .bind(now as i64)
                .fetch_one(self.pool())
                .await;
                match result {
                    Ok(row) => Ok(account_from(&row)?),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::Duplicate)
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn find_account(
                &self,
                username: &Username,
            ) -> Result<Option<(Account, String)>, StoreError> {
                let row = sqlx::query(&$sql(
                    "SELECT id, subject, username, display_name, created_at, admin, disabled,
                            password_hash
                     FROM accounts WHERE username = $1",
                ))
                .bind(username.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(match row {
                    Some(row) => Some((
                        account_from(&row)?,
                        sqlx::Row::try_get(&row, "password_hash")?,
                    )),
                    None => None,
                })
            }

            async fn set_password(
                &self,
                username: &Username,
                password_hash: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql(
                    "UPDATE accounts SET password_hash = $1 WHERE username = $2",
                ))
                .bind(password_hash)
                .bind(username.as_str())
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
                let row = sqlx::query(&$sql(
                    "SELECT id, subject, username, display_name, created_at, admin, disabled
                     FROM accounts WHERE id = $1",
                ))
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
                Ok(row.as_ref().map(account_from).transpose()?)
            }

            async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, subject, username, display_name, created_at, admin, disabled
                     FROM accounts ORDER BY username",
                )
                .fetch_all(self.pool())
                .await?;
                Ok(rows.iter().map(account_from).collect::<Result<_, _>>()?)
            }

            /// Removes the account, its sessions and the records `records`
            /// selects, all or nothing; false if there was no such account.
            async fn remove_account(
                &self,
                account_id: i64,
                records: &[RecordSelector],
            ) -> Result<bool, StoreError> {
                self.end_account("DELETE FROM accounts WHERE id = $1", account_id, records)
                    .await
            }

            /// A new password hash and every session ended, together; false
            /// if there is no such account.
            async fn reset_account(
                &self,
                account_id: i64,
                password_hash: &str,
            ) -> Result<bool, StoreError> {
                let mut transaction = self.pool().begin().await?;
                let done = sqlx::query(&$sql(
                    "UPDATE accounts SET password_hash = $1 WHERE id = $2",
                ))
                .bind(password_hash)
                .bind(account_id)
                .execute(&mut *transaction)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(&$sql("DELETE FROM sessions WHERE account_id = $1"))
                    .bind(account_id)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok(true)
            }

            /// Sets the administrator flag; false if there is no such
            /// account.
            async fn set_admin(
                &self,
                account_id: i64,
                admin: bool,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql("UPDATE accounts SET admin = $1 WHERE id = $2"))
                    .bind(admin)
                    .bind(account_id)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            /// The account disabled, its sessions ended and the records
            /// `records` selects removed, all or nothing; false if there is
            /// no such account.
            async fn disable_account(
                &self,
                account_id: i64,
                records: &[RecordSelector],
            ) -> Result<bool, StoreError> {
                self.end_account(
                    "UPDATE accounts SET disabled = TRUE WHERE id = $1",
                    account_id,
                    records,
                )
                .await
            }

            /// Clears the disabled flag; false if there is no such account.
            /// A session stored while it was disabled (only a sign-in that
            /// read the account just before the disabling makes one) never
            /// worked, and must not start working now: it goes too.
            async fn enable_account(
                &self,
                account_id: i64,
            ) -> Result<bool, StoreError> {
                let mut transaction = self.pool().begin().await?;
                let done = sqlx::query(&$sql(
                    "UPDATE accounts SET disabled = $1 WHERE id = $2 AND disabled = $3",
                ))
                .bind(false)
                .bind(account_id)
                .bind(true)
                .execute(&mut *transaction)
                .await?;
                if done.rows_affected() == 0 {
                    // Not disabled (nothing to do), or no such account.
                    let exists = sqlx::query(&$sql("SELECT id FROM accounts WHERE id = $1"))
                        .bind(account_id)
                        .fetch_optional(&mut *transaction)
                        .await?
                        .is_some();
                    return Ok(exists);
                }
                sqlx::query(&$sql("DELETE FROM sessions WHERE account_id = $1"))
                    .bind(account_id)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok(true)
            }
        }
    };
}

account_store_for!(SqliteStore, for_sqlite);
account_store_for!(PostgresStore, for_postgres);
