//! What the soak's clients saw, recorded as it happens: every call with
//! its times, status and the instance that answered; every login attempt
//! with what its phone was told and how its desktop ended; the audit rows
//! those answers promise; and what a client found wrong on the spot.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use serde::Serialize;

/// Seconds since the traffic started (the soak's clock).
#[derive(Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The invariants the soak checks; see [`Invariant::description`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    NoDoubleRedeem,
    ApprovalsKept,
    NoSessionWithoutApproval,
    No5xxBut503InOutage,
    Outage503WithinASecond,
    RecoveredWithoutRestart,
    RssFlat,
    AuditRowsDropped,
    AuditRowsMissing,
    RevokedRefused,
    NoPanics,
}

impl Invariant {
    pub const ALL: [Self; 11] = [
        Self::NoDoubleRedeem,
        Self::ApprovalsKept,
        Self::NoSessionWithoutApproval,
        Self::No5xxBut503InOutage,
        Self::Outage503WithinASecond,
        Self::RecoveredWithoutRestart,
        Self::RssFlat,
        Self::AuditRowsDropped,
        Self::AuditRowsMissing,
        Self::RevokedRefused,
        Self::NoPanics,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::NoDoubleRedeem => "no_attempt_redeemed_twice",
            Self::ApprovalsKept => "approvals_redeemed_or_expired",
            Self::NoSessionWithoutApproval => "no_session_without_approval",
            Self::No5xxBut503InOutage => "no_5xx_but_503_in_an_outage",
            Self::Outage503WithinASecond => "outage_answered_503_within_1s",
            Self::RecoveredWithoutRestart => "recovered_without_restart",
            Self::RssFlat => "rss_flat_after_warm_up",
            Self::AuditRowsDropped => "audit_rows_dropped",
            Self::AuditRowsMissing => "audit_rows_missing",
            Self::RevokedRefused => "revoked_credentials_refused",
            Self::NoPanics => "no_panics",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::NoDoubleRedeem => {
                "no attempt redeemed twice (redeem answers 200 per attempt, and login_redeemed rows per attempt in the audit trail)"
            }
            Self::ApprovalsKept => {
                "every approval the phone was told succeeded (a 200 to approve, or the device page's redirect) was redeemed or expired, never lost while the desktop still waited"
            }
            Self::NoSessionWithoutApproval => {
                "no session, app sign-in or device token for an account that did not approve (redeem, /me, userinfo; audit: no redeem without an approval, none after a denial, nothing for the intruder account)"
            }
            Self::No5xxBut503InOutage => {
                "no 5xx other than 503 during a store outage (balancer 502s for requests in flight on an instance at the moment it was killed are counted apart)"
            }
            Self::Outage503WithinASecond => {
                "every outage answered with 503 within 1 s: probes and traffic alike, never a hang"
            }
            Self::RecoveredWithoutRestart => {
                "after each Redis or PostgreSQL restart both instances answered again by themselves (same processes), within 30 s; no instance exited on its own"
            }
            Self::RssFlat => {
                "each instance's RSS floor grew at most 10 % over the last 5 minutes (a window under 2 minutes, as in the 60-s run, is reported, not judged)"
            }
            Self::AuditRowsDropped => {
                "audit rows dropped = 0 (qrlogin_audit_rows_dropped_total of every process, and `audit queue full` in their logs)"
            }
            Self::AuditRowsMissing => {
                "every audited step a client was told succeeded has its audit row, except rows queued on an instance in the second before it was SIGKILLed (counted apart)"
            }
            Self::RevokedRefused => {
                "a revoked session, signed-out session, revoked refresh token or its access token is refused at once by both instances"
            }
            Self::NoPanics => "no instance logged a panic",
        }
    }
}

/// Something a client found wrong on the spot.
#[derive(Clone, Debug)]
pub struct Finding {
    pub invariant: Invariant,
    pub at: f64,
    pub detail: String,
}

/// One HTTP call as its client saw it.
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub kind: &'static str,
    /// `front` (nginx), `A` or `B` (an instance directly).
    pub target: &'static str,
    pub sent: f64,
    pub answered: f64,
    /// `None`: no answer (connection broken, or timed out).
    pub status: Option<u16>,
    /// nginx's `X-Upstream`: the instance(s) it tried.
    pub upstream: Option<String>,
    /// A 5xx page nginx made itself (not a qrlogin answer).
    pub balancer: bool,
    /// The JSON `error`, or what broke.
    pub error: Option<String>,
}

/// An audit row a client's answer promises.
#[derive(Clone, Debug)]
pub struct ExpectedRow {
    pub event: &'static str,
    /// The login id, or for `signed_in` the session id.
    pub key: String,
    /// When the client first asked (retries included).
    pub since: f64,
    pub answered: f64,
}

