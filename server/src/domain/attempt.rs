//! Login attempts: what the desktop creates, the phone approves and the
//! desktop redeems. The state machine lives here, free of I/O, so every
//! store applies exactly the same rules.

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

pub use app::api::LoginState;
use rand::{seq::SliceRandom, Rng};
use uuid::Uuid;

use super::{account::Account, secret::SecretHash, time::UnixMillis};

/// How long an attempt may stay in each waiting state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub pending: Duration,
    pub scanned: Duration,
    pub approved: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            pending: Duration::from_secs(60),
            scanned: Duration::from_secs(90),
            approved: Duration::from_secs(30),
        }
    }
}

impl Ttls {
    /// The longest an attempt can live: pending, then scanned, then approved.
    pub fn longest_life(&self) -> Duration {
        self.pending + self.scanned + self.approved
    }
}

/// How long a finished attempt is kept, so that its browser learns how it
/// ended (e.g. "expired") instead of a bare 404.
pub const FINISHED_RETENTION_MS: u64 = 5 * 60 * 1000;

/// A login attempt id: a version-4 UUID from the OS CSPRNG, made by this
/// server only. Parsing accepts only the canonical lower-case hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginId(Uuid);

impl LoginId {
    pub fn new_random() -> Self {
        // `new_v4` draws 122 random bits from `getrandom`, i.e. the OS CSPRNG.
        Self(Uuid::new_v4())
    }
}

impl FromStr for LoginId {
    type Err = InvalidLoginId;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        // `Uuid::try_parse` also takes braced, URN and un-hyphenated forms;
        // one spelling per id keeps logs, caches and rate limits honest.
        if raw.len() != 36 || raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(InvalidLoginId);
        }
        let uuid = Uuid::try_parse(raw).map_err(|_| InvalidLoginId)?;
        if uuid.get_version_num() != 4 {
            return Err(InvalidLoginId);
        }
        Ok(Self(uuid))
    }
}

impl fmt::Display for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidLoginId;

/// The desktop that asked to sign in, as the phone is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub ip: Option<IpAddr>,
    pub user_agent: String,
    /// The OpenID Connect client the sign-in is for, by its registered
    /// name (`None`: qrlogin itself).
    pub client: Option<String>,
    /// The only account that may scan, where the client named one
    /// (`login_hint`): another account's phone is refused.
    pub expected_account: Option<i64>,
}

/// The phone account that scanned the code, as the attempt keeps it: its
/// id, and the one thing about it the desktop may see before approval
/// (rule 5). Every store and every answer built from an attempt is thus
/// free of the username by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanner {
    pub account_id: i64,
    /// The display name the account chose, for the desktop's card; `None`
    /// when it would give the username away (see [`name_for_desktop`]).
    pub shown_name: Option<String>,
}

impl Scanner {
    pub fn of(account: &Account) -> Self {
        Self {
            account_id: account.id,
            shown_name: name_for_desktop(&account.username, &account.display_name),
        }
    }
}

