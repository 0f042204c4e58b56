//! The store contracts: one suite per trait, written once, run against
//! every back-end that implements it. A new back-end adds one line to each
//! `*_on_every_back_end` test.

use std::{sync::Arc, time::Duration};

use super::{
    cache::CachedSessions,
    memory,
    postgres::PostgresStore,
    redis::{RedisAttemptStore, RedisConnection, RedisLimiter, RedisNotifier, RedisRevocations},
    sqlite::SqliteStore,
    testing,
    traits::{
        AccountStore, AttemptStore, AuditQuery, AuditStore, ChangeNotifier, KeyMatch,
        ProviderStore, RecordSelector, RevocationClock, SessionStore, SharedLimiter, StoreError,
    },
};
use crate::domain::{
    account::{DisplayName, NewSession, SignInMethod, Username, SESSION_IDLE_LIMIT_MS},
    attempt::{
        test_attempt, LoginId, LoginState, Scanner, Transition, TransitionError, Ttls,
        FINISHED_RETENTION_MS,
    },
    audit::{AuditEvent, AuditRecord},
    caller::Caller,
    secret::{Secret, SecretHash},
    time::now_millis,
};

/// A fresh PostgreSQL database, when the test servers run.
async fn postgres() -> Option<Arc<PostgresStore>> {
    let url = testing::fresh_postgres().await?;
    Some(Arc::new(PostgresStore::open(&url).await.unwrap()))
}

/// The test Redis under a fresh prefix, when the test servers run.
async fn redis() -> Option<RedisConnection> {
    let settings = testing::fresh_redis()?;
    Some(
        RedisConnection::open(&settings.url, &settings.prefix)
            .await
            .unwrap(),
    )
}

/// A fresh SQLite store in its own folder (kept alive with it).
async fn sqlite() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

// ---- AttemptStore ----

