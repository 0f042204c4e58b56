//! What one request learns of the shared stores and reuses for the rest of
//! it: the revocation clock. The session cache trusts its entries only
//! while the clock stands still, so each phone request would read it once
//! per lookup; the rate-limit gate reads it in the same step as the limits.
//! The HTTP layer runs every request in its own scope ([`run`]); the first
//! reading in a request (the gate's, or the cache's own) is used by every
//! later lookup in that request. A request linearizes at that reading: a
//! revocation on another instance after it is seen by the next request,
//! as it would be had the request come a moment earlier. Outside a scope
//! (spawned tasks, tests), every lookup reads the clock.

use std::{cell::Cell, future::Future};

tokio::task_local! {
    static CLOCK: Cell<Option<u64>>;
}

/// Runs `request` in a scope of its own.
pub fn run<F: Future>(request: F) -> impl Future<Output = F::Output> {
    CLOCK.scope(Cell::new(None), request)
}

/// The clock as this request read it, if it did (and runs in a scope).
pub fn clock() -> Option<u64> {
    CLOCK.try_with(Cell::get).ok().flatten()
}

/// Notes what the clock read in this request (nothing outside a scope).
pub fn saw_clock(clock: u64) {
    let _ = CLOCK.try_with(|seen| seen.set(Some(clock)));
}

/// Forgets this request's reading (it revoked something itself: the
/// clock moved on).
pub fn forget_clock() {
    let _ = CLOCK.try_with(|seen| seen.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reading_lasts_for_its_request_only() {
        saw_clock(3);
        assert_eq!(clock(), None, "no scope: nothing kept");
        run(async {
            assert_eq!(clock(), None);
            saw_clock(7);
            assert_eq!(clock(), Some(7));
            forget_clock();
            assert_eq!(clock(), None);
        })
        .await;
        run(async { assert_eq!(clock(), None) }).await;
    }
}
