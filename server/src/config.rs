//! Settings: command-line flags, then `QRLOGIN_*` environment variables, then
//! an optional TOML file, then defaults that work on a laptop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use url::Url;

use crate::{
    domain::{
        attempt::Ttls,
        passkey::{ApprovalPolicy, ApproveWith},
    },
    services::{
        invites::Registration,
        limits::{
            default_password_hashes, LimitSettings, DEFAULT_IPV6_PREFIX, MAX_PASSWORD_HASHES,
        },
    },
    storage::{DatabaseUrl, RedisSettings, UnsupportedDatabaseUrl, DEFAULT_REDIS_PREFIX},
};

#[derive(Debug, Parser)]
#[command(
    name = "qrlogin",
    version,
    about = "Sign in on a desktop browser by scanning a QR code with a signed-in phone.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for `serve`, which is also what runs with no subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve(Box<ServeArgs>),
    /// Manage accounts in the database.
    User(UserArgs),
    /// Manage the OpenID Connect clients (relying parties).
    Client(ClientArgs),
    /// Manage admin API tokens (`Authorization: Bearer qra_…` for
    /// `/api/v1/admin/…`).
    Token(TokenArgs),
    /// Manage the OpenID Connect signing keys.
    Keys(KeysArgs),
    /// Sign this terminal in through a qrlogin server's device flow
    /// (RFC 8628), as a TV or a CLI would: shows a QR to scan with a phone.
    DeviceLogin(DeviceLoginArgs),
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(subcommand)]
    pub action: ClientAction,
}

#[derive(Debug, Subcommand)]
pub enum ClientAction {
    /// Register a relying party; prints its client id and, for a
    /// confidential client, its secret (shown this once, stored hashed).
    Add {
        /// The name people see on the sign-in pages and on their phone
        name: String,
        /// An exact redirect URI (repeat for several): https://…, or
        /// http:// on localhost, 127.0.0.1 or [::1]
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return to (repeat for several)
        /// [default: the redirect URIs]
        #[arg(long = "post-logout-uri", value_name = "URI")]
        post_logout_uris: Vec<String>,
        /// Where qrlogin POSTs a signed logout token when a person's session
        /// with the app ends (OpenID Connect Back-Channel Logout 1.0)
        #[arg(long = "backchannel-logout-uri", value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// A public client (a SPA or a native app): no secret, PKCE required
        #[arg(long)]
        public: bool,
        /// Print {"client_id": …, "client_secret": …} for scripts
        #[arg(long)]
        json: bool,
    },
    /// List the registered clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client, and revoke everything it was granted.
    Remove { client_id: String },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make an admin API token: printed this once (`qra_…`), only its hash
    /// is kept; it stops at its expiry or when revoked.
    Add {
        /// What the token is for (shown in lists and the audit trail)
        name: String,
        /// `read` (GET only) or `write`
        #[arg(long, default_value = "read", value_parser = ["read", "write"])]
        scope: String,
        /// How long it works, in days (at most 365)
        #[arg(long, default_value_t = crate::services::admin::DEFAULT_TOKEN_DAYS)]
        valid_days: u64,
    },
    /// List live tokens: id, name, scope, expiry (never the token).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Add a new signing key and sign with it from now on; the old key
    /// stays published until the ID tokens it signed have expired.
    Rotate,
}

#[derive(Debug, Args)]
pub struct DeviceLoginArgs {
    /// The qrlogin server's issuer URL (its public URL)
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// This device's client id (`qrlogin client add … --public`)
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// The client secret, for a confidential client
    #[arg(long, env = "QRLOGIN_CLIENT_SECRET", value_name = "SECRET")]
    pub client_secret: Option<String>,
    /// The scopes to ask for
    #[arg(long, default_value = "openid profile")]
    pub scope: String,
}