/// The display name a desktop may see before the phone approves: `None`
/// when it gives the username away (the F6 data leak of the 2025 study).
/// A display name defaults to the username, so whoever shows a QR code to
/// someone would otherwise learn their username when they scan, even if
/// they then deny. Case, full-width forms and everything but letters and
/// digits are set aside, and containing the username is enough: `Alice`,
/// `alice (work)`, `Alice Liddell` for `alice`; `Alice.Smith` for
/// `alice_smith`.
pub fn name_for_desktop(username: &str, display_name: &str) -> Option<String> {
    fn fold(text: &str) -> String {
        text.chars()
            .map(|c| match u32::from(c) {
                // Full-width ASCII (`ａｌｉｃｅ`) as the ASCII it stands for.
                0xFF01..=0xFF5E => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .flat_map(char::to_lowercase)
            .filter(|c| c.is_alphanumeric())
            .collect()
    }
    let username = fold(username);
    let gives_it_away = username.is_empty() || fold(display_name).contains(&username);
    (!gives_it_away).then(|| display_name.trim().to_owned())
}

/// One login attempt as the stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: LoginId,
    pub bind_hash: SecretHash,
    pub state: LoginState,
    /// Bumped on every change.
    pub version: u64,
    pub created_at: UnixMillis,
    /// When the current state runs out (for a terminal state: when it ended).
    pub expires_at: UnixMillis,
    pub requester: Requester,
    pub scanner: Option<Scanner>,
    /// The two digits the desktop shows and the phone must pick.
    pub match_code: Option<u8>,
    /// The three numbers the phone offers, the right one among them.
    pub match_choices: Option<[u8; 3]>,
    /// Scans refused because another account scanned first.
    pub refused_scans: u8,
}

/// After this many refused scans by other accounts the attempt is denied:
/// a code passed around (QRLJacking) stops being worth anything.
pub const MAX_REFUSED_SCANS: u8 = 3;

/// A change someone asks for. Anything random is drawn before, so applying a
/// transition is deterministic (a store may retry it).
#[derive(Debug, Clone)]
pub enum Transition {
    Scan {
        scanner: Scanner,
        match_code: u8,
        match_choices: [u8; 3],
    },
    Approve {
        account_id: i64,
        match_code: u8,
    },
    Deny {
        account_id: i64,
    },
    Redeem,
    Cancel,
}

impl Transition {
    /// A scan with a fresh match code and two different decoys, shuffled.
    pub fn scan(scanner: Scanner) -> Self {
        let (match_code, match_choices) = match_choices();
        Self::Scan {
            scanner,
            match_code,
            match_choices,
        }
    }
}

/// A fresh two-digit match code and the three choices that offer it among
/// two different decoys, shuffled (sign-ins, and linking a phone).
pub fn match_choices() -> (u8, [u8; 3]) {
    let mut rng = rand::thread_rng();
    let match_code = rng.gen_range(10..=99);
    let mut choices = vec![match_code];
    while choices.len() < 3 {
        let decoy = rng.gen_range(10..=99);
        if !choices.contains(&decoy) {
            choices.push(decoy);
        }
    }
    choices.shuffle(&mut rng);
    (match_code, [choices[0], choices[1], choices[2]])
}

/// Why a transition was refused. The attempt is unchanged, except for
/// [`TransitionError::WrongMatchCode`], which denies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("Another account is already approving this sign-in.")]
    ScannedByOther,
    #[error("This sign-in is for another account.")]
    ForAnotherAccount,
    #[error("This code has not been scanned yet.")]
    NotScanned,
    #[error("This sign-in has not been approved yet.")]
    NotApproved,
    #[error("This sign-in was already approved.")]
    AlreadyApproved,
    #[error("That was not the number shown on the computer, so the sign-in was declined.")]
    WrongMatchCode,
    #[error("This sign-in request has already ended ({0:?}).")]
    Finished(LoginState),
}

