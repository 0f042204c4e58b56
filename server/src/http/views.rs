//! The domain's values in the shapes of API v1 (which the pages show too).

use app::api::{self, LoginState, LoginStatus, RecentSignIn, SessionInfo};

use crate::{
    domain::{
        account::Session,
        attempt::Attempt,
        caller::{describe_user_agent, same_network, Caller, ShownRequester},
        time::{rfc3339, seconds_until, UnixMillis},
    },
    services::accounts::SeenSignIn,
};

/// What the bound desktop may know: before approval, only the match code
/// and the scanner's display name when the account chose one that does not
/// give its username away ([`Scanner::shown_name`]); the account itself
/// only once it redeems (rule 5).
///
/// [`Scanner::shown_name`]: crate::domain::attempt::Scanner::shown_name
pub(crate) fn login_status(attempt: &Attempt, now: UnixMillis) -> LoginStatus {
    let shows_scanner = matches!(
        attempt.state,
        LoginState::Scanned | LoginState::Approved | LoginState::Redeemed
    );
    LoginStatus {
        id: attempt.id.to_string(),
        state: attempt.state,
        version: attempt.version,
        expires_at: rfc3339(attempt.expires_at),
        expires_in: seconds_until(attempt.expires_at, now),
        scanner: attempt
            .scanner
            .as_ref()
            .filter(|_| shows_scanner)
            .and_then(|s| s.shown_name.clone()),
        match_code: attempt
            .match_code
            .filter(|_| attempt.state == LoginState::Scanned),
    }
}

/// The phone's view of an attempt it scanned.
pub(crate) fn scanned(attempt: &Attempt, phone: &Caller, now: UnixMillis) -> api::Scanned {
    let shown = ShownRequester::of(&attempt.requester.user_agent, attempt.requester.ip);
    api::Scanned {
        requester: api::Requester {
            browser: shown.browser,
            os: shown.os,
            ip: shown.ip,
            age_s: now.saturating_sub(attempt.created_at) / 1000,
            same_network: same_network(attempt.requester.ip, phone.ip),
            client: attempt.requester.client.clone(),
        },
        match_choices: attempt.match_choices.unwrap_or_default(),
        state: attempt.state,
        // Filled in by the caller, which asks the passkey rules.
        needs_passkey: false,
    }
}

pub(crate) fn session_info(session: &Session, current_id: &str) -> SessionInfo {
    let (browser, os) = describe_user_agent(&session.user_agent);
    SessionInfo {
        id: session.id.clone(),
        method: session.method.clone(),
        browser,
        os,
        ip: session.ip.clone(),
        created_at: rfc3339(session.created_at),
        last_seen_at: rfc3339(session.last_seen_at),
        current: session.id == current_id,
    }
}

pub(crate) fn recent_sign_in(seen: SeenSignIn) -> RecentSignIn {
    let (browser, os) = describe_user_agent(&seen.record.user_agent);
    RecentSignIn {
        at: rfc3339(seen.record.at),
        browser,
        os,
        ip: seen.record.ip,
        session_id: seen.record.active_session,
        current: seen.current,
        new: seen.new,
    }
}