async fn attempt_store_contract(store: Arc<dyn AttemptStore>) {
    let ttls = Ttls::default();
    // Real times: a back-end may hand expiry to a server with a real clock.
    let t0 = now_millis();
    let t = |ms: u64| t0 + ms;
    let a = test_attempt(t(0));
    store.insert(a.clone()).await.unwrap();
    assert!(matches!(
        store.insert(a.clone()).await,
        Err(StoreError::Duplicate)
    ));
    assert!(store
        .get(LoginId::new_random(), t(0))
        .await
        .unwrap()
        .is_none());

    // Expires on read, once; a terminal attempt never changes again.
    let live = store.get(a.id, t(59_999)).await.unwrap().unwrap();
    assert_eq!((live.state, live.version), (LoginState::Pending, 1));
    let gone = store.get(a.id, t(60_000)).await.unwrap().unwrap();
    assert_eq!((gone.state, gone.version), (LoginState::Expired, 2));
    let again = store.get(a.id, t(90_000)).await.unwrap().unwrap();
    assert_eq!(again.version, 2);

    // Purged once, after the retention, as it ended.
    let end = t(60_000 + FINISHED_RETENTION_MS);
    assert!(store.purge(end - 1).await.unwrap().is_empty());
    let purged = store.purge(end).await.unwrap();
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].state, LoginState::Expired);
    assert!(store.purge(end + 1).await.unwrap().is_empty());
    assert!(store.get(a.id, t(0)).await.unwrap().is_none());

    // What the requester asked for is kept as it was.
    let mut hinted = test_attempt(t(0));
    hinted.requester.client = Some("Grafana".into());
    hinted.requester.expected_account = Some(7);
    store.insert(hinted.clone()).await.unwrap();
    let read = store.get(hinted.id, t(1)).await.unwrap().unwrap();
    assert_eq!(read.requester, hinted.requester);

    // Refusals change nothing; changes bump the version.
    let b = test_attempt(t(0));
    store.insert(b.clone()).await.unwrap();
    let refused = store
        .apply(b.id, &Transition::Redeem, t(1), &ttls)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.outcome, Err(TransitionError::NotApproved));
    assert!(!refused.changed);
    let scanner = Scanner {
        account_id: 7,
        shown_name: Some("Alice".into()),
    };
    let scanned = store
        .apply(b.id, &Transition::scan(scanner), t(1), &ttls)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(scanned.outcome, Ok(()));
    assert!(scanned.changed);
    assert_eq!(
        (scanned.attempt.state, scanned.attempt.version),
        (LoginState::Scanned, 2)
    );
    let stored = store.get(b.id, t(2)).await.unwrap().unwrap();
    assert_eq!(stored, scanned.attempt);
    assert!(store
        .apply(LoginId::new_random(), &Transition::Cancel, t(1), &ttls)
        .await
        .unwrap()
        .is_none());

    // Of racing transitions exactly one wins.
    let code = stored.match_code.unwrap();
    let approve = Transition::Approve {
        account_id: 7,
        match_code: code,
    };
    store.apply(b.id, &approve, t(3), &ttls).await.unwrap();
    let redeems = (0..8).map(|_| {
        let store = store.clone();
        let now = t(4);
        tokio::spawn(async move { store.apply(b.id, &Transition::Redeem, now, &ttls).await })
    });
    let mut winners = 0;
    for redeem in redeems {
        let applied = redeem.await.unwrap().unwrap().unwrap();
        winners += usize::from(applied.outcome.is_ok());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn attempt_store_contract_on_every_back_end() {
    attempt_store_contract(Arc::new(memory::MemoryAttemptStore::default())).await;
    if let Some(redis) = redis().await {
        attempt_store_contract(Arc::new(RedisAttemptStore::new(redis))).await;
    }
}

/// Two instances racing on one attempt through Redis: the version
/// compare-and-set lets exactly one redeem win.
#[tokio::test]
async fn redis_attempts_race_safely_across_instances() {
    let Some(settings) = testing::fresh_redis() else {
        return;
    };
    let open = || RedisConnection::open(&settings.url, &settings.prefix);
    let a = Arc::new(RedisAttemptStore::new(open().await.unwrap()));
    let b = Arc::new(RedisAttemptStore::new(open().await.unwrap()));
    let ttls = Ttls::default();
    let now = now_millis();
    let attempt = test_attempt(now);
    a.insert(attempt.clone()).await.unwrap();
    let scanner = Scanner {
        account_id: 7,
        shown_name: Some("Alice".into()),
    };
    let scanned = b
        .apply(attempt.id, &Transition::scan(scanner), now, &ttls)
        .await
        .unwrap()
        .unwrap();
    let approve = Transition::Approve {
        account_id: 7,
        match_code: scanned.attempt.match_code.unwrap(),
    };
    a.apply(attempt.id, &approve, now, &ttls).await.unwrap();
    let redeems = (0..16).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store
                .apply(attempt.id, &Transition::Redeem, now, &Ttls::default())
                .await
        })
    });
    let mut winners = 0;
    for redeem in redeems {
        winners += usize::from(redeem.await.unwrap().unwrap().unwrap().outcome.is_ok());
    }
    assert_eq!(winners, 1);
    // Each instance purges; only one gets the attempt.
    let later = now + Ttls::default().longest_life().as_millis() as u64 + FINISHED_RETENTION_MS;
    let (first, second) = tokio::join!(a.purge(later), b.purge(later));
    assert_eq!(first.unwrap().len() + second.unwrap().len(), 1);
}

// ---- ChangeNotifier ----

/// Whether `rx` hears `version` within two seconds.
async fn hears(rx: &mut tokio::sync::watch::Receiver<u64>, version: u64) -> bool {
    let heard = rx.wait_for(|v| *v == version);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), heard).await,
        Ok(Ok(_))
    )
}

async fn change_notifier_contract(notifier: Arc<dyn ChangeNotifier>) {
    let id = LoginId::new_random();
    let other = LoginId::new_random();
    let mut first = notifier.subscribe(id);
    let mut second = notifier.subscribe(id);
    let mut elsewhere = notifier.subscribe(other);
    first.borrow_and_update();
    second.borrow_and_update();
    elsewhere.borrow_and_update();

    notifier.publish(id, 2).await.unwrap();
    assert!(hears(&mut first, 2).await, "the first subscriber heard it");
    assert!(hears(&mut second, 2).await, "so did the second");
    assert!(!elsewhere.has_changed().unwrap(), "not another attempt's");

    // Forgetting idle entries keeps the ones someone waits on.
    drop(second);
    notifier.forget_idle();
    notifier.publish(id, 3).await.unwrap();
    assert!(hears(&mut first, 3).await);
    // Publishing to nobody is harmless.
    notifier.publish(LoginId::new_random(), 1).await.unwrap();
}

#[tokio::test]
async fn change_notifier_contract_on_every_back_end() {
    change_notifier_contract(Arc::new(memory::LocalNotifier::default())).await;
    if let Some(redis) = redis().await {
        change_notifier_contract(Arc::new(RedisNotifier::start(redis))).await;
    }
}