/// Where the admin commands find the stores.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Database for accounts, sessions and the audit trail: sqlite://PATH
    /// (or a plain file path) or postgres://USER@HOST/DB
    /// [default: sqlite://data/qrlogin.db]
    #[arg(long, env = "QRLOGIN_DATABASE", value_name = "URL", global = true)]
    pub database: Option<String>,
    /// Redis the servers share, so that a removed account's sessions end on
    /// every instance at once
    #[arg(long, env = "QRLOGIN_REDIS", value_name = "URL", global = true)]
    pub redis: Option<String>,
    /// Starts every Redis key [default: qrlogin:]
    #[arg(
        long,
        env = "QRLOGIN_REDIS_PREFIX",
        value_name = "PREFIX",
        global = true
    )]
    pub redis_prefix: Option<String>,
    /// Optional TOML settings file (only `database`, `redis` and, for
    /// invites, `public_url` are used here).
    #[arg(long, env = "QRLOGIN_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account. The password is read from standard input when it
    /// is not a terminal, and asked for (twice) when it is.
    Add {
        username: String,
        /// Name shown to others [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// Make the account an administrator
        #[arg(long)]
        admin: bool,
    },
    /// List accounts: username, display name, and `admin` / `disabled`
    /// (comma-separated, in a third column) where they apply.
    List,
    /// Remove an account and everything it holds: its sessions, passkeys,
    /// settings, and every application's consent, code and token. Its id
    /// and OpenID Connect subject are never given to another account.
    Remove { username: String },
    /// Let a locked-out (or compromised) account back in: end all its
    /// sessions, give it a new random password (printed once) and turn
    /// password sign-in back on. Its passkeys stay: once signed in, the
    /// person (or you, with them) can remove any that are lost or stolen.
    /// With --invite (a lost phone): end all its sessions and app grants,
    /// remove its passkeys (all, or those named by --passkey) and print a
    /// reset invite instead of a password.
    Reset {
        username: String,
        /// Print a one-time reset invite (link and QR) instead of a password
        #[arg(long)]
        invite: bool,
        /// With --invite: remove only this passkey (its id, as the admin
        /// console or API lists it); repeat for several [default: all]
        #[arg(long = "passkey", value_name = "ID", requires = "invite")]
        passkeys: Vec<String>,
        /// With --invite: how long the link works, in hours (at most 744)
        #[arg(long, default_value_t = crate::services::invites::DEFAULT_VALID_HOURS)]
        valid_hours: u64,
        /// With --invite: the servers' public URL, which the link starts
        /// with [default: the settings file's, else http://127.0.0.1:3000]
        #[arg(long, env = "QRLOGIN_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// Make an account an administrator (`on`) or not (`off`).
    Admin {
        username: String,
        /// `on` or `off`
        state: Switch,
    },
    /// Disable an account: end all its sessions and sign it out of every
    /// application (its grants are revoked) at once; password and passkey
    /// sign-in, approvals and tokens are refused until it is enabled. The
    /// account, its passkeys and its OpenID Connect subject are kept.
    Disable { username: String },
    /// Enable a disabled account: it can sign in again (its ended sessions
    /// stay ended).
    Enable { username: String },
    /// Invite someone: print a one-time link (and its QR) that sets up the
    /// account with a passkey (or a password where passkeys are off). The
    /// account is made if it does not exist, with no way in until the link
    /// is used. Only the link's hash is kept; it is shown this once.
    Invite {
        username: String,
        /// Name shown to others, for a new account [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// How long the link works, in hours (at most 744)
        #[arg(long, default_value_t = crate::services::invites::DEFAULT_VALID_HOURS)]
        valid_hours: u64,
        /// For an account that can already sign in (a lost phone): the
        /// link adds a passkey; its other passkeys stay
        #[arg(long)]
        reset: bool,
        /// The servers' public URL, which the link starts with (and which
        /// decides passkey or password) [default: the settings file's,
        /// else http://127.0.0.1:3000]
        #[arg(long, env = "QRLOGIN_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// List live invites: account, kind and expiry (never the link).
    Invites,
    /// Revoke an account's live invites.
    Uninvite { username: String },
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3000]
    #[arg(long, env = "QRLOGIN_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Base URL that phones reach this server on; the QR code encodes
    /// `{public_url}/q/{id}` [default: http://127.0.0.1:3000]
    #[arg(long, env = "QRLOGIN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Database for accounts, sessions and the audit trail: sqlite://PATH
    /// (or a plain file path), or postgres://USER@HOST/DB for several
    /// instances [default: sqlite://data/qrlogin.db]
    #[arg(long, env = "QRLOGIN_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// Redis for pending logins, their notifications and the rate limits,
    /// shared by several instances: redis://HOST:PORT or redis+unix:///PATH
    /// [default: none; kept in this process]
    #[arg(long, env = "QRLOGIN_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Address to serve Prometheus metrics on (`/metrics`), apart from the
    /// public one [default: none: metrics off]
    #[arg(long, env = "QRLOGIN_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Starts every Redis key and channel, so that deployments sharing one
    /// Redis stay apart [default: qrlogin:]
    #[arg(long, env = "QRLOGIN_REDIS_PREFIX", value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
    /// Optional TOML file with any of these settings (keys as the long flags,
    /// with `_` for `-`); flags and environment variables win over it.
    #[arg(long, env = "QRLOGIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder with the built front-end (`pkg/`, favicon) [default: target/site]
    #[arg(long, env = "QRLOGIN_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<PathBuf>,
    /// Ensure a `demo` account exists with a fresh random password, as an
    /// administrator, and print both at start-up (for trying qrlogin out;
    /// off by default)
    #[arg(long, env = "QRLOGIN_DEMO")]
    pub demo: bool,
    /// Log format [default: human]
    #[arg(long, env = "QRLOGIN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Who makes accounts: `invite` (an administrator invites) or `open`
    /// (anyone, on the phone at /join, a few per hour per address)
    /// [default: invite]
    #[arg(long, env = "QRLOGIN_REGISTRATION", value_name = "invite|open")]
    pub registration: Option<Registration>,
    /// The administrator account a setup link enrolls, printed at start
    /// while no administrator can sign in (made if missing) [default: admin]
    #[arg(long, env = "QRLOGIN_SETUP_ADMIN", value_name = "NAME")]
    pub setup_admin: Option<String>,
    /// Sign-ins per minute per client address and per username; 0 = off [default: 10]
    #[arg(long, env = "QRLOGIN_LIMIT_SIGN_IN", value_name = "N")]
    pub limit_sign_in: Option<u32>,
    /// New login attempts per minute per client address; 0 = off [default: 60]
    #[arg(long, env = "QRLOGIN_LIMIT_CREATE", value_name = "N")]
    pub limit_create: Option<u32>,
    /// Status reads and long polls per minute per client address; 0 = off [default: 600]
    #[arg(long, env = "QRLOGIN_LIMIT_POLL", value_name = "N")]
    pub limit_poll: Option<u32>,
    /// Scans per minute per client address and per account; 0 = off [default: 30]
    #[arg(long, env = "QRLOGIN_LIMIT_SCAN", value_name = "N")]
    pub limit_scan: Option<u32>,
    /// Approvals and denials per minute per client address and per account; 0 = off [default: 30]
    #[arg(long, env = "QRLOGIN_LIMIT_DECIDE", value_name = "N")]
    pub limit_decide: Option<u32>,
    /// Device-flow user codes looked up per minute per client address and
    /// per account; 0 = off [default: 10]
    #[arg(long, env = "QRLOGIN_LIMIT_USER_CODE", value_name = "N")]
    pub limit_user_code: Option<u32>,
    /// OpenID Connect token, device-authorization and revocation requests
    /// per minute per client address; 0 = off [default: 300]
    #[arg(long, env = "QRLOGIN_LIMIT_TOKEN", value_name = "N")]
    pub limit_token: Option<u32>,
    /// How many leading bits of an IPv6 address count as one client in the
    /// per-address limits (a customer usually holds a whole /64), 1-128;
    /// IPv4 addresses count one by one [default: 64]
    #[arg(long, env = "QRLOGIN_IPV6_LIMIT_PREFIX", value_name = "BITS")]
    pub ipv6_limit_prefix: Option<u8>,
    /// Password hashes (argon2id: ≈20 ms of CPU and 19 MiB each) sign-ins
    /// may run at once; a sign-in that finds none free within a second is
    /// refused with 429 [default: twice the CPUs]
    #[arg(long, env = "QRLOGIN_PASSWORD_HASHES", value_name = "N")]
    pub password_hashes: Option<usize>,
    /// Addresses of reverse proxies whose X-Forwarded-For / Forwarded headers
    /// name the real client (comma-separated); none are trusted by default
    #[arg(
        long,
        env = "QRLOGIN_TRUSTED_PROXIES",
        value_name = "IP,...",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// What approving a sign-in on the phone needs: `session` (the signed-in
    /// phone) or `passkey` (a passkey assertion that signs what the phone
    /// showed); an account may ask for its passkey anyway [default: session]
    #[arg(long, env = "QRLOGIN_APPROVE_WITH", value_name = "session|passkey")]
    pub approve_with: Option<ApproveWith>,
    /// Require a passkey to approve a sign-in whose computer is not on the
    /// phone's network (a relayed code)
    #[arg(long, env = "QRLOGIN_REQUIRE_PASSKEY_OFF_NETWORK")]
    pub require_passkey_off_network: bool,
    /// Seconds a new code stays valid before it is scanned [default: 60]
    #[arg(long, env = "QRLOGIN_PENDING_TTL", value_name = "SECONDS")]
    pub pending_ttl: Option<u64>,
    /// Seconds the phone has to approve after scanning [default: 90]
    #[arg(long, env = "QRLOGIN_SCANNED_TTL", value_name = "SECONDS")]
    pub scanned_ttl: Option<u64>,
    /// Seconds the desktop has to redeem an approval [default: 30]
    #[arg(long, env = "QRLOGIN_APPROVED_TTL", value_name = "SECONDS")]
    pub approved_ttl: Option<u64>,
}

