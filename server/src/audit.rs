//! The audit trail: every attempt event and every sign-in and sign-out, with
//! time, address, browser and account, in the database. Written by the
//! SQLite writer thread in batches, so no request waits for it.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use crate::{
    client::ClientContext,
    login::{now_millis, Attempt, LoginId, UnixMillis},
    sqlite_writer::SqliteWriter,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    LoginCreated,
    LoginScanned,
    LoginApproved,
    LoginDenied,
    LoginRedeemed,
    LoginCancelled,
    LoginExpired,
    SignedIn,
    SignInFailed,
    SignedOut,
    SessionRevoked,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginCreated => "login_created",
            Self::LoginScanned => "login_scanned",
            Self::LoginApproved => "login_approved",
            Self::LoginDenied => "login_denied",
            Self::LoginRedeemed => "login_redeemed",
            Self::LoginCancelled => "login_cancelled",
            Self::LoginExpired => "login_expired",
            Self::SignedIn => "signed_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignedOut => "signed_out",
            Self::SessionRevoked => "session_revoked",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: UnixMillis,
    pub event: AuditEvent,
    pub login_id: Option<String>,
    pub account_id: Option<i64>,
    pub session_id: Option<String>,
    pub ip: String,
    pub user_agent: String,
}

/// Records events without waiting; a full queue drops (and counts) the
/// event rather than slowing sign-ins down. Rows are written by the
/// [`SqliteWriter`] thread.
#[derive(Clone)]
pub struct AuditLog {
    writer: SqliteWriter,
    dropped: Arc<AtomicU64>,
    last_warning: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn new(writer: SqliteWriter) -> Self {
        Self {
            writer,
            dropped: Arc::default(),
            last_warning: Arc::default(),
        }
    }

    /// Waits until every event recorded so far is stored (at shutdown).
    pub async fn flush(&self) {
        if self.writer.flush().await.is_err() {
            tracing::warn!("audit events may be lost: the SQLite writer has stopped");
        }
    }

    pub fn record(
        &self,
        event: AuditEvent,
        login_id: Option<LoginId>,
        account_id: Option<i64>,
        client: &ClientContext,
    ) {
        self.write(AuditRecord {
            at: now_millis(),
            event,
            login_id: login_id.map(|id| id.to_string()),
            account_id,
            session_id: None,
            ip: client.ip_string(),
            user_agent: client.user_agent.clone(),
        });
    }

    /// A sign-in, with the session it started.
    pub fn record_sign_in(&self, account_id: i64, session_id: &str, client: &ClientContext) {
        self.write(AuditRecord {
            at: now_millis(),
            event: AuditEvent::SignedIn,
            login_id: None,
            account_id: Some(account_id),
            session_id: Some(session_id.to_owned()),
            ip: client.ip_string(),
            user_agent: client.user_agent.clone(),
        });
    }

    /// An attempt that ran out, stamped with when it did.
    pub fn record_expired(&self, attempt: &Attempt) {
        self.write(AuditRecord {
            at: attempt.expires_at,
            event: AuditEvent::LoginExpired,
            login_id: Some(attempt.id.to_string()),
            account_id: attempt.scanner.as_ref().map(|s| s.account_id),
            session_id: None,
            ip: attempt
                .requester
                .ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            user_agent: attempt.requester.user_agent.clone(),
        });
    }

    pub fn write(&self, record: AuditRecord) {
        if !self.writer.try_audit(record) {
            // One warning per second at most: logging each drop would only
            // add to the overload that caused it.
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
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
