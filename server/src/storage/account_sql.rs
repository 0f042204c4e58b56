//! The operator's account changes, for both SQL back-ends: the same
//! statements (SQLite takes PostgreSQL's `$n` placeholders as `?n`), those
//! that span several tables each in one transaction, written once.

use super::{
    postgres::PostgresStore,
    provider_sql::{for_postgres, for_sqlite, removal},
    sqlite::SqliteStore,
    traits::{RecordSelector, StoreError},
};

macro_rules! account_changes_for {
    ($store:ty, $sql:expr) => {
        impl $store {
            /// Removes the account, its sessions and the records `records`
            /// selects, all or nothing; false if there was no such account.
            pub(super) async fn remove_account_everywhere(
                &self,
                account_id: i64,
                records: &[RecordSelector],
            ) -> Result<bool, StoreError> {
                self.end_account("DELETE FROM accounts WHERE id = $1", account_id, records)
                    .await
            }

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

            /// A new password hash and every session ended, together; false
            /// if there is no such account.
            pub(super) async fn reset_account_password(
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
            pub(super) async fn set_account_admin(
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
            pub(super) async fn disable_account_everywhere(
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
            pub(super) async fn enable_disabled_account(
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

account_changes_for!(SqliteStore, for_sqlite);
account_changes_for!(PostgresStore, for_postgres);