/// The same settings as they may appear in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    addr: Option<SocketAddr>,
    public_url: Option<String>,
    database: Option<String>,
    redis: Option<String>,
    redis_prefix: Option<String>,
    metrics_addr: Option<SocketAddr>,
    site_root: Option<PathBuf>,
    log_format: Option<LogFormat>,
    registration: Option<Registration>,
    setup_admin: Option<String>,
    pending_ttl: Option<u64>,
    scanned_ttl: Option<u64>,
    approved_ttl: Option<u64>,
    limit_sign_in: Option<u32>,
    limit_create: Option<u32>,
    limit_poll: Option<u32>,
    limit_scan: Option<u32>,
    limit_decide: Option<u32>,
    limit_user_code: Option<u32>,
    limit_token: Option<u32>,
    ipv6_limit_prefix: Option<u8>,
    password_hashes: Option<usize>,
    trusted_proxies: Option<Vec<std::net::IpAddr>>,
    approve_with: Option<ApproveWith>,
    require_passkey_off_network: Option<bool>,
}

/// The resolved settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub public_url: PublicUrl,
    pub database: DatabaseUrl,
    /// Redis shared by every instance, if any.
    pub redis: Option<RedisSettings>,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    pub site_root: PathBuf,
    pub log_format: LogFormat,
    pub ttls: Ttls,
    pub limits: LimitSettings,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub approvals: ApprovalPolicy,
    pub registration: Registration,
    /// The account a setup link is for.
    pub setup_admin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("public URL {0:?} is not valid: it must be an absolute http:// or https:// URL with no query or fragment")]
    PublicUrl(String),
    #[error("{0} must be between 1 and 86400 seconds")]
    Ttl(&'static str),
    #[error("{name} must be between {min} and {max}")]
    OutOfRange {
        name: &'static str,
        min: usize,
        max: usize,
    },
    #[error(transparent)]
    Database(#[from] UnsupportedDatabaseUrl),
    #[error("passkeys need a public URL with a host name (WebAuthn refuses IP addresses): {0} cannot require them")]
    PasskeysNeedHostName(String),
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = FileSettings::read(args.config.as_deref())?;
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url.clone())
            .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
        Ok(Self {
            addr: args
                .addr
                .or(file.addr)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000))),
            public_url: PublicUrl::parse(&public_url)?,
            database: DatabaseUrl::parse(
                args.database
                    .as_deref()
                    .or(file.database.as_deref())
                    .unwrap_or("sqlite://data/qrlogin.db"),
            )?,
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            redis: args
                .redis
                .clone()
                .or(file.redis.clone())
                .map(|url| RedisSettings {
                    url,
                    prefix: args
                        .redis_prefix
                        .clone()
                        .or(file.redis_prefix.clone())
                        .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned()),
                }),
            site_root: args
                .site_root
                .clone()
                .or(file.site_root.clone())
                // cargo-leptos tells the server where it put the site.
                .or_else(|| std::env::var_os("LEPTOS_SITE_ROOT").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("target/site")),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            limits: limits(args, &file)?,
            // As peers are compared: an IPv4-mapped IPv6 address as IPv4.
            trusted_proxies: args
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|ip| ip.to_canonical())
                .collect(),
            ttls: ttls(args, &file)?,
            approvals: approvals(args, &file, &public_url)?,
            registration: args.registration.or(file.registration).unwrap_or_default(),
            setup_admin: args
                .setup_admin
                .clone()
                .or(file.setup_admin.clone())
                .unwrap_or_else(|| "admin".to_owned()),
        })
    }
}

