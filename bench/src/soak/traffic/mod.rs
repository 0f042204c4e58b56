//! The soak's mixed traffic, through nginx as real clients would come:
//! desktops creating and waiting, phones scanning, approving, denying,
//! desktops redeeming (sometimes twice at once), password sign-ins and
//! sign-outs, sessions revoked from the phone, the OpenID Connect code and
//! device flows with refresh and revocation, and an intruder account that
//! scans codes other phones scanned first. Each client retries what a 503
//! or a broken connection stopped, as the pages do, and records on the
//! spot anything an invariant forbids.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

mod apps;
mod qr;

use app::api::{paths, LoginCreated, LoginState, LoginStatus, Me, SignedIn};
use serde_json::json;

use self::{
    apps::{device, oidc_code},
    qr::{qr_flow, read_state, Decision},
};
use super::{
    http::{Http, Reply, Req},
    log::{ExpectedRow, Invariant, Log},
    stack::NAMES,
};

pub struct Account {
    pub username: String,
    pub password: String,
}

pub struct OidcClient {
    pub id: String,
    pub secret: String,
    pub redirect_uri: String,
}

#[derive(Clone)]
pub struct PhoneSession {
    pub username: String,
    pub token: String,
}

/// An approved attempt whose desktop walked away: it must expire.
pub struct Abandoned {
    pub id: String,
    pub cookie: String,
    pub approved_at: f64,
}

pub struct World {
    pub log: Arc<Log>,
    pub front: SocketAddr,
    pub instances: [SocketAddr; 2],
    pub client: OidcClient,
    pub phones: Vec<Account>,
    pub intruder: PhoneSession,
    pub pending_ttl: f64,
    pub scanned_ttl: f64,
    pub approved_ttl: f64,
    pub stop: AtomicBool,
    pub abandoned: Mutex<Vec<Abandoned>>,
}

impl World {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn front(&self) -> Http {
        Http::new(self.front, "front", &self.log)
    }
}

/// xorshift64*: the scenarios' dice (no cryptography here).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn hex(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

async fn sleep_s(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
}

/// The pause before trying again, as the pages do: doubling from 0.25 s to
/// 2 s while the answers say "try again" (an outage), 1 s after an answer
/// nobody expected (counted as such).
struct Backoff(f64);

impl Backoff {
    const FIRST_S: f64 = 0.25;
    const MOST_S: f64 = 2.0;

    fn new() -> Self {
        Self(Self::FIRST_S)
    }

    /// A good answer: the next outage starts from the shortest pause.
    fn reset(&mut self) {
        self.0 = Self::FIRST_S;
    }

    /// A retryable answer: wait, and wait longer next time.
    async fn pause(&mut self) {
        sleep_s(self.0).await;
        self.0 = (self.0 * 2.0).min(Self::MOST_S);
    }

    /// Any other failed answer to a poll: a retryable one waits as
    /// [`Self::pause`]; else it is counted as unexpected, then a second.
    async fn after_failed_poll(&mut self, log: &Log, what: &str, reply: &Reply) {
        if reply.retryable() {
            self.pause().await;
        } else {
            log.unexpected(format!("{what}: {}", reply.describe()));
            sleep_s(1.0).await;
        }
    }
}

fn expect_row(log: &Log, event: &'static str, key: &str, reply: &Reply, since: f64) {
    log.expect_row(ExpectedRow {
        event,
        key: key.to_owned(),
        since,
        answered: reply.answered,
    });
}

// ---- the users --------------------------------------------------------------

/// What a user does next, with its weight.
const SCENARIOS: [(&str, u64); 12] = [
    ("qr_approve_redeem", 30),
    ("qr_racing_redeems", 8),
    ("qr_deny", 8),
    ("qr_wrong_code", 5),
    ("qr_intruder", 5),
    ("qr_abandoned", 4),
    ("qr_cancelled", 4),
    ("password", 12),
    ("wrong_password", 3),
    ("oidc_code", 10),
    ("device_approve", 7),
    ("device_deny", 2),
];

fn pick(rng: &mut Rng) -> &'static str {
    let total: u64 = SCENARIOS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    for (name, weight) in SCENARIOS {
        if roll < weight {
            return name;
        }
        roll -= weight;
    }
    SCENARIOS[0].0
}