impl Attempt {
    pub fn new(
        id: LoginId,
        bind_hash: SecretHash,
        requester: Requester,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Self {
        Self {
            id,
            bind_hash,
            state: LoginState::Pending,
            version: 1,
            created_at: now,
            expires_at: now + ttls.pending.as_millis() as u64,
            requester,
            scanner: None,
            match_code: None,
            match_choices: None,
            refused_scans: 0,
        }
    }

    /// Moves a waiting attempt whose time ran out to `expired`; returns
    /// whether it changed.
    pub fn expire_if_due(&mut self, now: UnixMillis) -> bool {
        if !self.state.is_terminal() && now >= self.expires_at {
            self.enter(LoginState::Expired, self.expires_at);
            true
        } else {
            false
        }
    }

    fn enter(&mut self, state: LoginState, expires_at: UnixMillis) {
        self.state = state;
        self.expires_at = expires_at;
        self.version += 1;
    }

    fn is_scanner(&self, account_id: i64) -> bool {
        self.scanner
            .as_ref()
            .is_some_and(|s| s.account_id == account_id)
    }

    /// Applies `transition` as of `now` (expiring the attempt first if due).
    pub fn apply(
        &mut self,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<(), TransitionError> {
        self.expire_if_due(now);
        if self.state.is_terminal() {
            return Err(TransitionError::Finished(self.state));
        }
        let after = |d: Duration| now + d.as_millis() as u64;
        match transition {
            Transition::Scan {
                scanner,
                match_code,
                match_choices,
            } => self.scan(
                scanner,
                *match_code,
                *match_choices,
                now,
                after(ttls.scanned),
            ),
            Transition::Approve {
                account_id,
                match_code,
            } => self.approve(*account_id, *match_code, now, after(ttls.approved)),
            Transition::Deny { account_id } => self.deny(*account_id, now),
            Transition::Redeem => match self.state {
                LoginState::Approved => {
                    self.enter(LoginState::Redeemed, now);
                    Ok(())
                }
                _ => Err(TransitionError::NotApproved),
            },
            Transition::Cancel => {
                self.enter(LoginState::Cancelled, now);
                Ok(())
            }
        }
    }

    fn scan(
        &mut self,
        scanner: &Scanner,
        match_code: u8,
        match_choices: [u8; 3],
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), TransitionError> {
        let expected = self
            .requester
            .expected_account
            .is_none_or(|id| id == scanner.account_id);
        match self.state {
            // Refused and counted like a scan by a second account: a code
            // passed to the wrong phones stops being worth anything.
            _ if !expected => {
                self.count_refused_scan(now);
                Err(TransitionError::ForAnotherAccount)
            }
            LoginState::Pending => {
                self.scanner = Some(scanner.clone());
                self.match_code = Some(match_code);
                self.match_choices = Some(match_choices);
                self.enter(LoginState::Scanned, expires_at);
                Ok(())
            }
            // The same phone opening the link again sees the same request.
            _ if self.is_scanner(scanner.account_id) => Ok(()),
            _ => {
                self.count_refused_scan(now);
                Err(TransitionError::ScannedByOther)
            }
        }
    }

    /// Counts a scan refused to a phone; enough of them deny the attempt.
    fn count_refused_scan(&mut self, now: UnixMillis) {
        self.refused_scans = self.refused_scans.saturating_add(1);
        if self.refused_scans >= MAX_REFUSED_SCANS {
            self.enter(LoginState::Denied, now);
        }
    }

    fn approve(
        &mut self,
        account_id: i64,
        match_code: u8,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), TransitionError> {
        match self.state {
            LoginState::Pending => Err(TransitionError::NotScanned),
            _ if !self.is_scanner(account_id) => Err(TransitionError::ScannedByOther),
            LoginState::Approved => Ok(()),
            _ if self.match_code != Some(match_code) => {
                // Deny is the safe default: a wrong pick may mean the
                // phone is looking at somebody else's screen.
                self.enter(LoginState::Denied, now);
                Err(TransitionError::WrongMatchCode)
            }
            _ => {
                self.enter(LoginState::Approved, expires_at);
                Ok(())
            }
        }
    }

    fn deny(&mut self, account_id: i64, now: UnixMillis) -> Result<(), TransitionError> {
        match self.state {
            LoginState::Pending => Err(TransitionError::NotScanned),
            _ if !self.is_scanner(account_id) => Err(TransitionError::ScannedByOther),
            LoginState::Approved => Err(TransitionError::AlreadyApproved),
            _ => {
                self.enter(LoginState::Denied, now);
                Ok(())
            }
        }
    }
}

/// A fresh pending attempt from nobody in particular, for unit tests.
#[cfg(test)]
pub(crate) fn test_attempt(now: UnixMillis) -> Attempt {
    Attempt::new(
        LoginId::new_random(),
        crate::domain::secret::Secret::new_random().hash(),
        Requester {
            ip: None,
            user_agent: String::new(),
            client: None,
            expected_account: None,
        },
        now,
        &Ttls::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use LoginState::*;

    const ALICE: i64 = 1;
    const BOB: i64 = 2;

    fn ttls() -> Ttls {
        Ttls::default()
    }

    fn pending() -> Attempt {
        test_attempt(0)
    }

    fn scan(account_id: i64) -> Transition {
        Transition::Scan {
            scanner: Scanner {
                account_id,
                shown_name: Some(format!("account {account_id}")),
            },
            match_code: 42,
            match_choices: [17, 42, 88],
        }
    }

    fn approve(account_id: i64, match_code: u8) -> Transition {
        Transition::Approve {
            account_id,
            match_code,
        }
    }

    fn in_state(state: LoginState) -> Attempt {
        let mut a = pending();
        let steps: &[Transition] = match state {
            Pending => &[],
            Scanned => &[scan(ALICE)],
            Approved => &[scan(ALICE), approve(ALICE, 42)],
            Redeemed => &[scan(ALICE), approve(ALICE, 42), Transition::Redeem],
            Denied => &[scan(ALICE), Transition::Deny { account_id: ALICE }],
            Cancelled => &[Transition::Cancel],
            Expired => {
                a.expire_if_due(u64::MAX);
                &[]
            }
        };
        for step in steps {
            a.apply(step, 1, &ttls()).unwrap();
        }
        assert_eq!(a.state, state);
        a
    }

    #[test]
    fn login_ids_are_strict_v4_uuids() {
        let id = LoginId::new_random();
        assert_eq!(id.to_string().parse::<LoginId>(), Ok(id));
        for bad in [
            "0B8F6A52-2F6E-4B8E-9A4E-6F1D2C3B4A59",   // upper case
            "0b8f6a522f6e4b8e9a4e6f1d2c3b4a59",       // no hyphens
            "{0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59}", // braced
            "urn:uuid:0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59",
            "0b8f6a52-2f6e-1b8e-9a4e-6f1d2c3b4a59", // version 1
            "0b8f6a52-2f6e-7b8e-9a4e-6f1d2c3b4a59", // version 7
            "",
        ] {
            assert_eq!(bad.parse::<LoginId>(), Err(InvalidLoginId), "{bad}");
        }
    }

    #[test]
    fn the_happy_path_bumps_the_version_at_every_step() {
        let mut a = pending();
        a.apply(&scan(ALICE), 1_000, &ttls()).unwrap();
        assert_eq!((a.state, a.version), (Scanned, 2));
        assert_eq!(a.expires_at, 91_000);
        assert_eq!(a.match_code, Some(42));
        a.apply(&approve(ALICE, 42), 2_000, &ttls()).unwrap();
        assert_eq!((a.state, a.version, a.expires_at), (Approved, 3, 32_000));
        a.apply(&Transition::Redeem, 3_000, &ttls()).unwrap();
        assert_eq!((a.state, a.version), (Redeemed, 4));
    }

    #[test]
    fn every_illegal_transition_is_refused_and_changes_nothing() {
        let cases: Vec<(LoginState, Transition, TransitionError)> = vec![
            (Pending, approve(ALICE, 42), TransitionError::NotScanned),
            (
                Pending,
                Transition::Deny { account_id: ALICE },
                TransitionError::NotScanned,
            ),
            (Pending, Transition::Redeem, TransitionError::NotApproved),
            (Scanned, approve(BOB, 42), TransitionError::ScannedByOther),
            (
                Scanned,
                Transition::Deny { account_id: BOB },
                TransitionError::ScannedByOther,
            ),
            (Scanned, Transition::Redeem, TransitionError::NotApproved),
            (
                Approved,
                Transition::Deny { account_id: ALICE },
                TransitionError::AlreadyApproved,
            ),
        ];
        for (state, transition, error) in cases {
            let mut a = in_state(state);
            let before = a.clone();
            assert_eq!(
                a.apply(&transition, 2, &ttls()),
                Err(error),
                "{state:?} {transition:?}"
            );
            assert_eq!(a, before, "{state:?} {transition:?}");
        }
    }

    #[test]
    fn terminal_states_are_final() {
        let all = [
            scan(ALICE),
            scan(BOB),
            approve(ALICE, 42),
            Transition::Deny { account_id: ALICE },
            Transition::Redeem,
            Transition::Cancel,
        ];
        for state in [Redeemed, Expired, Denied, Cancelled] {
            for transition in &all {
                let mut a = in_state(state);
                let before = a.clone();
                assert_eq!(
                    a.apply(transition, 2, &ttls()),
                    Err(TransitionError::Finished(state))
                );
                assert_eq!(a, before);
            }
        }
    }

    #[test]
    fn scans_by_other_accounts_are_refused_and_counted_until_the_code_locks() {
        for state in [Scanned, Approved] {
            let mut a = in_state(state);
            for refused in 1..MAX_REFUSED_SCANS {
                assert_eq!(
                    a.apply(&scan(BOB), 2, &ttls()),
                    Err(TransitionError::ScannedByOther)
                );
                assert_eq!((a.state, a.refused_scans), (state, refused));
            }
            let version = a.version;
            assert_eq!(
                a.apply(&scan(BOB), 2, &ttls()),
                Err(TransitionError::ScannedByOther)
            );
            assert_eq!((a.state, a.version), (Denied, version + 1));
        }
    }

    #[test]
    fn an_attempt_for_one_account_refuses_every_other_phone() {
        let mut a = pending();
        a.requester.expected_account = Some(ALICE);
        for refused in 1..MAX_REFUSED_SCANS {
            assert_eq!(
                a.apply(&scan(BOB), 1, &ttls()),
                Err(TransitionError::ForAnotherAccount)
            );
            assert_eq!(
                (a.state, a.refused_scans, a.scanner.clone()),
                (Pending, refused, None)
            );
        }
        // Alice's own phone still can: the code was not passed on too often.
        assert_eq!(a.apply(&scan(ALICE), 2, &ttls()), Ok(()));
        assert_eq!(a.state, Scanned);
        assert_eq!(
            a.apply(&scan(BOB), 3, &ttls()),
            Err(TransitionError::ForAnotherAccount)
        );
        assert_eq!(a.state, Denied);
    }

    #[test]
    fn a_wrong_match_code_denies() {
        let mut a = in_state(Scanned);
        assert_eq!(
            a.apply(&approve(ALICE, 17), 2, &ttls()),
            Err(TransitionError::WrongMatchCode)
        );
        assert_eq!(a.state, Denied);
        assert_eq!(
            a.apply(&approve(ALICE, 42), 3, &ttls()),
            Err(TransitionError::Finished(Denied))
        );
    }

    #[test]
    fn repeating_a_scan_or_approval_is_harmless() {
        let mut a = in_state(Scanned);
        let before = a.clone();
        a.apply(&scan(ALICE), 2, &ttls()).unwrap();
        assert_eq!(a, before);
        let mut a = in_state(Approved);
        let before = a.clone();
        a.apply(&approve(ALICE, 42), 2, &ttls()).unwrap();
        assert_eq!(a, before);
    }

    #[test]
    fn each_waiting_state_expires_at_its_own_ttl() {
        let mut a = pending();
        assert_eq!(
            a.apply(&scan(ALICE), 60_000, &ttls()),
            Err(TransitionError::Finished(Expired))
        );
        let mut a = in_state(Scanned); // scanned at t=1
        assert_eq!(
            a.apply(&approve(ALICE, 42), 90_001, &ttls()),
            Err(TransitionError::Finished(Expired))
        );
        let mut a = in_state(Approved); // approved at t=1
        assert_eq!(
            a.apply(&Transition::Redeem, 30_001, &ttls()),
            Err(TransitionError::Finished(Expired))
        );
        let mut a = in_state(Approved);
        a.apply(&Transition::Redeem, 30_000, &ttls()).unwrap();
    }

    #[test]
    fn the_desktop_gets_no_display_name_that_gives_the_username_away() {
        for (username, display_name) in [
            ("alice", "alice"),
            ("alice", " Alice "),
            ("alice", "ALICE"),
            ("alice", "ａｌｉｃｅ"),
            ("alice", "Alice Liddell"),
            ("alice", "alice (work)"),
            ("alice_smith", "Alice.Smith"),
            ("alice_smith", "Alice Smith"),
            ("a.b-c", "ABC"),
        ] {
            assert_eq!(
                name_for_desktop(username, display_name),
                None,
                "{display_name:?} for {username:?}"
            );
        }
        for (username, display_name, shown) in [
            ("alice", "The Queen of Hearts", "The Queen of Hearts"),
            ("alice.smith", " Alice ", "Alice"),
            ("zhang.wei", "张伟", "张伟"),
            ("bob", "☺", "☺"),
        ] {
            assert_eq!(
                name_for_desktop(username, display_name).as_deref(),
                Some(shown),
                "{display_name:?} for {username:?}"
            );
        }
    }

    #[test]
    fn scans_offer_the_code_among_three_distinct_two_digit_choices() {
        for _ in 0..200 {
            let Transition::Scan {
                match_code,
                match_choices,
                ..
            } = Transition::scan(Scanner {
                account_id: ALICE,
                shown_name: None,
            })
            else {
                unreachable!()
            };
            assert!((10..=99).contains(&match_code));
            assert!(match_choices.contains(&match_code));
            assert!(match_choices.iter().all(|c| (10..=99).contains(c)));
            assert_ne!(match_choices[0], match_choices[1]);
            assert_ne!(match_choices[1], match_choices[2]);
            assert_ne!(match_choices[0], match_choices[2]);
        }
    }
}
