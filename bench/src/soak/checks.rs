//! After the run: the invariants, from what the clients recorded, the
//! fault probes, the RSS samples, the instances' logs and metrics, and the
//! audit trail in PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::{
    faults::{FaultRecord, FaultRun, RssSeries, Samples},
    log::{Invariant, Recorded},
};

/// The shortest RSS window judged (the 60-s run's 30 s are only reported).
const MIN_RSS_WINDOW_S: f64 = 120.0;

/// Details kept per invariant (the count is always whole).
const DETAILS: usize = 25;

#[derive(Clone, Debug, Serialize)]
pub struct InvariantResult {
    pub name: &'static str,
    pub description: &'static str,
    /// Cases examined.
    pub checked: u64,
    pub violations: u64,
    /// The first violations, in words.
    pub details: Vec<String>,
}

#[derive(Default)]
struct Tally {
    checked: BTreeMap<Invariant, u64>,
    violations: BTreeMap<Invariant, u64>,
    details: BTreeMap<Invariant, Vec<String>>,
}

impl Tally {
    fn check(&mut self, invariant: Invariant, n: u64) {
        *self.checked.entry(invariant).or_default() += n;
    }

    fn violation(&mut self, invariant: Invariant, detail: String) {
        self.violations_n(invariant, 1, detail);
    }

    fn violations_n(&mut self, invariant: Invariant, n: u64, detail: String) {
        *self.violations.entry(invariant).or_default() += n;
        let details = self.details.entry(invariant).or_default();
        if details.len() < DETAILS {
            details.push(detail);
        }
    }

    fn results(mut self) -> Vec<InvariantResult> {
        Invariant::ALL
            .iter()
            .map(|&i| InvariantResult {
                name: i.key(),
                description: i.description(),
                checked: self.checked.get(&i).copied().unwrap_or(0),
                violations: self.violations.get(&i).copied().unwrap_or(0),
                details: self.details.remove(&i).unwrap_or_default(),
            })
            .collect()
    }
}

/// One audit row, as far as the checks need it.
pub struct AuditRow {
    pub event: String,
    pub login_id: String,
    pub account_id: String,
    pub session_id: String,
}

