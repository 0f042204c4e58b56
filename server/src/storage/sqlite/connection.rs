//! What every connection to the database shares, the pool's and the
//! writer's alike.

use std::time::Duration;

/// WAL + NORMAL: no fsync per commit, still never corrupt; a power cut may
/// only lose the last moments' sessions and audit rows. Foreign keys on.
pub(super) const PRAGMAS: [(&str, &str); 4] = [
    ("journal_mode", "wal"),
    ("synchronous", "normal"),
    ("foreign_keys", "on"),
    // Fewer, larger checkpoints (each one fsyncs).
    ("wal_autocheckpoint", "4000"),
];

/// How long a connection waits for another's write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