/// A change published by one instance wakes the waiters of another.
#[tokio::test]
async fn redis_notifications_reach_other_instances() {
    let Some(settings) = testing::fresh_redis() else {
        return;
    };
    let open = || RedisConnection::open(&settings.url, &settings.prefix);
    let here = RedisNotifier::start(open().await.unwrap());
    let there = RedisNotifier::start(open().await.unwrap());
    let id = LoginId::new_random();
    let mut waiting = there.subscribe(id);
    waiting.borrow_and_update();
    // The subscriber connects in the background: publish until heard.
    let mut heard = false;
    for version in 2..40 {
        here.publish(id, version).await.unwrap();
        if hears(&mut waiting, version).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "the other instance heard the change");

    // A change the Redis attempt store writes is announced with it.
    let attempts = RedisAttemptStore::new(open().await.unwrap());
    let now = now_millis();
    let attempt = test_attempt(now);
    attempts.insert(attempt.clone()).await.unwrap();
    let mut waiting = there.subscribe(attempt.id);
    waiting.borrow_and_update();
    let scanner = Scanner {
        account_id: 7,
        shown_name: Some("Alice".into()),
    };
    let scanned = attempts
        .apply(
            attempt.id,
            &Transition::scan(scanner),
            now,
            &Ttls::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(scanned.announced);
    assert!(hears(&mut waiting, scanned.attempt.version).await);
}

// ---- SharedLimiter and RevocationClock ----

#[tokio::test]
async fn redis_limits_and_revocations_are_shared_by_instances() {
    let Some(settings) = testing::fresh_redis() else {
        return;
    };
    let open = || RedisConnection::open(&settings.url, &settings.prefix);
    let a = RedisLimiter::new(open().await.unwrap());
    let b = RedisLimiter::new(open().await.unwrap());
    let ten = std::num::NonZeroU32::new(10).unwrap();
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            limiter.check("sign-in", "10.0.0.1", ten).await.unwrap(),
            None
        );
    }
    let wait = b.check("sign-in", "10.0.0.1", ten).await.unwrap();
    assert!(
        wait.is_some_and(|w| w > Duration::from_millis(5_000)),
        "the 11th is refused, wherever it lands: {wait:?}"
    );
    assert_eq!(a.check("sign-in", "10.0.0.2", ten).await.unwrap(), None);
    assert_eq!(a.check("scan", "10.0.0.1", ten).await.unwrap(), None);
    // Hourly limits (open sign-ups) too.
    let five = std::num::NonZeroU32::new(5).unwrap();
    for i in 0..5 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        let allowed = limiter.check_per_hour("join", "10.0.0.1", five).await;
        assert_eq!(allowed.unwrap(), None);
    }
    let wait = a.check_per_hour("join", "10.0.0.1", five).await.unwrap();
    assert!(
        wait.is_some_and(|w| w > Duration::from_secs(60)),
        "the 6th sign-up in an hour is refused: {wait:?}"
    );

    let clock_a = RedisRevocations::new(open().await.unwrap());
    let clock_b = RedisRevocations::new(open().await.unwrap());
    let before = clock_b.current().await.unwrap();
    clock_a.advance().await.unwrap();
    assert_eq!(clock_b.current().await.unwrap(), before + 1);
}

// ---- AccountStore ----

fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

