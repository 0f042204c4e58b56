//! QR sign-ins: the desktop creates and long-polls, the phone scans and
//! approves (or denies, or picks the wrong number), the desktop redeems;
//! with an intruder, a walked-away desktop, a cancel, racing redeems.

use std::{sync::PoisonError, time::Duration};

use app::api::{paths, LoginCreated, LoginState, LoginStatus, Redeemed, Scanned};
use serde_json::json;
use tokio::sync::watch;

use super::{check_refused, expect_row, me, sleep_s, Abandoned, Backoff, PhoneSession, Rng, World};
use crate::soak::{
    http::{Http, Reply, Req},
    log::{AttemptRecord, ExpectedRow, Invariant},
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Decision {
    Approve,
    RacingRedeems,
    Deny,
    WrongCode,
    Intruder,
    Abandon,
    Cancel,
}

impl Decision {
    fn name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::RacingRedeems => "racing_redeems",
            Self::Deny => "deny",
            Self::WrongCode => "wrong_code",
            Self::Intruder => "intruder",
            Self::Abandon => "abandoned",
            Self::Cancel => "cancelled",
        }
    }

    fn approves(self) -> bool {
        matches!(
            self,
            Self::Approve | Self::RacingRedeems | Self::Intruder | Self::Abandon
        )
    }
}

#[derive(Default)]
struct DesktopEnd {
    final_state: Option<LoginState>,
    redeemed_as: Vec<String>,
    session: Option<String>,
    session_id: Option<String>,
    answer_lost: bool,
    lost: Option<String>,
    abandoned: bool,
}

#[derive(Default)]
struct PhoneEnd {
    approve_sent: bool,
    approve_told_ok: bool,
    approved_at: Option<f64>,
    denied: bool,
}

