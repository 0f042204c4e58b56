//! The `qrlogin` command: `serve` (the default),
//! `user add|list|remove|reset|admin|disable|enable|invite|invites|uninvite`,
//! `client`, `token`, `keys` and `device-login`.

use std::{
    io::{IsTerminal, Read},
    process::ExitCode,
    time::Duration,
};

use crate::{
    config::{
        Cli, ClientAction, ClientArgs, Command, KeysAction, KeysArgs, LogFormat, ServeArgs,
        Settings, StoreArgs, TokenAction, TokenArgs, UserAction, UserArgs,
    },
    domain::{
        caller::Caller,
        secret::Secret,
        time::{now_millis, rfc3339},
    },
    http::{router, AppState},
    services::{
        admin::{self, AdminActor, NewApp, PasskeySelection, TokenScope},
        invites::{InviteKind, NewInvite, MAX_VALID_HOURS},
        Services,
    },
    storage,
};
use axum::serve::ListenerExt;
use clap::Parser;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

type BoxError = Box<dyn std::error::Error>;

/// Logs go to stdout through a background writer, so a slow terminal or
/// pipe never stalls a request. Keep the guard: dropping it flushes.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("QRLOGIN_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(writer),
            )
            .init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(writer))
            .init(),
    }
    guard
}

/// Runs the command line's command.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::User(args)) => manage_users(args).await,
        Some(Command::Client(args)) => manage_clients(args).await,
        Some(Command::Token(args)) => manage_tokens(args).await,
        Some(Command::Keys(args)) => manage_keys(args).await,
        Some(Command::DeviceLogin(args)) => crate::device_login::run(args).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qrlogin: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let settings = Settings::resolve(&args)?;
    let _log_writer = init_tracing(settings.log_format);

    if let Some(addr) = settings.metrics_addr {
        let handle = crate::http::metrics::install()?;
        tokio::spawn(async move {
            if let Err(err) = crate::http::metrics::serve(addr, handle, shutdown_signal()).await {
                tracing::error!(error = %err, "metrics are not served");
            }
        });
    }
    let state = AppState::open(&settings).await?;
    state.services.oidc.keys().ensure().await?;
    if args.demo {
        let password = ensure_demo_account(&state.services).await?;
        println!();
        println!("  Demo account  username: demo   password: {password}");
        println!("  Sign in on a phone at {}/m", settings.public_url.as_str());
        println!(
            "  and scan the code at  {}/login",
            settings.public_url.as_str()
        );
        println!();
    }
    print_setup_link(&state.services, &settings).await;
    tokio::spawn(
        state
            .services
            .clone()
            .purge_forever(Duration::from_secs(30)),
    );
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?
        // Answers go out at once: with Nagle's algorithm an HTTP/2 answer
        // written in several frames waited ~40 ms for the client's delayed ACK.
        .tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
    tracing::info!(
        addr = %settings.addr,
        public_url = settings.public_url.as_str(),
        database = %settings.database,
        "qrlogin listening; open {}/login",
        settings.public_url.as_str()
    );
    axum::serve(
        listener,
        router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    // The last requests' audit rows are still queued for the writer.
    state.services.audit.flush().await;
    tracing::info!("qrlogin stopped");
    Ok(())
}

/// While no enabled administrator can sign in, prints a one-time setup
/// link (24 h; older ones revoked) that enrolls one, once and prominently,
/// and logs it (a line a test or an operator's log reader finds). A
/// failure is logged: the server still serves.
async fn print_setup_link(services: &Services, settings: &Settings) {
    let caller = Caller::new(None, "qrlogin serve (setup link)");
    let link = match services.setup_link(&settings.setup_admin, &caller).await {
        Ok(Some(link)) => link,
        Ok(None) => return,
        Err(err) => {
            tracing::error!(error = %err, "no setup link: no administrator can sign in");
            return;
        }
    };
    if link.revoked > 0 {
        tracing::info!(
            revoked = link.revoked,
            "the previous setup link was revoked: only the new one works"
        );
    }
    let made = &link.made;
    let url = format!(
        "{}/invite/{}",
        settings.public_url.as_str(),
        made.token.encode()
    );
    println!();
    println!("  No administrator can sign in yet. Open this one-time setup link on your");
    println!(
        "  phone to enroll the administrator {:?} (valid until {}):",
        made.account.username,
        rfc3339(made.invite.expires_at)
    );
    println!("  {url}");
    println!();
    tracing::info!(
        account = %made.account.username,
        expires = %rfc3339(made.invite.expires_at),
        "setup link: {url}"
    );
    services.audit.flush().await;
}