async fn account_store_contract<S: AccountStore + SessionStore>(store: Arc<S>) {
    let display = DisplayName::parse("Alice").unwrap();
    let alice = store
        .create_account(&name("alice"), &display, "hash-1", 1_000)
        .await
        .unwrap();
    assert_eq!(
        (alice.username.as_str(), alice.display_name.as_str()),
        ("alice", "Alice")
    );
    assert!(matches!(
        store.create_account(&name("alice"), &display, "x", 1).await,
        Err(StoreError::Duplicate)
    ));
    let bob = store
        .create_account(
            &name("bob"),
            &DisplayName::parse("Bob").unwrap(),
            "h",
            2_000,
        )
        .await
        .unwrap();
    assert_ne!(alice.id, bob.id);

    let (found, hash) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (alice.clone(), "hash-1"));
    assert!(store.find_account(&name("carol")).await.unwrap().is_none());
    assert!(store.set_password(&name("alice"), "hash-2").await.unwrap());
    assert!(!store.set_password(&name("carol"), "x").await.unwrap());
    let (_, hash) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert_eq!(hash, "hash-2");
    assert_eq!(
        store.account_by_id(bob.id).await.unwrap(),
        Some(bob.clone())
    );
    let names: Vec<String> = store
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // Removing an account ends its sessions.
    let token = Secret::new_random().hash();
    store
        .create_session(&token, &new_session(bob.id), 3_000)
        .await
        .unwrap();
    assert!(store
        .session_by_token(&token, 3_001)
        .await
        .unwrap()
        .is_some());
    assert!(store.remove_account(bob.id, &[]).await.unwrap());
    assert!(!store.remove_account(bob.id, &[]).await.unwrap());
    assert!(store.account_by_id(bob.id).await.unwrap().is_none());
    assert!(store
        .session_by_token(&token, 3_002)
        .await
        .unwrap()
        .is_none());

    // Subjects: unique, opaque, and a found account carries its own.
    assert_ne!(alice.subject, bob.subject);
    assert!(uuid::Uuid::try_parse(&alice.subject).is_ok());
    let (found, _) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert_eq!(found.subject, alice.subject);

    // A removed account's id and subject are never given out again, even
    // when it had the highest id (SQLite reused it without AUTOINCREMENT).
    let carol = store
        .create_account(&name("carol"), &display, "h", 4_000)
        .await
        .unwrap();
    assert!(store.remove_account(carol.id, &[]).await.unwrap());
    let bob_again = store
        .create_account(&name("bob"), &display, "h", 5_000)
        .await
        .unwrap();
    assert!(
        bob_again.id > carol.id,
        "{} reused (bob was {}, carol {})",
        bob_again.id,
        bob.id,
        carol.id
    );
    assert!(![bob.subject, carol.subject].contains(&bob_again.subject));

    // A reset sets the password and ends every session, at once.
    let token = Secret::new_random().hash();
    store
        .create_session(&token, &new_session(alice.id), 6_000)
        .await
        .unwrap();
    assert!(store.reset_account(alice.id, "hash-3").await.unwrap());
    assert!(store
        .session_by_token(&token, 6_001)
        .await
        .unwrap()
        .is_none());
    let (_, hash) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert_eq!(hash, "hash-3");
    assert!(!store.reset_account(carol.id, "x").await.unwrap());

    // The administrator flag: on and off, seen by every read (a cached
    // session's account included: never served stale).
    assert!(!alice.admin && !alice.disabled);
    let token = Secret::new_random().hash();
    store
        .create_session(&token, &new_session(alice.id), 7_000)
        .await
        .unwrap();
    assert!(!admin_in_session(&*store, &token, 7_001).await);
    assert!(store.set_admin(alice.id, true).await.unwrap());
    assert!(admin_in_session(&*store, &token, 7_002).await);
    assert!(store.account_by_id(alice.id).await.unwrap().unwrap().admin);
    let (found, _) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert!(found.admin);
    assert!(store.set_admin(alice.id, false).await.unwrap());
    assert!(!admin_in_session(&*store, &token, 7_003).await);
    assert!(!store.account_by_id(alice.id).await.unwrap().unwrap().admin);
    assert!(store.set_admin(alice.id, true).await.unwrap());
    assert!(!store.set_admin(carol.id, true).await.unwrap());

    // Disabling ends every session at once, and a session stored after it
    // (a sign-in that read the account before) does not work either; the
    // account stays, with its id, subject and flag, and lists as disabled.
    assert!(store.disable_account(alice.id, &[]).await.unwrap());
    assert!(store
        .session_by_token(&token, 7_004)
        .await
        .unwrap()
        .is_none());
    let late = Secret::new_random().hash();
    store
        .create_session(&late, &new_session(alice.id), 7_005)
        .await
        .unwrap();
    assert!(store
        .session_by_token(&late, 7_006)
        .await
        .unwrap()
        .is_none());
    let disabled = store.account_by_id(alice.id).await.unwrap().unwrap();
    assert!(disabled.disabled && disabled.admin);
    assert_eq!(
        (disabled.id, disabled.subject.as_str()),
        (alice.id, alice.subject.as_str())
    );
    let (found, _) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert!(found.disabled);
    let listed = store.list_accounts().await.unwrap();
    assert!(listed.iter().any(|a| a.id == alice.id && a.disabled));
    assert!(listed.iter().all(|a| a.id == alice.id || !a.disabled));
    assert!(!store.disable_account(carol.id, &[]).await.unwrap());

    // Enabled again: it signs in anew, but nothing ended comes back, not
    // even the session stored while it was disabled.
    assert!(store.enable_account(alice.id).await.unwrap());
    assert!(
        !store
            .account_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    for (old, at) in [(&token, 8_001), (&late, 8_002)] {
        assert!(store.session_by_token(old, at).await.unwrap().is_none());
    }
    let fresh = Secret::new_random().hash();
    store
        .create_session(&fresh, &new_session(alice.id), 8_003)
        .await
        .unwrap();
    assert!(store
        .session_by_token(&fresh, 8_004)
        .await
        .unwrap()
        .is_some());
    // Enabling an enabled account changes nothing (its sessions stay).
    assert!(store.enable_account(alice.id).await.unwrap());
    assert!(store
        .session_by_token(&fresh, 8_005)
        .await
        .unwrap()
        .is_some());
    assert!(!store.enable_account(carol.id).await.unwrap());
    let (found, hash) = store.find_account(&name("alice")).await.unwrap().unwrap();
    assert_eq!((found.subject, hash.as_str()), (alice.subject, "hash-3"));
}