/// A whole QR sign-in: the desktop creates and waits, the phone scans and
/// decides; `authorization` makes it the login card of an OpenID Connect
/// request. Returns the desktop's session cookie, if it got one.
pub(super) async fn qr_flow(
    world: &World,
    rng: &mut Rng,
    phone: &PhoneSession,
    decision: Decision,
    authorization: Option<&str>,
) -> Option<(String, String)> {
    let log = &world.log;
    let mut desktop = world.front();
    let create_path = match authorization {
        Some(request) => format!("{}?authorization={request}", paths::LOGINS),
        None => paths::LOGINS.to_owned(),
    };
    let reply = desktop
        .until_answered("create", 20.0, || Req::post(create_path.clone()))
        .await;
    let (Some(created), Some(cookie)) = (
        reply.json::<LoginCreated>().filter(|_| reply.is(201)),
        reply.cookie(None),
    ) else {
        log.unexpected(format!("create: {}", reply.describe()));
        return None;
    };
    expect_row(log, "login_created", &created.id, &reply, reply.first_sent);
    if decision == Decision::Cancel {
        cancelled(world, rng, &mut desktop, &created, &cookie, phone).await;
        return None;
    }
    let (code_tx, code_rx) = watch::channel(None::<u8>);
    let racing = decision == Decision::RacingRedeems;
    let (desk, ph) = tokio::join!(
        desktop_side(
            world,
            &mut desktop,
            &created,
            &cookie,
            decision,
            code_tx,
            racing
        ),
        phone_side(world, phone, &created.id, decision, code_rx, rng.next()),
    );
    let id = &created.id;
    let mut record = AttemptRecord {
        id: id.clone(),
        scenario: decision.name(),
        approve_told_ok: ph.approve_told_ok,
        abandoned: desk.abandoned,
        redeemed_as: desk.redeemed_as.clone(),
        final_state: desk.final_state.map(|s| format!("{s:?}").to_lowercase()),
        redeemed_answer_lost: desk.answer_lost,
        lost: None,
    };
    if ph.approve_told_ok && !desk.abandoned {
        log.checked(Invariant::ApprovalsKept);
        let kept = !desk.redeemed_as.is_empty()
            || desk.answer_lost
            || desk.final_state == Some(LoginState::Expired);
        if !kept {
            let why = desk
                .lost
                .clone()
                .unwrap_or_else(|| format!("the desktop ended in {:?}", desk.final_state));
            log.finding(
                Invariant::ApprovalsKept,
                format!(
                    "attempt {id} ({}), approved at {:.1} s: {why}",
                    decision.name(),
                    ph.approved_at.unwrap_or(0.0)
                ),
            );
            record.lost = Some(why);
        }
    }
    if desk.abandoned {
        if let (true, Some(approved_at)) = (ph.approve_told_ok, ph.approved_at) {
            world
                .abandoned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Abandoned {
                    id: id.clone(),
                    cookie: cookie.clone(),
                    approved_at,
                });
        }
    }
    if !desk.redeemed_as.is_empty() {
        log.checked(Invariant::NoDoubleRedeem);
        if desk.redeemed_as.len() > 1 {
            log.finding(
                Invariant::NoDoubleRedeem,
                format!(
                    "attempt {id}: {} redeems answered 200",
                    desk.redeemed_as.len()
                ),
            );
        }
    }
    for user in &desk.redeemed_as {
        log.checked(Invariant::NoSessionWithoutApproval);
        if !ph.approve_sent {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "attempt {id} ({}): redeemed as {user}, but no phone ever approved it",
                    decision.name()
                ),
            );
        } else if *user != phone.username {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "attempt {id}: redeemed as {user}, approved by {}",
                    phone.username
                ),
            );
        }
    }
    log.attempt(record);
    let (session, session_id) = (desk.session?, desk.session_id?);
    // Now and then the phone ends that computer's session from afar.
    if authorization.is_none() && rng.below(3) == 0 {
        let mut http = world.front();
        let path = paths::with_id(paths::SESSION_BY_ID, &session_id);
        let reply = http
            .until_answered("revoke_session", 20.0, || {
                Req::delete(path.clone()).bearer(&phone.token)
            })
            .await;
        if reply.is(204) {
            check_refused(
                world,
                "a desktop session revoked from the phone",
                "me_after_revoke",
                || Req::get(paths::ME).cookie(&session),
            )
            .await;
        } else {
            log.unexpected(format!("revoke_session: {}", reply.describe()));
        }
        return None;
    }
    Some((session, session_id))
}

async fn cancelled(
    world: &World,
    rng: &mut Rng,
    desktop: &mut Http,
    created: &LoginCreated,
    cookie: &str,
    phone: &PhoneSession,
) {
    let log = &world.log;
    sleep_s(0.2 + rng.below(1500) as f64 / 1000.0).await;
    let path = paths::with_id(paths::LOGIN, &created.id);
    let reply = desktop
        .until_answered("cancel", 20.0, || Req::delete(path.clone()).cookie(cookie))
        .await;
    if !reply.is(204) {
        log.unexpected(format!("cancel: {}", reply.describe()));
        return;
    }
    expect_row(
        log,
        "login_cancelled",
        &created.id,
        &reply,
        reply.first_sent,
    );
    // A phone that scans it now is told it is over.
    let mut http = world.front();
    let scan = paths::with_id(paths::LOGIN_SCAN, &created.id);
    let reply = http
        .until_answered("scan_cancelled", 20.0, || {
            Req::post(scan.clone()).bearer(&phone.token)
        })
        .await;
    if !reply.is(410) {
        log.unexpected(format!("scan of a cancelled attempt: {}", reply.describe()));
    }
}

/// The state of the attempt now (no waiting), through 503s.
pub(super) async fn read_state(
    world: &World,
    http: &mut Http,
    id: &str,
    cookie: &str,
) -> Option<LoginState> {
    let path = paths::with_id(paths::LOGIN, id);
    let reply = http
        .until_answered("status", 20.0, || Req::get(path.clone()).cookie(cookie))
        .await;
    if !reply.is(200) {
        world
            .log
            .unexpected(format!("status: {}", reply.describe()));
        return None;
    }
    reply.json::<LoginStatus>().map(|s| s.state)
}