/// Creates the `demo` account, or gives it a new password, and makes it an
/// administrator (someone trying qrlogin out tries everything); returns
/// the password.
async fn ensure_demo_account(services: &Services) -> Result<String, BoxError> {
    let accounts = &services.accounts;
    // 20 characters of the random token: ~120 bits, easy to copy.
    let password: String = Secret::new_random().encode().chars().take(20).collect();
    let account = if accounts.set_password("demo", &password).await? {
        accounts.account_named("demo").await?
    } else {
        accounts
            .add_account("demo", Some("Demo User"), &password, now_millis())
            .await?
    };
    // Only when it is not yet: no audit row at every start.
    if !account.admin {
        services
            .set_admin("demo", true, &Caller::new(None, "qrlogin serve --demo"))
            .await?;
    }
    Ok(password)
}

/// `qrlogin user …`: account management, through the same services and
/// stores as the server.
async fn manage_users(args: UserArgs) -> Result<(), BoxError> {
    // An invite's link starts with the public URL; other commands need none.
    let public_url = match &args.action {
        UserAction::Invite { public_url, .. } | UserAction::Reset { public_url, .. } => {
            public_url.clone()
        }
        _ => None,
    };
    let services = open_services_at(args.stores, public_url).await?;
    let accounts = &services.accounts;
    match args.action {
        UserAction::Add {
            username,
            display_name,
            admin,
        } => {
            let password = read_new_password()?;
            let account = accounts
                .add_account(&username, display_name.as_deref(), &password, now_millis())
                .await?;
            if admin {
                services
                    .set_admin(&account.username, true, &operator())
                    .await?;
            }
            let role = if admin { ", administrator" } else { "" };
            println!(
                "added {} ({}){role}",
                account.username, account.display_name
            );
        }
        UserAction::List => {
            for account in accounts.list_accounts().await? {
                // The third column only where there is something to say:
                // a plain account's line reads as it always did.
                let flags: Vec<&str> = [(account.admin, "admin"), (account.disabled, "disabled")]
                    .into_iter()
                    .filter_map(|(set, flag)| set.then_some(flag))
                    .collect();
                if flags.is_empty() {
                    println!("{}\t{}", account.username, account.display_name);
                } else {
                    println!(
                        "{}\t{}\t{}",
                        account.username,
                        account.display_name,
                        flags.join(",")
                    );
                }
            }
        }
        UserAction::Remove { username } => {
            let account = services.remove_account(&username, &operator()).await?;
            println!("removed {}", account.username);
        }
        UserAction::Reset {
            username,
            invite: true,
            passkeys,
            valid_hours,
            public_url: _,
        } => {
            let selection = if passkeys.is_empty() {
                PasskeySelection::All
            } else {
                PasskeySelection::Only(passkeys)
            };
            let made = services
                .reset_account_for_lost_phone(
                    &AdminActor::operator(&operator()),
                    &username,
                    selection,
                    Some(valid_hours),
                )
                .await?;
            println!(
                "reset {}: every session and app grant ended, passkeys removed",
                made.account.username
            );
            print_invite(&services, &made, &username);
        }
        UserAction::Reset { username, .. } => {
            let (account, password) = services.reset_account(&username, &operator()).await?;
            println!("reset {}: every session ended", account.username);
            println!("new password: {password}");
            println!("(shown this once; its passkeys were kept: remove lost ones on /m)");
        }
        UserAction::Admin { username, state } => {
            let account = services
                .set_admin(&username, state.is_on(), &operator())
                .await?;
            let not = if state.is_on() { "" } else { "not " };
            println!("{} is {not}an administrator", account.username);
        }
        UserAction::Disable { username } => {
            let account = services.disable_account(&username, &operator()).await?;
            println!(
                "disabled {}: every session ended, every application signed out",
                account.username
            );
        }
        UserAction::Enable { username } => {
            let account = services.enable_account(&username, &operator()).await?;
            println!("enabled {}: it can sign in again", account.username);
        }
        UserAction::Invite {
            username,
            display_name,
            valid_hours,
            reset,
            public_url: _,
        } => {
            invite(
                &services,
                &username,
                display_name.as_deref(),
                valid_hours,
                reset,
            )
            .await?;
        }
        UserAction::Invites => {
            for live in services.invites().await? {
                println!(
                    "{}\t{}\texpires {}",
                    live.username,
                    live.invite.kind.as_str(),
                    rfc3339(live.invite.expires_at)
                );
            }
        }
        UserAction::Uninvite { username } => {
            let revoked = services.uninvite(&username, &operator()).await?;
            println!("revoked {revoked} invite(s) of {username}");
        }
    }
    services.audit.flush().await;
    Ok(())
}