/// One person with a phone (account `index`) and computers, until told
/// to stop; a scenario under way is finished first.
pub async fn user(world: Arc<World>, index: usize) {
    let mut rng = Rng::new(index as u64 + 1);
    let Some(account) = world.phones.get(index) else {
        return;
    };
    // Spread the users' starts.
    sleep_s(rng.below(1000) as f64 / 1000.0).await;
    let mut phone_http = world.front();
    let Some(phone) = sign_in(&world, &mut phone_http, account, "sign_in").await else {
        world
            .log
            .unexpected(format!("{}: no phone session", account.username));
        return;
    };
    while !world.stopping() {
        let scenario = pick(&mut rng);
        match scenario {
            "qr_approve_redeem" => {
                qr_flow(&world, &mut rng, &phone, Decision::Approve, None).await;
            }
            "qr_racing_redeems" => {
                qr_flow(&world, &mut rng, &phone, Decision::RacingRedeems, None).await;
            }
            "qr_deny" => {
                qr_flow(&world, &mut rng, &phone, Decision::Deny, None).await;
            }
            "qr_wrong_code" => {
                qr_flow(&world, &mut rng, &phone, Decision::WrongCode, None).await;
            }
            "qr_intruder" => {
                qr_flow(&world, &mut rng, &phone, Decision::Intruder, None).await;
            }
            "qr_abandoned" => {
                qr_flow(&world, &mut rng, &phone, Decision::Abandon, None).await;
            }
            "qr_cancelled" => {
                qr_flow(&world, &mut rng, &phone, Decision::Cancel, None).await;
            }
            "password" => password(&world, &mut rng, &phone, &mut phone_http, account).await,
            "wrong_password" => wrong_password(&world, account).await,
            "oidc_code" => oidc_code(&world, &mut rng, &phone).await,
            "device_approve" => device(&world, &phone, true).await,
            _ => device(&world, &phone, false).await,
        }
        world.log.flow(scenario);
        sleep_s((100 + rng.below(400)) as f64 / 1000.0).await;
    }
}

/// A desktop that only waits: its code runs out, it makes another.
pub async fn idle_desktop(world: Arc<World>, index: usize) {
    let log = &world.log;
    sleep_s(index as f64 * 0.1).await;
    let mut http = world.front();
    while !world.stopping() {
        let reply = http
            .until_answered("create_idle", 30.0, || Req::post(paths::LOGINS))
            .await;
        let (Some(created), Some(cookie)) = (reply.json::<LoginCreated>(), reply.cookie(None))
        else {
            log.unexpected(format!("create_idle: {}", reply.describe()));
            sleep_s(1.0).await;
            continue;
        };
        expect_row(log, "login_created", &created.id, &reply, reply.first_sent);
        let path = paths::with_id(paths::LOGIN, &created.id);
        let mut since = created.version;
        let mut backoff = Backoff::new();
        while !world.stopping() {
            let reply = http
                .call(
                    "long_poll_idle",
                    Req::get(format!("{path}?since={since}&wait=25"))
                        .cookie(&cookie)
                        .timeout(Duration::from_secs(40)),
                )
                .await;
            match reply.status {
                Some(200) => {
                    backoff.reset();
                    let Some(status) = reply.json::<LoginStatus>() else {
                        log.unexpected("long_poll_idle: not a status");
                        break;
                    };
                    since = since.max(status.version);
                    match status.state {
                        LoginState::Pending => {}
                        LoginState::Expired => break,
                        other => {
                            log.unexpected(format!("an idle desktop's attempt became {other:?}"));
                            break;
                        }
                    }
                }
                Some(404) => {
                    log.unexpected("long_poll_idle: 404, the attempt was forgotten");
                    break;
                }
                _ => {
                    backoff
                        .after_failed_poll(log, "long_poll_idle", &reply)
                        .await
                }
            }
        }
    }
}

/// Password sign-in; the session's audit row is expected.
async fn sign_in(
    world: &World,
    http: &mut Http,
    account: &Account,
    kind: &'static str,
) -> Option<PhoneSession> {
    let body = json!({ "username": account.username, "password": account.password });
    let reply = http
        .until_answered(kind, 30.0, || Req::post(paths::SESSION).json(&body))
        .await;
    let Some(signed_in) = reply.json::<SignedIn>().filter(|_| reply.is(200)) else {
        world
            .log
            .unexpected(format!("{kind}: {}", reply.describe()));
        return None;
    };
    let phone = PhoneSession {
        username: signed_in.user.username,
        token: signed_in.token,
    };
    let since = reply.first_sent;
    let answered = reply.answered;
    if let Some(me) = me(world, http, Req::get(paths::ME).bearer(&phone.token)).await {
        world.log.expect_row(ExpectedRow {
            event: "signed_in",
            key: me.session.id,
            since,
            answered,
        });
    }
    Some(phone)
}

/// `GET /api/v1/me` with `req`'s credentials, through 503s.
async fn me(world: &World, http: &mut Http, req: Req) -> Option<Me> {
    let reply = http.until_answered("me", 20.0, || req.clone()).await;
    if !reply.is(200) {
        world.log.unexpected(format!("me: {}", reply.describe()));
        return None;
    }
    reply.json()
}

