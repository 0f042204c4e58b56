//! Recording the audit trail: never waits, never fails a request. A full
//! queue drops (and counts) the row rather than slowing sign-ins down.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use crate::{
    domain::{
        attempt::{Attempt, LoginId},
        audit::{AuditEvent, AuditRecord},
        caller::Caller,
        time::now_millis,
    },
    storage::{AuditQuery, AuditStore, StoreError},
};

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    dropped: Arc<AtomicU64>,
    last_warning: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self {
            store,
            dropped: Arc::default(),
            last_warning: Arc::default(),
        }
    }

    /// Waits until every event recorded so far is stored (at shutdown).
    pub async fn flush(&self) {
        if let Err(err) = self.store.flush().await {
            tracing::warn!(error = %err, "audit events may be lost");
        }
    }

    /// The rows `query` selects, in its order (operators, tests).
    pub async fn events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.events(query).await
    }

    /// How many rows `query`'s filters select.
    pub async fn count(&self, query: &AuditQuery) -> Result<u64, StoreError> {
        self.store.count_events(query).await
    }

    pub fn record(
        &self,
        event: AuditEvent,
        login_id: Option<LoginId>,
        account_id: Option<i64>,
        caller: &Caller,
    ) {
        self.write(AuditRecord::new(
            now_millis(),
            event,
            login_id,
            account_id,
            caller,
        ));
    }

    /// A sign-in, with the session it started.
    pub fn record_sign_in(&self, account_id: i64, session_id: &str, caller: &Caller) {
        let mut record = AuditRecord::new(
            now_millis(),
            AuditEvent::SignedIn,
            None,
            Some(account_id),
            caller,
        );
        record.session_id = Some(session_id.to_owned());
        self.write(record);
    }

    /// An OpenID Connect event about `client_id`.
    pub fn record_app(
        &self,
        event: AuditEvent,
        account_id: Option<i64>,
        client_id: &str,
        caller: &Caller,
    ) {
        let mut record = AuditRecord::new(now_millis(), event, None, account_id, caller);
        record.client_id = Some(client_id.to_owned());
        self.write(record);
    }

    pub fn record_expired(&self, attempt: &Attempt) {
        self.write(AuditRecord::expired(attempt));
    }

    fn write(&self, record: AuditRecord) {
        if !self.store.append(record) {
            // One warning per second at most: logging each drop would only
            // add to the overload that caused it.
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("qrlogin_audit_rows_dropped_total").increment(1);
            let now = now_millis();
            let last = self.last_warning.load(Ordering::Relaxed);
            if now >= last + 1000
                && self
                    .last_warning
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(dropped_so_far = dropped, "audit queue full; events dropped");
            }
        }
    }
}