impl FileSettings {
    /// The TOML file at `path`; none at all is all defaults.
    fn read(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

fn limits(args: &ServeArgs, file: &FileSettings) -> Result<LimitSettings, ConfigError> {
    let d = LimitSettings::default();
    let ipv6_prefix = args
        .ipv6_limit_prefix
        .or(file.ipv6_limit_prefix)
        .unwrap_or(DEFAULT_IPV6_PREFIX);
    if !(1..=128).contains(&ipv6_prefix) {
        return Err(ConfigError::OutOfRange {
            name: "ipv6_limit_prefix",
            min: 1,
            max: 128,
        });
    }
    let password_hashes = args
        .password_hashes
        .or(file.password_hashes)
        .unwrap_or_else(default_password_hashes);
    if !(1..=MAX_PASSWORD_HASHES).contains(&password_hashes) {
        return Err(ConfigError::OutOfRange {
            name: "password_hashes",
            min: 1,
            max: MAX_PASSWORD_HASHES,
        });
    }
    Ok(LimitSettings {
        sign_in: args
            .limit_sign_in
            .or(file.limit_sign_in)
            .unwrap_or(d.sign_in),
        create: args.limit_create.or(file.limit_create).unwrap_or(d.create),
        poll: args.limit_poll.or(file.limit_poll).unwrap_or(d.poll),
        scan: args.limit_scan.or(file.limit_scan).unwrap_or(d.scan),
        decide: args.limit_decide.or(file.limit_decide).unwrap_or(d.decide),
        user_code: args
            .limit_user_code
            .or(file.limit_user_code)
            .unwrap_or(d.user_code),
        token: args.limit_token.or(file.limit_token).unwrap_or(d.token),
        ipv6_prefix,
        password_hashes,
    })
}

fn approvals(
    args: &ServeArgs,
    file: &FileSettings,
    public_url: &str,
) -> Result<ApprovalPolicy, ConfigError> {
    let policy = ApprovalPolicy {
        approve_with: args.approve_with.or(file.approve_with).unwrap_or_default(),
        require_passkey_off_network: args.require_passkey_off_network
            || file.require_passkey_off_network.unwrap_or(false),
    };
    let needs_passkeys =
        policy.approve_with == ApproveWith::Passkey || policy.require_passkey_off_network;
    let host_is_ip = Url::parse(public_url)
        .ok()
        .and_then(|url| url.host().map(|h| !matches!(h, url::Host::Domain(_))))
        .unwrap_or(true);
    if needs_passkeys && host_is_ip {
        return Err(ConfigError::PasskeysNeedHostName(public_url.to_owned()));
    }
    Ok(policy)
}

fn ttls(args: &ServeArgs, file: &FileSettings) -> Result<Ttls, ConfigError> {
    let ttl = |flag: Option<u64>, file: Option<u64>, default: Duration, name| match flag.or(file) {
        None => Ok(default),
        Some(s @ 1..=86_400) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ConfigError::Ttl(name)),
    };
    let d = Ttls::default();
    Ok(Ttls {
        pending: ttl(args.pending_ttl, file.pending_ttl, d.pending, "pending_ttl")?,
        scanned: ttl(args.scanned_ttl, file.scanned_ttl, d.scanned, "scanned_ttl")?,
        approved: ttl(
            args.approved_ttl,
            file.approved_ttl,
            d.approved,
            "approved_ttl",
        )?,
    })
}

/// The externally reachable base URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(raw).map_err(|_| ConfigError::PublicUrl(raw.to_owned()))?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !ok {
            return Err(ConfigError::PublicUrl(raw.to_owned()));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> &str {
        match self
            .0
            .find("://")
            .and_then(|i| self.0[i + 3..].find('/').map(|j| i + 3 + j))
        {
            Some(end) => &self.0[..end],
            None => &self.0,
        }
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_normalised_and_checked() {
        let url = PublicUrl::parse("https://login.example.com/").unwrap();
        assert_eq!(url.as_str(), "https://login.example.com");
        assert!(url.is_https());
        assert_eq!(url.origin(), "https://login.example.com");
        let url = PublicUrl::parse("http://10.0.0.2:3000/qr/").unwrap();
        assert_eq!(url.as_str(), "http://10.0.0.2:3000/qr");
        assert_eq!(url.origin(), "http://10.0.0.2:3000");
        assert!(PublicUrl::parse("ftp://x").is_err());
        assert!(PublicUrl::parse("http://x/?a=b").is_err());
        assert!(PublicUrl::parse("not a url").is_err());
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrlogin.toml");
        std::fs::write(
            &path,
            "addr = \"0.0.0.0:4000\"\npublic_url = \"http://10.0.0.2:4000\"\npending_ttl = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            public_url: Some("http://192.168.1.2:4000".into()),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&args).unwrap();
        assert_eq!(settings.addr.to_string(), "0.0.0.0:4000");
        assert_eq!(settings.public_url.as_str(), "http://192.168.1.2:4000");
        assert_eq!(settings.ttls.pending, Duration::from_secs(5));
        assert_eq!(settings.ttls.scanned, Duration::from_secs(90));
    }

    #[test]
    fn registration_and_the_setup_account_have_defaults_and_a_file_key() {
        let settings = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(settings.registration, Registration::Invite);
        assert_eq!(settings.setup_admin, "admin");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrlogin.toml");
        std::fs::write(&path, "registration = \"open\"\nsetup_admin = \"root\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&args).unwrap();
        assert_eq!(settings.registration, Registration::Open);
        assert_eq!(settings.setup_admin, "root");
        assert!("closed".parse::<Registration>().is_err());
    }

    #[test]
    fn unknown_file_keys_and_bad_ttls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrlogin.toml");
        std::fs::write(&path, "adress = \"0.0.0.0:4000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Settings::resolve(&args),
            Err(ConfigError::Parse { .. })
        ));
        let args = ServeArgs {
            pending_ttl: Some(0),
            ..ServeArgs::default()
        };
        assert!(matches!(Settings::resolve(&args), Err(ConfigError::Ttl(_))));
    }

    #[test]
    fn limit_networks_hash_slots_and_proxies_are_checked() {
        let settings = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(settings.limits.ipv6_prefix, 64);
        assert!(settings.limits.password_hashes >= 1);
        for bad in [0, 129] {
            let args = ServeArgs {
                ipv6_limit_prefix: Some(bad),
                ..ServeArgs::default()
            };
            assert!(matches!(
                Settings::resolve(&args),
                Err(ConfigError::OutOfRange { .. })
            ));
        }
        let args = ServeArgs {
            password_hashes: Some(0),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Settings::resolve(&args),
            Err(ConfigError::OutOfRange { .. })
        ));
        let args = ServeArgs {
            ipv6_limit_prefix: Some(48),
            password_hashes: Some(3),
            trusted_proxies: Some(vec!["::ffff:10.0.0.1".parse().unwrap()]),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&args).unwrap();
        assert_eq!(
            (settings.limits.ipv6_prefix, settings.limits.password_hashes),
            (48, 3)
        );
        assert_eq!(
            settings.trusted_proxies,
            vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}