/// Whether the account of the session `token` names is an administrator.
async fn admin_in_session(store: &impl SessionStore, token: &SecretHash, at: u64) -> bool {
    let (_, account) = store.session_by_token(token, at).await.unwrap().unwrap();
    account.admin
}

#[tokio::test]
async fn account_store_contract_on_every_back_end() {
    let (store, _dir) = sqlite().await;
    account_store_contract(store).await;
    let (store, _dir) = sqlite().await;
    account_store_contract(Arc::new(CachedSessions::new(store))).await;
    if let Some(store) = postgres().await {
        account_store_contract(store).await;
    }
    if let (Some(store), Some(redis)) = (postgres().await, redis().await) {
        let clock = Arc::new(RedisRevocations::new(redis));
        account_store_contract(Arc::new(CachedSessions::new(store).shared(clock))).await;
    }
}

// ---- removing an account with its records ----

/// Removing an account takes exactly the records named with it: exact keys
/// only themselves ("7" is not "70"), prefixes what they start.
async fn account_removal_contract(
    accounts: Arc<dyn AccountStore>,
    records: Arc<dyn ProviderStore>,
) {
    let display = DisplayName::parse("Dora").unwrap();
    let dora = accounts
        .create_account(&name("dora"), &display, "h", 1)
        .await
        .unwrap();
    let id = dora.id.to_string();
    let other = format!("{id}0");
    let now = now_millis();
    let later = now + 60_000;
    for (kind, key) in [
        ("settings", id.clone()),
        ("settings", other.clone()),
        ("consent", format!("{id}:app")),
        ("consent", format!("{other}:app")),
        ("note", "kept".to_owned()),
    ] {
        records.insert(kind, &key, "{}", later, now).await.unwrap();
    }
    let selectors = [
        RecordSelector {
            kind: "settings",
            key: KeyMatch::Exact(id.clone()),
        },
        RecordSelector {
            kind: "consent",
            key: KeyMatch::Prefix(format!("{id}:")),
        },
    ];
    assert!(accounts.remove_account(dora.id, &selectors).await.unwrap());
    assert!(records.get("settings", &id, now).await.unwrap().is_none());
    assert!(records
        .get("consent", &format!("{id}:app"), now)
        .await
        .unwrap()
        .is_none());
    for (kind, key) in [
        ("settings", other.clone()),
        ("consent", format!("{other}:app")),
        ("note", "kept".to_owned()),
    ] {
        assert!(
            records.get(kind, &key, now).await.unwrap().is_some(),
            "{kind} {key} kept"
        );
    }
    // No such account: nothing is removed.
    records
        .insert("settings", &id, "{}", later, now)
        .await
        .unwrap();
    assert!(!accounts.remove_account(dora.id, &selectors).await.unwrap());
    assert!(records.get("settings", &id, now).await.unwrap().is_some());

    // Disabling takes the records named with it (the grants), exactly
    // those, and keeps the account.
    let erin = accounts
        .create_account(&name("erin"), &display, "h", 2)
        .await
        .unwrap();
    let id = erin.id.to_string();
    let mine = format!("{id}:app:1");
    let theirs = format!("{id}0:app:1");
    for key in [&mine, &theirs] {
        records
            .insert("grant", key, "{}", later, now)
            .await
            .unwrap();
    }
    let grants = [RecordSelector {
        kind: "grant",
        key: KeyMatch::Prefix(format!("{id}:")),
    }];
    assert!(accounts.disable_account(erin.id, &grants).await.unwrap());
    assert!(records.get("grant", &mine, now).await.unwrap().is_none());
    assert!(records.get("grant", &theirs, now).await.unwrap().is_some());
    let kept = accounts.account_by_id(erin.id).await.unwrap().unwrap();
    assert!(kept.disabled);
}