async fn desktop_side(
    world: &World,
    http: &mut Http,
    created: &LoginCreated,
    cookie: &str,
    decision: Decision,
    code_tx: watch::Sender<Option<u8>>,
    racing: bool,
) -> DesktopEnd {
    let log = &world.log;
    let path = paths::with_id(paths::LOGIN, &created.id);
    let mut end = DesktopEnd::default();
    let mut since = created.version;
    let limit = log.now() + world.pending_ttl + world.scanned_ttl + world.approved_ttl + 30.0;
    let mut backoff = Backoff::new();
    loop {
        if log.now() > limit {
            end.lost = Some(format!(
                "the desktop was still waiting after {:.0} s",
                limit
            ));
            return end;
        }
        let reply = http
            .call(
                "long_poll",
                Req::get(format!("{path}?since={since}&wait=25"))
                    .cookie(cookie)
                    .timeout(Duration::from_secs(40)),
            )
            .await;
        match reply.status {
            Some(200) => {
                backoff.reset();
                let Some(status) = reply.json::<LoginStatus>() else {
                    log.unexpected("long_poll: not a status");
                    continue;
                };
                if status.version < since {
                    log.unexpected(format!(
                        "long_poll: the version went back from {since} to {}",
                        status.version
                    ));
                }
                since = since.max(status.version);
                if let Some(code) = status.match_code {
                    code_tx.send_replace(Some(code));
                }
                end.final_state = Some(status.state);
                match status.state {
                    LoginState::Pending | LoginState::Scanned => {}
                    LoginState::Approved => {
                        if decision == Decision::Abandon {
                            end.abandoned = true;
                            return end;
                        }
                        redeem(world, http, created, cookie, racing, &mut end).await;
                        return end;
                    }
                    LoginState::Denied | LoginState::Cancelled | LoginState::Expired => {
                        if !decision.approves() || status.state == LoginState::Denied {
                            // A desktop that tries anyway gets nothing.
                            forbidden_redeem(world, http, created, cookie, &mut end).await;
                        }
                        return end;
                    }
                    LoginState::Redeemed => {
                        log.unexpected("long_poll: redeemed before its desktop redeemed");
                        return end;
                    }
                }
            }
            Some(404) => {
                end.lost = Some(format!(
                    "the attempt was forgotten (404) at {:.1} s while its desktop waited",
                    reply.answered
                ));
                log.unexpected("long_poll: 404, the attempt was forgotten");
                return end;
            }
            _ => backoff.after_failed_poll(log, "long_poll", &reply).await,
        }
    }
}

/// A redeem of a denied, cancelled or expired attempt: must be refused.
async fn forbidden_redeem(
    world: &World,
    http: &mut Http,
    created: &LoginCreated,
    cookie: &str,
    end: &mut DesktopEnd,
) {
    let path = paths::with_id(paths::LOGIN_REDEEM, &created.id);
    let reply = http
        .until_answered("redeem_refused", 20.0, || {
            Req::post(path.clone()).cookie(cookie)
        })
        .await;
    if reply.is(200) {
        take_session(world, &reply, &created.id, end);
    } else if !reply.is(410) {
        world.log.unexpected(format!(
            "redeem of a finished attempt: {}",
            reply.describe()
        ));
    }
}

fn take_session(world: &World, reply: &Reply, id: &str, end: &mut DesktopEnd) {
    let user = reply
        .json::<Redeemed>()
        .map_or_else(|| "?".to_owned(), |r| r.user.username);
    end.redeemed_as.push(user);
    end.final_state = Some(LoginState::Redeemed);
    expect_row(&world.log, "login_redeemed", id, reply, reply.first_sent);
    if end.session.is_none() {
        end.session = reply.cookie(Some("qrlogin_session"));
    }
}

