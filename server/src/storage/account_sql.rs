//! The account changes that span several tables, for both SQL back-ends:
//! the same statements (SQLite takes PostgreSQL's `$n` placeholders as
//! `?n`), each in one transaction, written once.

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
                // A write first: on SQLite the transaction takes the write
                // lock at once and never has to upgrade a read lock
                // (SQLITE_BUSY in WAL mode).
                let mut transaction = self.pool().begin().await?;
                let done = sqlx::query(&$sql("DELETE FROM accounts WHERE id = $1"))
                    .bind(account_id)
                    .execute(&mut *transaction)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                // The foreign key's cascade would do it; said here as well.
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
        }
    };
}

account_changes_for!(SqliteStore, for_sqlite);
account_changes_for!(PostgresStore, for_postgres);
