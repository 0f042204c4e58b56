//! Storage: the traits the services need, split by concern, and the
//! back-ends that implement them. The services see only the traits.
//!
//! | trait              | holds                                  | back-ends           |
//! |--------------------|----------------------------------------|---------------------|
//! | [`AttemptStore`]    | pending login attempts                | memory, Redis                |
//! | [`ChangeNotifier`]  | "attempt X is now at version V"       | memory (in-process), Redis pub/sub |
//! | [`SharedLimiter`]   | rate limits across instances          | Redis (none: per process)    |
//! | [`RevocationClock`] | "a session was revoked somewhere"     | Redis (none: one process)    |
//! | [`AccountStore`]    | accounts and password hashes          | SQLite, PostgreSQL           |
//! | [`SessionStore`]    | signed-in sessions by token hash      | SQLite, PostgreSQL (+ cache) |
//! | [`AuditStore`]      | the audit trail and sign-in history   | SQLite, PostgreSQL           |
//! | [`ProviderStore`]   | OpenID Connect clients, keys, grants, codes, tokens | SQLite, PostgreSQL |
//!
//! [`scope`] keeps what one request learned of the shared stores (the
//! revocation clock's reading) for the rest of that request.
//!
//! The traits are in `traits.rs`. A new back-end is one module here plus
//! one arm in [`open`]; the contract suites in `contract` then run against
//! it with one line each.

mod account_sql;
pub(crate) mod cache;
#[cfg(test)]
mod contract;
pub(crate) mod memory;
pub(crate) mod postgres;
mod provider_sql;
pub(crate) mod redis;
pub mod scope;
mod sql_rows;
pub(crate) mod sqlite;
#[doc(hidden)]
pub mod testing;
mod traits;

pub use self::redis::DEFAULT_PREFIX as DEFAULT_REDIS_PREFIX;
pub use traits::{
    parse_record, AccountStore, Applied, AttemptStore, AuditQuery, AuditStore, ChangeNotifier,
    KeyMatch, ProviderRecord, ProviderStore, RecordSelector, RevocationClock, SessionStore,
    SharedCheck, SharedLimiter, StoreError, Stores,
};

use std::{path::PathBuf, sync::Arc};

/// Where accounts, sessions and the audit trail live, from `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, as libpq takes it (a unix
    /// socket folder goes in `?host=/path`).
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database URL {0:?} is not supported: use sqlite://PATH (or a plain file path) or postgres://USER@HOST/DB")]
pub struct UnsupportedDatabaseUrl(pub String);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UnsupportedDatabaseUrl> {
        // The message is printed: never with a password in it.
        let unsupported = || UnsupportedDatabaseUrl(redact_password(raw));
        let path = match raw.split_once(':') {
            Some(("postgres" | "postgresql", rest)) if rest.starts_with("//") => {
                return Ok(Self::Postgres(raw.to_owned()))
            }
            Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
            // A scheme we do not know (but not a Windows drive letter).
            Some((scheme, _))
                if scheme.len() > 1
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                return Err(unsupported())
            }
            _ => raw,
        };
        if path.is_empty() {
            return Err(unsupported());
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `url` with any password replaced, for logs and error messages.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open {url}: {reason}")]
pub struct OpenError {
    pub url: String,
    pub reason: String,
}

/// Opens the stores `database` names (bringing its schema up to date).
/// Without `redis`, pending attempts, their notifications and the rate
/// limits live in this process; with it (`redis://…`, `redis+unix://…`),
/// in Redis, shared by every instance.
pub async fn open(
    database: &DatabaseUrl,
    redis: Option<&RedisSettings>,
) -> Result<Stores, OpenError> {
    let open_error = |url: String| move |reason: String| OpenError { url, reason };
    let shared = match redis {
        Some(RedisSettings { url, prefix }) => {
            let connection = redis::RedisConnection::open(url, prefix)
                .await
                .map_err(open_error(redact_password(url)))?;
            Some(connection)
        }
        None => None,
    };
    type Database = (
        Arc<dyn AccountsAndSessions>,
        Arc<dyn AuditStore>,
        Arc<dyn ProviderStore>,
    );
    let kind = match database {
        DatabaseUrl::Sqlite(_) => "sqlite",
        DatabaseUrl::Postgres(_) => "postgres",
    };
    let (accounts, audit, provider): Database = match database {
        DatabaseUrl::Sqlite(path) => {
            let sqlite = sqlite::SqliteStore::open(path)
                .await
                .map_err(open_error(database.to_string()))?;
            (
                Arc::new(sqlite.clone()),
                Arc::new(sqlite.clone()),
                Arc::new(sqlite),
            )
        }
        DatabaseUrl::Postgres(url) => {
            let postgres = postgres::PostgresStore::open(url)
                .await
                .map_err(open_error(database.to_string()))?;
            (
                Arc::new(postgres.clone()),
                Arc::new(postgres.clone()),
                Arc::new(postgres),
            )
        }
    };
    let stores = match shared {
        None => {
            let cached = Arc::new(cache::CachedSessions::new(accounts));
            Stores {
                database: kind,
                attempts: Arc::new(memory::MemoryAttemptStore::default()),
                notifier: Arc::new(memory::LocalNotifier::default()),
                accounts: cached.clone(),
                sessions: cached,
                audit,
                limiter: None,
                provider,
            }
        }
        Some(connection) => {
            let revocations = Arc::new(redis::RedisRevocations::new(connection.clone()));
            let cached = Arc::new(cache::CachedSessions::new(accounts).shared(revocations));
            Stores {
                database: kind,
                attempts: Arc::new(redis::RedisAttemptStore::new(connection.clone())),
                notifier: Arc::new(redis::RedisNotifier::start(connection.clone())),
                accounts: cached.clone(),
                sessions: cached,
                audit,
                limiter: Some(Arc::new(redis::RedisLimiter::new(connection))),
                provider,
            }
        }
    };
    Ok(stores)
}

/// Where the shared state of several instances lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://HOST:PORT[/DB]` or `redis+unix:///PATH`.
    pub url: String,
    /// Starts every key and channel name.
    pub prefix: String,
}

/// An account and session back-end, as the session cache wraps it.
pub(crate) trait AccountsAndSessions: AccountStore + SessionStore {}
impl<T: AccountStore + SessionStore> AccountsAndSessions for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_their_back_end() {
        let sqlite = |p: &str| Ok(DatabaseUrl::Sqlite(PathBuf::from(p)));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/q.db"),
            sqlite("data/q.db")
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/q.db"),
            sqlite("/var/q.db")
        );
        assert_eq!(DatabaseUrl::parse("sqlite:q.db"), sqlite("q.db"));
        assert_eq!(DatabaseUrl::parse("data/q.db"), sqlite("data/q.db"));
        assert_eq!(DatabaseUrl::parse("C:\\q.db"), sqlite("C:\\q.db"));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgress://qr:secret@db/q")
                .unwrap_err()
                .0,
            "postgress://qr:***@db/q"
        );
        let pg = "postgres://qr:secret@db.internal/qrlogin";
        assert_eq!(DatabaseUrl::parse(pg), Ok(DatabaseUrl::Postgres(pg.into())));
        assert_eq!(
            DatabaseUrl::parse(pg).unwrap().to_string(),
            "postgres://qr:***@db.internal/qrlogin",
            "passwords never reach logs"
        );
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert_eq!(
            DatabaseUrl::parse("data/q.db").unwrap().to_string(),
            "sqlite://data/q.db"
        );
    }
}