async fn redeem(
    world: &World,
    http: &mut Http,
    created: &LoginCreated,
    cookie: &str,
    racing: bool,
    end: &mut DesktopEnd,
) {
    let log = &world.log;
    let id = &created.id;
    let path = paths::with_id(paths::LOGIN_REDEEM, id);
    let first_sent = log.now();
    let mut broken = false;
    if racing {
        // Two at once (two tabs, a double click): through nginx's round
        // robin they usually land on both instances.
        let (mut a, mut b) = (world.front(), world.front());
        let (ra, rb) = tokio::join!(
            a.call("redeem", Req::post(path.clone()).cookie(cookie)),
            b.call("redeem", Req::post(path.clone()).cookie(cookie)),
        );
        for reply in [ra, rb] {
            if reply.is(200) {
                take_session(world, &reply, id, end);
            } else if reply.status.is_none() || reply.balancer {
                broken = true;
            }
        }
    }
    let until = log.now() + world.approved_ttl + 10.0;
    let mut backoff = Backoff::new();
    while end.redeemed_as.is_empty() {
        let mut reply = http
            .call("redeem", Req::post(path.clone()).cookie(cookie))
            .await;
        reply.first_sent = first_sent;
        match reply.status {
            Some(200) => take_session(world, &reply, id, end),
            Some(410) => {
                // Over: redeemed by a call whose answer was lost, or run out.
                let state = read_state(world, http, id, cookie).await;
                end.final_state = state;
                match state {
                    Some(LoginState::Redeemed) if broken || racing => end.answer_lost = true,
                    Some(LoginState::Expired) => {}
                    other => {
                        end.lost = Some(format!(
                            "redeem answered 410 at {:.1} s; the attempt is {other:?}",
                            reply.answered
                        ))
                    }
                }
                return;
            }
            Some(_) if !reply.retryable() => {
                end.lost = Some(format!(
                    "redeem answered {} at {:.1} s",
                    reply.describe(),
                    reply.answered
                ));
                return;
            }
            _ => {
                broken |= reply.status.is_none() || reply.balancer;
                if log.now() > until {
                    let state = read_state(world, http, id, cookie).await;
                    end.final_state = state;
                    if state != Some(LoginState::Expired) {
                        end.lost = Some(format!(
                            "redeem still failing ({}) after the approval's time; the attempt is {state:?}",
                            reply.describe()
                        ));
                    }
                    return;
                }
                backoff.pause().await;
            }
        }
    }
    // The new session works, for the account that approved.
    let Some(session) = end.session.clone() else {
        log.unexpected("redeem: 200 without a session cookie");
        return;
    };
    if let Some(me) = me(world, http, Req::get(paths::ME).cookie(&session)).await {
        log.checked(Invariant::NoSessionWithoutApproval);
        if Some(&me.user.username) != end.redeemed_as.first() {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "attempt {id}: redeemed as {:?}, but the session is {}'s",
                    end.redeemed_as.first(),
                    me.user.username
                ),
            );
        }
        log.expect_row(ExpectedRow {
            event: "signed_in",
            key: me.session.id.clone(),
            since: first_sent,
            answered: log.now(),
        });
        end.session_id = Some(me.session.id);
    }
}