#[tokio::test]
async fn account_removal_contract_on_every_back_end() {
    let (store, _dir) = sqlite().await;
    account_removal_contract(store.clone(), store).await;
    let (store, _dir) = sqlite().await;
    account_removal_contract(Arc::new(CachedSessions::new(store.clone())), store).await;
    if let Some(store) = postgres().await {
        account_removal_contract(store.clone(), store).await;
    }
}

// ---- SessionStore ----

fn new_session(account_id: i64) -> NewSession {
    NewSession {
        account_id,
        method: SignInMethod::Qr,
        user_agent: "test agent".into(),
        ip: "192.0.2.1".into(),
    }
}

async fn session_store_contract<S: AccountStore + SessionStore>(store: Arc<S>) {
    let alice = store
        .create_account(
            &name("alice"),
            &DisplayName::parse("Alice").unwrap(),
            "h",
            1,
        )
        .await
        .unwrap();
    let token = Secret::new_random().hash();
    let first = store
        .create_session(&token, &new_session(alice.id), 1_000)
        .await
        .unwrap();
    assert_eq!((first.created_at, first.last_seen_at), (1_000, 1_000));
    assert_eq!(
        (first.method.as_str(), first.ip.as_str()),
        ("qr", "192.0.2.1")
    );
    let (found, account) = store
        .session_by_token(&token, 2_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, account), (first.clone(), alice.clone()));
    assert!(store
        .session_by_token(&Secret::new_random().hash(), 2_000)
        .await
        .unwrap()
        .is_none());

    // Idle sessions stop working; touching keeps them alive.
    let idle_end = 1_000 + SESSION_IDLE_LIMIT_MS;
    assert!(store
        .session_by_token(&token, idle_end)
        .await
        .unwrap()
        .is_none());
    store.touch_session(&first.id, 5_000).await.unwrap();
    let (touched, _) = store
        .session_by_token(&token, idle_end)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_seen_at, 5_000);

    let second = store
        .create_session(&Secret::new_random().hash(), &new_session(alice.id), 9_000)
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_sessions(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        [second.id.clone(), first.id.clone()],
        "newest first"
    );

    // Only the owner can delete, once.
    assert!(!store.delete_session(alice.id + 1, &first.id).await.unwrap());
    assert!(store.delete_session(alice.id, &first.id).await.unwrap());
    assert!(!store.delete_session(alice.id, &first.id).await.unwrap());
    assert!(store
        .session_by_token(&token, 9_001)
        .await
        .unwrap()
        .is_none());
    // A session for an account that does not exist is refused.
    assert!(store
        .create_session(&Secret::new_random().hash(), &new_session(alice.id + 99), 1)
        .await
        .is_err());
}

#[tokio::test]
async fn session_store_contract_on_every_back_end() {
    let (store, _dir) = sqlite().await;
    session_store_contract(store).await;
    let (store, _dir) = sqlite().await;
    session_store_contract(Arc::new(CachedSessions::new(store))).await;
    if let Some(store) = postgres().await {
        session_store_contract(store).await;
    }
    if let (Some(store), Some(redis)) = (postgres().await, redis().await) {
        let clock = Arc::new(RedisRevocations::new(redis));
        session_store_contract(Arc::new(CachedSessions::new(store).shared(clock))).await;
    }
}

// ---- AuditStore ----