pub struct Input<'a> {
    pub recorded: &'a Recorded,
    pub faults: &'a mut FaultRun,
    pub samples: &'a Samples,
    pub duration: f64,
    /// `127.0.0.1:port` of each instance, as nginx names them.
    pub instance_addrs: [String; 2],
    pub audit: &'a [AuditRow],
    /// Account id by username.
    pub accounts: &'a HashMap<String, String>,
    /// (account id, method) of every session left in the database.
    pub sessions: &'a [(String, String)],
    pub intruder: &'a str,
    /// Sessions the intruder made with its password.
    pub intruder_sessions: &'a HashSet<String>,
    /// Per instance log: (panic lines, `audit queue full` lines).
    pub log_lines: Vec<(String, Vec<String>, Vec<String>)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RssVerdict {
    pub instance: &'static str,
    pub pid: u32,
    pub window_s: [f64; 2],
    pub samples: usize,
    /// The lowest RSS in the window's first and last thirds.
    pub floor_first_mib: f64,
    pub floor_last_mib: f64,
    pub median_first_mib: f64,
    pub median_last_mib: f64,
    pub max_mib: f64,
    /// Of the floor.
    pub growth_percent: f64,
    pub judged: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditSummary {
    pub rows_read: usize,
    pub expected_rows: usize,
    pub missing_rows: usize,
    /// Missing, but queued on an instance in the second before it was
    /// SIGKILLed (documented: at most 50 ms of rows are lost with it).
    pub lost_with_a_kill: usize,
    pub dropped_by_metrics: u64,
}

pub struct Verdict {
    pub invariants: Vec<InvariantResult>,
    pub rss: Vec<RssVerdict>,
    pub audit: AuditSummary,
    /// Calls that got no answer at all (connection broken or timed out).
    pub unanswered: u64,
}

pub fn evaluate(input: Input<'_>) -> Verdict {
    let mut tally = Tally::default();
    let recorded = input.recorded;
    for (invariant, n) in &recorded.checked {
        tally.check(*invariant, *n);
    }
    for finding in &recorded.findings {
        tally.violation(
            finding.invariant,
            format!("{:.1} s: {}", finding.at, finding.detail),
        );
    }
    for failure in &input.faults.failures {
        tally.violation(Invariant::RecoveredWithoutRestart, failure.clone());
    }
    let unanswered = calls(
        &mut tally,
        input.recorded,
        &mut input.faults.faults,
        &input.instance_addrs,
    );
    probes(&mut tally, &input.faults.faults);
    let rss = rss(&mut tally, &input.samples.rss, input.duration);
    let audit = audit(&mut tally, &input);
    logs(&mut tally, &input);
    Verdict {
        invariants: tally.results(),
        rss,
        audit,
        unanswered,
    }
}

/// 5xx and 503 timing, from every call the clients made.
fn calls(
    tally: &mut Tally,
    recorded: &Recorded,
    faults: &mut [FaultRecord],
    instance_addrs: &[String; 2],
) -> u64 {
    let mut unanswered = 0;
    tally.check(Invariant::No5xxBut503InOutage, recorded.calls.len() as u64);
    for call in &recorded.calls {
        let Some(status) = call.status else {
            unanswered += 1;
            let timed_out = call
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("timed out"));
            if timed_out {
                let outage = faults.iter().find(|f| {
                    f.kind != "instance_sigkill"
                        && call.sent < f.window_end_s
                        && call.answered > f.down_s
                });
                if let Some(f) = outage {
                    tally.violation(
                        Invariant::Outage503WithinASecond,
                        format!(
                            "{} to {} sent at {:.2} s hung through the {} outage ({})",
                            call.kind,
                            call.target,
                            call.sent,
                            f.target,
                            call.error.as_deref().unwrap_or("")
                        ),
                    );
                }
            }
            continue;
        };
        if status < 500 {
            continue;
        }
        let what = format!(
            "{} to {} sent at {:.2} s answered {status}{} after {:.2} s (upstream {})",
            call.kind,
            call.target,
            call.sent,
            if call.balancer { " by nginx" } else { "" },
            call.answered - call.sent,
            call.upstream.as_deref().unwrap_or("-")
        );
        if call.balancer {
            // In flight on an instance at the moment it was killed?
            let killed = faults.iter_mut().find(|f| {
                f.kind == "instance_sigkill"
                    && call.sent <= f.gone_s + 0.05
                    && call.answered >= f.down_s - 0.05
                    && call.upstream.as_deref().is_some_and(|u| {
                        let slot = usize::from(f.target == "B");
                        u.contains(&instance_addrs[slot])
                    })
            });
            match killed {
                Some(f) => f.balancer_5xx_in_flight += 1,
                None => tally.violation(Invariant::No5xxBut503InOutage, what),
            }
            continue;
        }
        if status != 503 {
            tally.violation(Invariant::No5xxBut503InOutage, what);
            continue;
        }
        let outage = faults.iter_mut().find(|f| {
            f.kind != "instance_sigkill"
                && call.answered >= f.down_s
                && call.answered <= f.window_end_s
        });
        match outage {
            Some(f) => {
                f.traffic_503 += 1;
                tally.check(Invariant::Outage503WithinASecond, 1);
                let late = call.answered - call.sent.max(f.down_s);
                if late >= 1.0 {
                    tally.violation(
                        Invariant::Outage503WithinASecond,
                        format!("{what}: {late:.2} s after the {} outage began", f.target),
                    );
                }
            }
            None => tally.violation(
                Invariant::No5xxBut503InOutage,
                format!("{what}, outside any store outage"),
            ),
        }
    }
    unanswered
}