/// `qrlogin user invite`: makes the invite and prints its link (once: only
/// its hash is kept) and the link's QR, for a phone to scan off the screen.
async fn invite(
    services: &Services,
    username: &str,
    display_name: Option<&str>,
    valid_hours: u64,
    reset: bool,
) -> Result<(), BoxError> {
    if valid_hours == 0 || valid_hours > MAX_VALID_HOURS {
        return Err(format!("--valid-hours must be 1 to {MAX_VALID_HOURS}").into());
    }
    let kind = if reset {
        InviteKind::Reset
    } else {
        InviteKind::Enroll
    };
    let made = services
        .invite(
            username,
            display_name,
            kind,
            valid_hours * 3_600_000,
            &operator(),
        )
        .await?;
    if made.created_account {
        println!(
            "added {} ({}): no way in until the invite is used",
            made.account.username, made.account.display_name
        );
    }
    print_invite(services, &made, username);
    Ok(())
}

/// Prints an invite's link (once: only its hash is kept) and its QR, for a
/// phone to scan off the screen.
fn print_invite(services: &Services, made: &NewInvite, username: &str) {
    // The issuer is the public URL (without a trailing slash).
    let link = format!("{}/invite/{}", services.oidc.issuer(), made.token.encode());
    println!(
        "{} invite for {}, valid until {}:",
        made.invite.kind.as_str(),
        made.account.username,
        rfc3339(made.invite.expires_at)
    );
    println!("{link}");
    // Light modules on the terminal's dark ground read as a normal code.
    if let Ok(code) = qrcode::QrCode::new(link.as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{art}");
    }
    println!(
        "(shown this once; only its hash is kept; `qrlogin user uninvite {username}` revokes it)"
    );
}

/// Who the audit trail says acted: the operator, at the server.
fn operator() -> Caller {
    Caller::new(None, "qrlogin (operator command)").acting_as("operator")
}

/// The services over the stores an admin command names.
async fn open_services(args: StoreArgs) -> Result<Services, BoxError> {
    open_services_at(args, None).await
}

/// [`open_services`], with the public URL given on the command line.
async fn open_services_at(
    args: StoreArgs,
    public_url: Option<String>,
) -> Result<Services, BoxError> {
    let settings = Settings::resolve(&ServeArgs {
        public_url,
        database: args.database,
        redis: args.redis,
        redis_prefix: args.redis_prefix,
        config: args.config,
        ..ServeArgs::default()
    })?;
    let stores = storage::open(&settings.database, settings.redis.as_ref()).await?;
    Ok(Services::new(
        stores,
        settings.ttls,
        settings.limits,
        settings.public_url.as_str(),
        settings.approvals,
    ))
}