async fn wait_code(rx: &mut watch::Receiver<Option<u8>>, limit: f64) -> Option<u8> {
    let wait = async {
        loop {
            if let Some(code) = *rx.borrow_and_update() {
                return Some(code);
            }
            if rx.changed().await.is_err() {
                return *rx.borrow();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs_f64(limit), wait)
        .await
        .ok()
        .flatten()
}

async fn phone_side(
    world: &World,
    phone: &PhoneSession,
    id: &str,
    decision: Decision,
    mut code_rx: watch::Receiver<Option<u8>>,
    seed: u64,
) -> PhoneEnd {
    let log = &world.log;
    let mut rng = Rng::new(seed);
    let mut http = world.front();
    let mut end = PhoneEnd::default();
    // Taking the phone out, pointing it at the screen.
    sleep_s((50 + rng.below(400)) as f64 / 1000.0).await;
    let scan = paths::with_id(paths::LOGIN_SCAN, id);
    let reply = http
        .until_answered("scan", 20.0, || {
            Req::post(scan.clone()).bearer(&phone.token)
        })
        .await;
    let Some(scanned) = reply.json::<Scanned>().filter(|_| reply.is(200)) else {
        log.unexpected(format!("scan: {}", reply.describe()));
        return end;
    };
    expect_row(log, "login_scanned", id, &reply, reply.first_sent);
    let mut intruder = world.front();
    if decision == Decision::Intruder {
        // Somebody else's phone, the code passed around: told it is taken.
        let reply = intruder
            .call(
                "intruder_scan",
                Req::post(scan.clone()).bearer(&world.intruder.token),
            )
            .await;
        log.checked(Invariant::NoSessionWithoutApproval);
        if reply.is(200) {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "attempt {id}: the intruder's scan after {}'s was accepted",
                    phone.username
                ),
            );
        }
    }
    // The person reads the two digits off the computer's screen.
    let Some(code) = wait_code(&mut code_rx, world.scanned_ttl).await else {
        log.unexpected("the desktop never showed the match code");
        return end;
    };
    if !scanned.match_choices.contains(&code) {
        log.unexpected("the match code is not among the phone's choices");
    }
    let approve = paths::with_id(paths::LOGIN_APPROVE, id);
    if decision == Decision::Intruder {
        let reply = intruder
            .call(
                "intruder_approve",
                Req::post(approve.clone())
                    .bearer(&world.intruder.token)
                    .json(&json!({ "match_code": code })),
            )
            .await;
        log.checked(Invariant::NoSessionWithoutApproval);
        if reply.is(200) {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!("attempt {id}: the intruder's approve was accepted"),
            );
        }
    }
    sleep_s((100 + rng.below(500)) as f64 / 1000.0).await;
    match decision {
        Decision::Deny => {
            let deny = paths::with_id(paths::LOGIN_DENY, id);
            let reply = http
                .until_answered("deny", 20.0, || {
                    Req::post(deny.clone()).bearer(&phone.token)
                })
                .await;
            if reply.is(200) {
                end.denied = true;
                expect_row(log, "login_denied", id, &reply, reply.first_sent);
            } else {
                log.unexpected(format!("deny: {}", reply.describe()));
            }
        }
        Decision::WrongCode => {
            let wrong = scanned
                .match_choices
                .iter()
                .copied()
                .find(|c| *c != code)
                .unwrap_or(code.wrapping_add(1));
            let body = json!({ "match_code": wrong });
            let reply = http
                .until_answered("approve_wrong_code", 20.0, || {
                    Req::post(approve.clone()).bearer(&phone.token).json(&body)
                })
                .await;
            if reply.is(409) && reply.error_code().as_deref() == Some("wrong_match_code") {
                end.denied = true;
                expect_row(log, "login_denied", id, &reply, reply.first_sent);
            } else {
                log.unexpected(format!("approve with the wrong code: {}", reply.describe()));
            }
        }
        _ => {
            end.approve_sent = true;
            let body = json!({ "match_code": code });
            let reply = http
                .until_answered("approve", 20.0, || {
                    Req::post(approve.clone()).bearer(&phone.token).json(&body)
                })
                .await;
            if reply.is(200) {
                end.approve_told_ok = true;
                end.approved_at = Some(reply.answered);
                expect_row(log, "login_approved", id, &reply, reply.first_sent);
            } else {
                log.unexpected(format!("approve: {}", reply.describe()));
            }
        }
    }
    end
}