/// What the probers saw during each store outage.
fn probes(tally: &mut Tally, faults: &[FaultRecord]) {
    for fault in faults {
        for outage in &fault.probes {
            tally.check(Invariant::Outage503WithinASecond, outage.probes_while_down);
            for bad in &outage.bad_probes {
                tally.violation(
                    Invariant::Outage503WithinASecond,
                    format!(
                        "{} outage at {:.1} s, instance {}: {bad}",
                        fault.target, fault.down_s, outage.instance
                    ),
                );
            }
            tally.check(Invariant::RecoveredWithoutRestart, 1);
            if outage.recovered_after_s.is_none() {
                tally.violation(
                    Invariant::RecoveredWithoutRestart,
                    format!(
                        "{} outage at {:.1} s: instance {} did not answer normally within 30 s of the store's return",
                        fault.target, fault.down_s, outage.instance
                    ),
                );
            }
            if outage.pid_before != outage.pid_after {
                tally.violation(
                    Invariant::RecoveredWithoutRestart,
                    format!(
                        "{} outage at {:.1} s: instance {} is another process now ({:?} → {:?})",
                        fault.target,
                        fault.down_s,
                        outage.instance,
                        outage.pid_before,
                        outage.pid_after
                    ),
                );
            }
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Growth over the window, of the floor: the lowest RSS in its last third
/// against the lowest in its first third, for the process each slot has
/// at the end. A password hash holds 19 MiB while it runs, so single
/// samples swing by multiples of that; a leak raises the floor. (The
/// medians of the same thirds are reported too.)
fn rss(tally: &mut Tally, series: &[RssSeries], duration: f64) -> Vec<RssVerdict> {
    let window_start = duration - (duration / 2.0).min(300.0);
    let mut verdicts = Vec::new();
    for name in super::stack::NAMES {
        let Some(last) = series.iter().rev().find(|s| s.instance == name) else {
            continue;
        };
        // A process started inside the window is judged after 10 s.
        let from = window_start.max(last.first_s + 10.0);
        let mut points: Vec<[f64; 2]> = last
            .samples
            .iter()
            .copied()
            .filter(|[t, _]| *t >= from && *t <= duration + 1.0)
            .collect();
        points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let n = points.len();
        // A hash's 19 MiB may stay with the process for 10-20 s, so a
        // shorter window's thirds cannot tell that from a leak.
        let judged = n >= 9 && duration - from >= MIN_RSS_WINDOW_S;
        let k = (n / 3).max(1).min(n);
        let head: Vec<f64> = points.iter().take(k).map(|p| p[1]).collect();
        let tail: Vec<f64> = points.iter().skip(n - k).map(|p| p[1]).collect();
        let floor = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (first, end) = (floor(&head), floor(&tail));
        let percent = |a: f64, b: f64| {
            if a > 0.0 && a.is_finite() && b.is_finite() {
                ((b / a - 1.0) * 1000.0).round() / 10.0
            } else {
                0.0
            }
        };
        let growth = percent(first, end);
        let verdict = RssVerdict {
            instance: name,
            pid: last.pid,
            window_s: [from, duration],
            samples: n,
            floor_first_mib: if first.is_finite() { first } else { 0.0 },
            floor_last_mib: if end.is_finite() { end } else { 0.0 },
            median_first_mib: median(&mut head.clone()),
            median_last_mib: median(&mut tail.clone()),
            max_mib: points.iter().map(|p| p[1]).fold(0.0, f64::max),
            growth_percent: growth,
            judged,
        };
        if judged {
            tally.check(Invariant::RssFlat, 1);
            if growth > 10.0 {
                tally.violation(
                    Invariant::RssFlat,
                    format!(
                        "instance {name} (pid {}): floor {first:.1} → {end:.1} MiB over {from:.0}–{duration:.0} s (+{growth:.1} %)",
                        last.pid
                    ),
                );
            }
        }
        verdicts.push(verdict);
    }
    verdicts
}

fn audit(tally: &mut Tally, input: &Input<'_>) -> AuditSummary {
    let recorded = input.recorded;
    let rows = input.audit;
    let mut summary = AuditSummary {
        rows_read: rows.len(),
        ..AuditSummary::default()
    };
    let mut present: HashSet<(&str, &str)> = HashSet::new();
    let mut redeemed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut approved: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut denied: HashSet<&str> = HashSet::new();
    for row in rows {
        let key = if row.event == "signed_in" {
            &row.session_id
        } else {
            &row.login_id
        };
        present.insert((row.event.as_str(), key.as_str()));
        match row.event.as_str() {
            "login_redeemed" => *redeemed.entry(&row.login_id).or_default() += 1,
            "login_approved" => approved
                .entry(&row.login_id)
                .or_default()
                .push(&row.account_id),
            "login_denied" => {
                denied.insert(&row.login_id);
            }
            _ => {}
        }
    }
    // Redeemed twice, or without an approval, or after a denial.
    let told_approved: HashSet<&str> = recorded
        .attempts
        .iter()
        .filter(|a| a.approve_told_ok)
        .map(|a| a.id.as_str())
        .collect();
    let intruder_id = input.accounts.get(input.intruder).map(String::as_str);
    tally.check(Invariant::NoDoubleRedeem, redeemed.len() as u64);
    tally.check(Invariant::NoSessionWithoutApproval, redeemed.len() as u64);
    for (login, count) in &redeemed {
        if *count > 1 {
            tally.violation(
                Invariant::NoDoubleRedeem,
                format!("audit: attempt {login} has {count} login_redeemed rows"),
            );
        }
        let approvers = approved.get(login);
        if approvers.is_none() && !told_approved.contains(login) {
            tally.violation(
                Invariant::NoSessionWithoutApproval,
                format!("audit: attempt {login} was redeemed, and nobody approved it"),
            );
        }
        if denied.contains(login) {
            tally.violation(
                Invariant::NoSessionWithoutApproval,
                format!("audit: attempt {login} was denied and redeemed"),
            );
        }
    }
    // The intruder never approves: no approval, no QR session of its own.
    if let Some(intruder) = intruder_id {
        tally.check(Invariant::NoSessionWithoutApproval, 1);
        for (login, accounts) in &approved {
            if accounts.contains(&intruder) {
                tally.violation(
                    Invariant::NoSessionWithoutApproval,
                    format!("audit: the intruder approved attempt {login}"),
                );
            }
        }
        for row in rows {
            if row.event == "signed_in"
                && row.account_id == intruder
                && !input.intruder_sessions.contains(&row.session_id)
            {
                tally.violation(
                    Invariant::NoSessionWithoutApproval,
                    format!(
                        "audit: a session {} started for the intruder",
                        row.session_id
                    ),
                );
            }
        }
        for (account, method) in input.sessions {
            if account == intruder && method != "password" {
                tally.violation(
                    Invariant::NoSessionWithoutApproval,
                    format!("database: the intruder has a {method} session"),
                );
            }
        }
    }
    // Every promised row, unless it went down with a killed instance.
    let kills: Vec<f64> = input
        .faults
        .faults
        .iter()
        .filter(|f| f.kind == "instance_sigkill")
        .map(|f| f.down_s)
        .collect();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for row in &recorded.expected {
        if !seen.insert((row.event, row.key.as_str())) {
            continue;
        }
        summary.expected_rows += 1;
        if present.contains(&(row.event, row.key.as_str())) {
            continue;
        }
        summary.missing_rows += 1;
        if kills
            .iter()
            .any(|k| *k >= row.since - 0.05 && *k <= row.answered + 1.0)
        {
            summary.lost_with_a_kill += 1;
        } else {
            tally.violation(
                Invariant::AuditRowsMissing,
                format!(
                    "no {} row for {} (answered at {:.2} s)",
                    row.event, row.key, row.answered
                ),
            );
        }
    }
    tally.check(Invariant::AuditRowsMissing, summary.expected_rows as u64);
    // The counters: every process's last reading.
    summary.dropped_by_metrics = input.samples.dropped.values().sum();
    tally.check(
        Invariant::AuditRowsDropped,
        input.samples.dropped.len() as u64,
    );
    for (pid, dropped) in &input.samples.dropped {
        if *dropped > 0 {
            tally.violations_n(
                Invariant::AuditRowsDropped,
                *dropped,
                format!("process {pid}: qrlogin_audit_rows_dropped_total = {dropped}"),
            );
        }
    }
    summary
}

fn logs(tally: &mut Tally, input: &Input<'_>) {
    tally.check(Invariant::NoPanics, input.log_lines.len() as u64);
    for (log, panics, full) in &input.log_lines {
        for line in panics {
            tally.violation(Invariant::NoPanics, format!("{log}: {line}"));
        }
        for line in full {
            tally.violation(Invariant::AuditRowsDropped, format!("{log}: {line}"));
        }
    }
}

/// Attempts by how they ended, for the report.
pub fn attempt_outcomes(recorded: &Recorded) -> BTreeMap<String, u64> {
    let mut outcomes = BTreeMap::new();
    for a in &recorded.attempts {
        let outcome = if !a.redeemed_as.is_empty() {
            "redeemed".to_owned()
        } else if a.redeemed_answer_lost {
            "redeemed, answer lost with a killed instance".to_owned()
        } else if a.abandoned {
            "approved, desktop walked away".to_owned()
        } else if a.lost.is_some() {
            "LOST".to_owned()
        } else {
            a.final_state
                .clone()
                .unwrap_or_else(|| "not created".into())
        };
        *outcomes
            .entry(format!("{}: {outcome}", a.scenario))
            .or_default() += 1;
    }
    outcomes
}