/// Calls `make` on both instances directly: what was revoked must be
/// refused by each (an instance being restarted is tried for 15 s).
async fn check_refused(world: &World, what: &str, kind: &'static str, make: impl Fn() -> Req) {
    for (slot, addr) in world.instances.iter().enumerate() {
        let mut http = Http::new(*addr, NAMES[slot], &world.log);
        let reply = http.until_answered(kind, 15.0, &make).await;
        match reply.status {
            Some(401) | Some(400) => world.log.checked(Invariant::RevokedRefused),
            Some(200) => {
                world.log.checked(Invariant::RevokedRefused);
                world.log.finding(
                    Invariant::RevokedRefused,
                    format!(
                        "{what} was still accepted by instance {} at {:.1} s",
                        NAMES[slot], reply.answered
                    ),
                );
            }
            // That instance was down the whole time.
            None => {}
            _ => world
                .log
                .unexpected(format!("{kind}: {}", reply.describe())),
        }
    }
}

// ---- password sign-ins ------------------------------------------------------------

/// A new phone signs in with the password, then signs out, or the
/// account's first phone revokes it.
async fn password(
    world: &World,
    rng: &mut Rng,
    phone: &PhoneSession,
    phone_http: &mut Http,
    account: &Account,
) {
    let log = &world.log;
    let mut http = world.front();
    let Some(session) = sign_in(world, &mut http, account, "sign_in").await else {
        return;
    };
    let Some(me) = me(world, &mut http, Req::get(paths::ME).bearer(&session.token)).await else {
        return;
    };
    log.checked(Invariant::NoSessionWithoutApproval);
    if me.user.username != account.username {
        log.finding(
            Invariant::NoSessionWithoutApproval,
            format!(
                "{}'s password gave a session of {}",
                account.username, me.user.username
            ),
        );
    }
    let (kind, what, reply) = if rng.below(2) == 0 {
        let reply = http
            .until_answered("sign_out", 20.0, || {
                Req::delete(paths::SESSION).bearer(&session.token)
            })
            .await;
        ("sign_out", "a signed-out session", reply)
    } else {
        let path = paths::with_id(paths::SESSION_BY_ID, &me.session.id);
        let reply = phone_http
            .until_answered("revoke_session", 20.0, || {
                Req::delete(path.clone()).bearer(&phone.token)
            })
            .await;
        (
            "revoke_session",
            "a phone session revoked from another phone",
            reply,
        )
    };
    if reply.is(204) {
        check_refused(world, what, "me_after_revoke", || {
            Req::get(paths::ME).bearer(&session.token)
        })
        .await;
    } else {
        log.unexpected(format!("{kind}: {}", reply.describe()));
    }
}

async fn wrong_password(world: &World, account: &Account) {
    let mut http = world.front();
    let body = json!({ "username": account.username, "password": "not the password" });
    let reply = http
        .until_answered("sign_in_wrong_password", 20.0, || {
            Req::post(paths::SESSION).json(&body)
        })
        .await;
    if !reply.is(401) {
        world.log.unexpected(format!(
            "sign-in with a wrong password: {}",
            reply.describe()
        ));
    }
}

/// Every abandoned approval must have expired: each is read once its
/// approval's time is over (soon after: finished attempts are kept only
/// 5 minutes). `beside`: beside the traffic, until it stops; otherwise
/// (once every flow has finished) the rest, and done.
pub async fn check_abandoned(world: Arc<World>, beside: bool) {
    let mut http = world.front();
    loop {
        if beside && world.stopping() {
            return;
        }
        let last = !beside;
        let due_by = |a: &Abandoned| a.approved_at + world.approved_ttl + 1.0;
        let due: Vec<Abandoned> = {
            let mut list = world
                .abandoned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = world.log.now();
            let (due, later): (Vec<Abandoned>, Vec<Abandoned>) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|a| last || due_by(a) <= now);
            *list = later;
            due
        };
        for attempt in due {
            sleep_s(due_by(&attempt) - world.log.now()).await;
            world.log.checked(Invariant::ApprovalsKept);
            let state = read_state(&world, &mut http, &attempt.id, &attempt.cookie).await;
            if state != Some(LoginState::Expired) {
                world.log.finding(
                    Invariant::ApprovalsKept,
                    format!(
                        "abandoned attempt {} approved at {:.1} s was {state:?} after its approval's time, not expired",
                        attempt.id, attempt.approved_at
                    ),
                );
            }
        }
        if last {
            return;
        }
        sleep_s(1.0).await;
    }
}
