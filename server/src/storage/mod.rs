//! Storage: the traits the services need, split by concern, and the
//! back-ends that implement them. The services see only the traits.
//!
//! | trait              | holds                                  | back-ends           |
//! |--------------------|----------------------------------------|---------------------|
//! | [`AttemptStore`]   | pending login attempts                 | memory              |
//! | [`ChangeNotifier`] | "attempt X is now at version V"        | memory (in-process) |
//! | [`AccountStore`]   | accounts and password hashes           | SQLite              |
//! | [`SessionStore`]   | signed-in sessions by token hash       | SQLite (+ cache)    |
//! | [`AuditStore`]     | the audit trail and sign-in history    | SQLite              |
//!
//! The traits are in `traits.rs`. A new back-end is one module here plus
//! one arm in [`open`]; the contract suites in `contract` then run against
//! it with one line each.

pub(crate) mod cache;
#[cfg(test)]
mod contract;
pub(crate) mod memory;
pub(crate) mod sqlite;
mod traits;

pub use traits::{
    AccountStore, Applied, AttemptStore, AuditQuery, AuditStore, ChangeNotifier, SessionStore,
    StoreError, Stores,
};

use std::{path::PathBuf, sync::Arc};

/// Where accounts, sessions and the audit trail live, from `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path.
    Sqlite(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database URL {0:?} is not supported: use sqlite://PATH (or a plain file path)")]
pub struct UnsupportedDatabaseUrl(pub String);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UnsupportedDatabaseUrl> {
        let unsupported = || UnsupportedDatabaseUrl(raw.to_owned());
        let path = match raw.split_once(':') {
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open {url}: {reason}")]
pub struct OpenError {
    pub url: String,
    pub reason: String,
}

/// Opens the stores `database` names (bringing its schema up to date);
/// pending attempts and their notifications live in this process.
pub async fn open(database: &DatabaseUrl) -> Result<Stores, OpenError> {
    let open_error = |reason: String| OpenError {
        url: database.to_string(),
        reason,
    };
    let attempts = Arc::new(memory::MemoryAttemptStore::default());
    let notifier = Arc::new(memory::LocalNotifier::default());
    match database {
        DatabaseUrl::Sqlite(path) => {
            let sqlite = sqlite::SqliteStore::open(path).await.map_err(open_error)?;
            let cached = Arc::new(cache::CachedSessions::new(Arc::new(sqlite.clone())));
            Ok(Stores {
                attempts,
                notifier,
                accounts: cached.clone(),
                sessions: cached,
                audit: Arc::new(sqlite),
            })
        }
    }
}

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
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert_eq!(
            DatabaseUrl::parse("data/q.db").unwrap().to_string(),
            "sqlite://data/q.db"
        );
    }
}