async fn audit_store_contract<S: AccountStore + SessionStore + AuditStore>(store: Arc<S>) {
    let alice = store
        .create_account(
            &name("alice"),
            &DisplayName::parse("Alice").unwrap(),
            "h",
            1,
        )
        .await
        .unwrap();
    let caller = Caller::new(Some([192, 0, 2, 9].into()), "Firefox");
    let login = LoginId::new_random();
    let events = [
        AuditEvent::LoginCreated,
        AuditEvent::LoginScanned,
        AuditEvent::LoginApproved,
    ];
    for (i, event) in events.into_iter().enumerate() {
        let record = AuditRecord::new(10 + i as u64, event, Some(login), Some(alice.id), &caller);
        assert!(store.append(record));
    }
    assert!(store.append(AuditRecord::new(
        20,
        AuditEvent::SignInFailed,
        None,
        None,
        &caller
    )));

    // Read back in order, whole, and by each filter.
    let all = store.events(&AuditQuery::default()).await.unwrap();
    let got: Vec<AuditEvent> = all.iter().map(|r| r.event).collect();
    assert_eq!(
        got,
        [events.as_slice(), &[AuditEvent::SignInFailed]].concat()
    );
    assert_eq!(all[0].ip, "192.0.2.9");
    assert_eq!(all[0].user_agent, "Firefox");
    assert_eq!(all[0].login_id, Some(login.to_string()));
    let of_login = AuditQuery {
        login_id: Some(login.to_string()),
        ..AuditQuery::default()
    };
    assert_eq!(store.events(&of_login).await.unwrap().len(), 3);
    let failed = AuditQuery {
        event: Some(AuditEvent::SignInFailed),
        ..AuditQuery::default()
    };
    assert_eq!(store.events(&failed).await.unwrap().len(), 1);
    let limited = AuditQuery {
        limit: Some(2),
        ..AuditQuery::default()
    };
    assert_eq!(store.events(&limited).await.unwrap().len(), 2);
    audit_filters_and_pages(store.as_ref(), alice.id).await;

    // Sign-ins: newest first, with the session while it works.
    let token = Secret::new_random().hash();
    let session = store
        .create_session(&token, &new_session(alice.id), 30)
        .await
        .unwrap();
    for (at, session_id) in [(30, Some(session.id.clone())), (40, None)] {
        let mut record = AuditRecord::new(at, AuditEvent::SignedIn, None, Some(alice.id), &caller);
        record.session_id = session_id;
        store.append(record);
    }
    store.flush().await.unwrap();
    let recent = store.recent_sign_ins(alice.id, 10).await.unwrap();
    let at: Vec<u64> = recent.iter().map(|r| r.at).collect();
    assert_eq!(at, [40, 30]);
    assert_eq!(recent[1].active_session, Some(session.id.clone()));
    assert_eq!(store.recent_sign_ins(alice.id, 1).await.unwrap().len(), 1);
    store.delete_session(alice.id, &session.id).await.unwrap();
    let recent = store.recent_sign_ins(alice.id, 10).await.unwrap();
    assert_eq!(recent[1].active_session, None, "revoked");

    // The history's "seen" mark returns the previous one.
    assert_eq!(store.mark_sign_ins_seen(alice.id, 100).await.unwrap(), 0);
    assert_eq!(store.mark_sign_ins_seen(alice.id, 200).await.unwrap(), 100);
}

/// The admin's filters (app, address, time range, actor kept), newest
/// first with offset and limit, and the count that ignores the page. The
/// store holds the four rows of [`audit_store_contract`] (at 10 to 20).
async fn audit_filters_and_pages<S: AuditStore + ?Sized>(store: &S, alice: i64) {
    let phone = Caller::new(Some([198, 51, 100, 7].into()), "Phone").acting_as("admin:root");
    for at in [50, 60, 70] {
        let mut record = AuditRecord::new(at, AuditEvent::AppAdded, None, None, &phone);
        record.client_id = Some(format!("app{at}"));
        assert!(store.append(record));
    }
    let ids = |rows: Vec<AuditRecord>| rows.iter().map(|r| r.at).collect::<Vec<_>>();
    let query = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    let newest = query(|q| q.newest_first = true);
    assert_eq!(
        ids(store.events(&newest).await.unwrap()),
        [70, 60, 50, 20, 12, 11, 10]
    );
    let all = store.events(&newest).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids increase");
    assert_eq!(all[0].actor.as_deref(), Some("admin:root"));
    assert_eq!(all[6].actor, None);
    let page = query(|q| {
        q.newest_first = true;
        q.offset = Some(2);
        q.limit = Some(3);
    });
    assert_eq!(ids(store.events(&page).await.unwrap()), [50, 20, 12]);
    assert_eq!(
        store.count_events(&page).await.unwrap(),
        7,
        "the page aside"
    );
    let by_app = query(|q| q.client_id = Some("app60".into()));
    assert_eq!(ids(store.events(&by_app).await.unwrap()), [60]);
    assert_eq!(store.count_events(&by_app).await.unwrap(), 1);
    let by_ip = query(|q| q.ip = Some("198.51.100.7".into()));
    assert_eq!(ids(store.events(&by_ip).await.unwrap()), [50, 60, 70]);
    let in_range = query(|q| {
        q.from = Some(11);
        q.to = Some(50);
    });
    assert_eq!(
        ids(store.events(&in_range).await.unwrap()),
        [11, 12, 20, 50]
    );
    assert_eq!(store.count_events(&in_range).await.unwrap(), 4);
    let mut of_alice = query(|q| q.event = Some(AuditEvent::LoginScanned));
    of_alice.account_id = Some(alice);
    assert_eq!(ids(store.events(&of_alice).await.unwrap()), [11]);
    let none = query(|q| q.ip = Some("198.51.100".into()));
    assert_eq!(
        store.count_events(&none).await.unwrap(),
        0,
        "exact, no prefix"
    );
}

