//! For tests: fresh, isolated places in the PostgreSQL and Redis servers
//! the test command starts (scripts/services.sh), named by
//! `QRLOGIN_TEST_POSTGRES` and `QRLOGIN_TEST_REDIS`. Without them a test
//! that needs one is skipped with a note, unless `QRLOGIN_REQUIRE_SERVICES`
//! is set (as the test command sets it): then it fails.

use sqlx::{Connection, PgConnection};

use super::RedisSettings;

/// The variable's value, `None` when the test may be skipped.
fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("QRLOGIN_REQUIRE_SERVICES").is_none(),
                "{var} is not set: run scripts/test.sh, or start the servers with scripts/services.sh"
            );
            eprintln!("note: {var} is not set; skipping this part of the test");
            None
        }
    }
}

/// A URL of a new, empty database in the test PostgreSQL server.
pub async fn fresh_postgres() -> Option<String> {
    let admin = service("QRLOGIN_TEST_POSTGRES")?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut connection = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let mut url = url::Url::parse(&admin).unwrap_or_else(|e| panic!("{admin}: {e}"));
    url.set_path(&name);
    Some(url.to_string())
}

/// The test Redis, with a key prefix no other test uses.
pub fn fresh_redis() -> Option<RedisSettings> {
    Some(RedisSettings {
        url: service("QRLOGIN_TEST_REDIS")?,
        prefix: format!("test-{}:", uuid::Uuid::new_v4().simple()),
    })
}