/// `qrlogin client …`.
async fn manage_clients(args: ClientArgs) -> Result<(), BoxError> {
    let services = open_services(args.stores).await?;
    let oidc = &services.oidc;
    match args.action {
        ClientAction::Add {
            name,
            redirect_uris,
            post_logout_uris,
            backchannel_logout_uri,
            public,
            json,
        } => {
            let added = services
                .add_app(
                    &AdminActor::operator(&operator()),
                    NewApp {
                        name,
                        redirect_uris,
                        post_logout_uris,
                        backchannel_logout_uri,
                        public,
                    },
                )
                .await?;
            let added = crate::services::oidc::NewClient {
                client_id: added.app.client_id,
                client_secret: added.secret,
            };
            if json {
                println!("{}", serde_json::to_string(&added)?);
            } else {
                println!("client_id:     {}", added.client_id);
                match &added.client_secret {
                    Some(secret) => {
                        println!("client_secret: {secret}");
                        println!("(the secret is shown this once; only its hash is kept)");
                    }
                    None => println!("public client: no secret; PKCE (S256) is required"),
                }
            }
        }
        ClientAction::List { json } => {
            let clients = oidc.clients().await?;
            if json {
                let list: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.id, "name": c.name,
                            "redirect_uris": c.redirect_uris, "public": c.is_public(),
                            "post_logout_uris": c.logout_uris(),
                            "backchannel_logout_uri": c.backchannel_logout_uri,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                for c in clients {
                    let kind = if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    };
                    println!(
                        "{}\t{}\t{kind}\t{}",
                        c.id,
                        c.name,
                        c.redirect_uris.join(" ")
                    );
                }
            }
        }
        ClientAction::Remove { client_id } => {
            services
                .remove_app(&AdminActor::operator(&operator()), &client_id)
                .await?;
            println!("removed {client_id}");
        }
    }
    services.audit.flush().await;
    Ok(())
}

/// `qrlogin token …`: admin API tokens.
async fn manage_tokens(args: TokenArgs) -> Result<(), BoxError> {
    let services = open_services(args.stores).await?;
    match args.action {
        TokenAction::Add {
            name,
            scope,
            valid_days,
        } => {
            let scope = TokenScope::parse(&scope).ok_or("--scope is read or write")?;
            let (view, secret) = services
                .add_admin_token(&operator(), &name, scope, valid_days)
                .await?;
            println!(
                "token {} ({}, {}), valid until {}:",
                view.id,
                view.name,
                view.scope.as_str(),
                rfc3339(view.expires_at)
            );
            println!("{}", admin::token_text(&secret));
            println!(
                "(shown this once; only its hash is kept; send it as `Authorization: Bearer …`; \
                 `qrlogin token revoke {}` revokes it)",
                view.id
            );
        }
        TokenAction::List { json } => {
            let tokens = services.admin_tokens().await?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                for t in tokens {
                    println!(
                        "{}\t{}\t{}\texpires {}\tby {}",
                        t.id,
                        t.name,
                        t.scope.as_str(),
                        rfc3339(t.expires_at),
                        t.created_by
                    );
                }
            }
        }
        TokenAction::Revoke { id } => {
            services.revoke_admin_token(&operator(), &id).await?;
            println!("revoked {id}");
        }
    }
    services.audit.flush().await;
    Ok(())
}

/// `qrlogin keys rotate`.
async fn manage_keys(args: KeysArgs) -> Result<(), BoxError> {
    let services = open_services(args.stores).await?;
    match args.action {
        KeysAction::Rotate => {
            let kid = services.oidc.keys().rotate().await?;
            println!(
                "new signing key {kid}; the previous one stays published until its tokens expire"
            );
        }
    }
    Ok(())
}

/// The new password: prompted twice on a terminal, else the first line of stdin.
fn read_new_password() -> Result<String, BoxError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            return Err("the passwords differ".into());
        }
        Ok(first)
    } else {
        let mut input = String::new();
        std::io::stdin().take(4096).read_to_string(&mut input)?;
        Ok(input.lines().next().unwrap_or_default().to_owned())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
