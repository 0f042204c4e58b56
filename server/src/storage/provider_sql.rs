//! [`ProviderStore`] for both SQL back-ends: the same statements (SQLite
//! takes PostgreSQL's `$n` placeholders as `?n`), written once.

use async_trait::async_trait;

use super::{
    postgres::PostgresStore,
    sql_rows::Columns,
    sqlite::SqliteStore,
    traits::{KeyMatch, ProviderRecord, ProviderStore, RecordSelector, StoreError},
};
use crate::domain::time::UnixMillis;

/// Inserts, or takes over a key whose record ran out.
const INSERT: &str = "INSERT INTO provider_records (kind, key, value, version, expires_at) \
     VALUES ($1, $2, $3, 1, $4) \
     ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = 1, \
     expires_at = excluded.expires_at WHERE provider_records.expires_at <= $5";
const GET: &str = "SELECT value, version, expires_at FROM provider_records \
     WHERE kind = $1 AND key = $2 AND expires_at > $3";
const REPLACE: &str = "UPDATE provider_records SET value = $1, version = version + 1, \
     expires_at = $2 WHERE kind = $3 AND key = $4 AND version = $5 AND expires_at > $6";
const REMOVE: &str = "DELETE FROM provider_records \
     WHERE kind = $1 AND substr(key, 1, length($2)) = $2";
const LIST: &str = "SELECT key, value, version, expires_at FROM provider_records \
     WHERE kind = $1 AND substr(key, 1, length($2)) = $2 AND expires_at > $3 ORDER BY key";
const PURGE: &str = "DELETE FROM provider_records WHERE expires_at <= $1";
const REMOVE_EXACT: &str = "DELETE FROM provider_records WHERE kind = $1 AND key = $2";

/// The statement (PostgreSQL's placeholders) removing what `selector`
/// chooses, and its two parameters: kind and key (or prefix).
pub(super) fn removal(selector: &RecordSelector) -> (&'static str, &'static str, &str) {
    match &selector.key {
        KeyMatch::Exact(key) => (REMOVE_EXACT, selector.kind, key),
        KeyMatch::Prefix(prefix) => (REMOVE, selector.kind, prefix),
    }
}

fn millis(at: UnixMillis) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

fn record_from(row: &impl Columns) -> Result<ProviderRecord, sqlx::Error> {
    Ok(ProviderRecord {
        value: row.text("value")?,
        version: row.int("version")?,
        expires_at: u64::try_from(row.int("expires_at")?).unwrap_or(0),
    })
}

macro_rules! provider_store_for {
    ($store:ty, $sql:expr) => {
        #[async_trait]
        impl ProviderStore for $store {
            async fn insert(
                &self,
                kind: &str,
                key: &str,
                value: &str,
                expires_at: UnixMillis,
                now: UnixMillis,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(&$sql(INSERT))
                    .bind(kind)
                    .bind(key)
                    .bind(value)
                    .bind(millis(expires_at))
                    .bind(millis(now))
                    .execute(self.pool())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Duplicate);
                }
                Ok(())
            }

            async fn get(
                &self,
                kind: &str,
                key: &str,
                now: UnixMillis,
            ) -> Result<Option<ProviderRecord>, StoreError> {
                let row = sqlx::query(&$sql(GET))
                    .bind(kind)
                    .bind(key)
                    .bind(millis(now))
                    .fetch_optional(self.pool())
                    .await?;
                Ok(row.as_ref().map(record_from).transpose()?)
            }

            async fn replace(
                &self,
                kind: &str,
                key: &str,
                version: i64,
                value: &str,
                expires_at: UnixMillis,
                now: UnixMillis,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql(REPLACE))
                    .bind(value)
                    .bind(millis(expires_at))
                    .bind(kind)
                    .bind(key)
                    .bind(version)
                    .bind(millis(now))
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove(&self, kind: &str, prefix: &str) -> Result<u64, StoreError> {
                let done = sqlx::query(&$sql(REMOVE))
                    .bind(kind)
                    .bind(prefix)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn remove_key(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql(REMOVE_EXACT))
                    .bind(kind)
                    .bind(key)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list(
                &self,
                kind: &str,
                prefix: &str,
                now: UnixMillis,
            ) -> Result<Vec<(String, ProviderRecord)>, StoreError> {
                let rows = sqlx::query(&$sql(LIST))
                    .bind(kind)
                    .bind(prefix)
                    .bind(millis(now))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| Ok((row.text("key")?, record_from(row)?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn purge(&self, now: UnixMillis) -> Result<u64, StoreError> {
                let done = sqlx::query(&$sql(PURGE))
                    .bind(millis(now))
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) fn for_sqlite(statement: &str) -> String {
    statement.replace('$', "?")
}

pub(super) fn for_postgres(statement: &str) -> String {
    statement.to_owned()
}

provider_store_for!(SqliteStore, for_sqlite);
provider_store_for!(PostgresStore, for_postgres);