/// How a login attempt went, as its phone and desktop saw it.
#[derive(Clone, Debug, Default)]
pub struct AttemptRecord {
    pub id: String,
    pub scenario: &'static str,
    /// The phone was answered 200 to approve.
    pub approve_told_ok: bool,
    /// The desktop walked away once approved (checked at the end).
    pub abandoned: bool,
    /// Accounts the redeem answers named, one per 200.
    pub redeemed_as: Vec<String>,
    /// The state the desktop last saw.
    pub final_state: Option<String>,
    /// Redeemed, but the answer with the session never reached the
    /// desktop (a connection broken by a kill).
    pub redeemed_answer_lost: bool,
    /// Why the approval counts as lost, if it does.
    pub lost: Option<String>,
}

/// A device authorization, as its device and phone saw it.
#[derive(Clone, Debug, Default)]
pub struct DeviceRecord {
    pub approve: bool,
    pub told_ok: bool,
    pub tokens_for: Option<String>,
    pub outcome: String,
}

#[derive(Default)]
struct Inner {
    calls: Vec<CallRecord>,
    attempts: Vec<AttemptRecord>,
    devices: Vec<DeviceRecord>,
    expected: Vec<ExpectedRow>,
    findings: Vec<Finding>,
    checked: BTreeMap<Invariant, u64>,
    unexpected: BTreeMap<String, u64>,
    flows: BTreeMap<&'static str, u64>,
}

/// Everything the clients recorded; shared by every task.
pub struct Log {
    pub clock: Clock,
    inner: Mutex<Inner>,
}

/// What the log holds at the end.
pub struct Recorded {
    pub calls: Vec<CallRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub devices: Vec<DeviceRecord>,
    pub expected: Vec<ExpectedRow>,
    pub findings: Vec<Finding>,
    pub checked: BTreeMap<Invariant, u64>,
    pub unexpected: BTreeMap<String, u64>,
    pub flows: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
pub struct KindCount {
    pub calls: u64,
    pub statuses: BTreeMap<String, u64>,
}

impl Log {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding it: a poisoned log is intact.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    pub fn call(&self, record: CallRecord) {
        self.lock().calls.push(record);
    }

    pub fn attempt(&self, record: AttemptRecord) {
        self.lock().attempts.push(record);
    }

    pub fn device(&self, record: DeviceRecord) {
        self.lock().devices.push(record);
    }

    pub fn expect_row(&self, row: ExpectedRow) {
        self.lock().expected.push(row);
    }

    pub fn finding(&self, invariant: Invariant, detail: impl Into<String>) {
        let at = self.now();
        let detail = detail.into();
        eprintln!("  [{at:6.1} s] VIOLATION {}: {detail}", invariant.key());
        self.lock().findings.push(Finding {
            invariant,
            at,
            detail,
        });
    }

    /// One more case of `invariant` checked.
    pub fn checked(&self, invariant: Invariant) {
        *self.lock().checked.entry(invariant).or_default() += 1;
    }

    /// An answer the scenario did not expect (not by itself a violation).
    pub fn unexpected(&self, what: impl Into<String>) {
        *self.lock().unexpected.entry(what.into()).or_default() += 1;
    }

    /// One more finished flow of `scenario`.
    pub fn flow(&self, scenario: &'static str) {
        *self.lock().flows.entry(scenario).or_default() += 1;
    }

    pub fn take(&self) -> Recorded {
        let inner = std::mem::take(&mut *self.lock());
        Recorded {
            calls: inner.calls,
            attempts: inner.attempts,
            devices: inner.devices,
            expected: inner.expected,
            findings: inner.findings,
            checked: inner.checked,
            unexpected: inner.unexpected,
            flows: inner.flows,
        }
    }
}

/// Calls by kind and status (`503`, `502 (nginx)`, `no answer`).
pub fn count_calls(calls: &[CallRecord]) -> BTreeMap<&'static str, KindCount> {
    let mut kinds: BTreeMap<&'static str, KindCount> = BTreeMap::new();
    for call in calls {
        let entry = kinds.entry(call.kind).or_insert_with(|| KindCount {
            calls: 0,
            statuses: BTreeMap::new(),
        });
        entry.calls += 1;
        let status = match (call.status, call.balancer) {
            (Some(s), true) => format!("{s} (nginx)"),
            (Some(s), false) => s.to_string(),
            (None, _) => "no answer".to_owned(),
        };
        *entry.statuses.entry(status).or_default() += 1;
    }
    kinds
}