#[tokio::test]
async fn audit_store_contract_on_every_back_end() {
    let (store, _dir) = sqlite().await;
    audit_store_contract(store).await;
    if let Some(store) = postgres().await {
        audit_store_contract(store).await;
    }
}

// ---- ProviderStore ----

async fn provider_store_contract(store: Arc<dyn ProviderStore>) {
    let now = now_millis();
    let later = now + 60_000;
    store.insert("code", "a:1", "{}", later, now).await.unwrap();
    assert!(matches!(
        store.insert("code", "a:1", "{}", later, now).await,
        Err(StoreError::Duplicate)
    ));
    // Kinds are separate name spaces.
    store
        .insert("token", "a:1", "[]", later, now)
        .await
        .unwrap();
    let record = store.get("code", "a:1", now).await.unwrap().unwrap();
    assert_eq!((record.value.as_str(), record.version), ("{}", 1));

    // Compare-and-set: of two writers at version 1, one wins.
    assert!(store
        .replace("code", "a:1", 1, "{\"used\":true}", later, now)
        .await
        .unwrap());
    assert!(!store
        .replace("code", "a:1", 1, "{\"used\":2}", later, now)
        .await
        .unwrap());
    let record = store.get("code", "a:1", now).await.unwrap().unwrap();
    assert_eq!(
        (record.value.as_str(), record.version),
        ("{\"used\":true}", 2)
    );

    // A record past its time is gone for reads and writes, and its key free.
    store
        .insert("code", "a:2", "{}", now + 1, now)
        .await
        .unwrap();
    assert!(store.get("code", "a:2", now + 1).await.unwrap().is_none());
    assert!(!store
        .replace("code", "a:2", 1, "{}", later, now + 1)
        .await
        .unwrap());
    store
        .insert("code", "a:2", "new", later, now + 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .get("code", "a:2", now + 1)
            .await
            .unwrap()
            .unwrap()
            .value,
        "new"
    );

    // Listing and removing by key prefix (a `%` or `_` is not a wildcard).
    store.insert("code", "b:1", "{}", later, now).await.unwrap();
    store.insert("code", "a%", "{}", later, now).await.unwrap();
    let keys = |list: Vec<(String, _)>| list.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("code", "a:", now).await.unwrap()),
        ["a:1", "a:2"]
    );
    assert_eq!(
        keys(store.list("code", "a_", now).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(store.remove("code", "a:").await.unwrap(), 2);
    assert!(store.get("code", "a:1", now).await.unwrap().is_none());
    assert!(store.get("token", "a:1", now).await.unwrap().is_some());
    assert_eq!(
        keys(store.list("code", "", now).await.unwrap()),
        ["a%", "b:1"]
    );
    // Exact removal: one key, never the keys it is a prefix of.
    store.insert("code", "7", "{}", later, now).await.unwrap();
    store.insert("code", "70", "{}", later, now).await.unwrap();
    assert!(store.remove_key("code", "7").await.unwrap());
    assert!(!store.remove_key("code", "7").await.unwrap());
    assert!(store.get("code", "70", now).await.unwrap().is_some());
    assert!(store.remove_key("code", "70").await.unwrap());

    store.insert("code", "c", "{}", now + 5, now).await.unwrap();
    assert_eq!(store.purge(now + 5).await.unwrap(), 1);
}

#[tokio::test]
async fn provider_store_contract_on_every_back_end() {
    let (store, _dir) = sqlite().await;
    provider_store_contract(store).await;
    if let Some(store) = postgres().await {
        provider_store_contract(store).await;
    }
}
