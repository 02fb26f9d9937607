//! Every setting of the server, as a command-line flag and an environment
//! variable (`--help` lists them). Defaults run the embedded mode: a SQLite
//! file next to where the server starts, the in-process bus, port 8080.
use std::net::SocketAddr;

use std::time::Duration;

use app::embed::{normalize_origin, EmbedSettings};
use app::protocol::Role;
use clap::Parser;
use engine::bus::redis::RedisSettings;
use engine::identity::SigningKey;
use engine::store::moderation::RemovedText;
use engine::store::PoolSettings;
use engine::stream::StreamSettings;

/// The message writer's wait for company under load (the app's default).
const DEFAULT_GROUP_WAIT_MS: u32 = engine::rooms::GROUP_WAIT.as_millis() as u32;
/// Events a connection's queue holds at most (see `--room-buffer`).
const DEFAULT_ROOM_BUFFER: u32 = 512;

/// Parses a command line into settings (for tests and tools).
pub fn parse_config<I, T>(args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(|cli| cli.config)
}

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address to listen on. The default serves the original URL
    /// http://localhost:8080/chat_room?user_id=john&channel_id=game_1
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Database: `sqlite://FILE` (created when missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://embedded-chat.db")]
    pub database_url: String,

    /// Most database connections the server keeps open.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Seconds to wait for the database: to connect, or for a free pooled
    /// connection under load.
    #[arg(long, env = "DB_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_timeout_secs: u64,

    /// Seconds to keep retrying an unreachable database at start-up (with
    /// backoff) before giving up; a database lost later is retried for as
    /// long as it takes, and reported on `/readyz`.
    #[arg(long, env = "DB_STARTUP_RETRY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub db_startup_retry_secs: u64,

    /// Redis for running several nodes (`redis://host:6379/`): rooms'
    /// events travel between nodes over its pub/sub. Without it, the
    /// in-process bus (one node).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Namespace of this deployment's Redis channels (deployments sharing
    /// one Redis need different prefixes).
    #[arg(long, env = "REDIS_PREFIX", default_value = "embedded-chat")]
    pub redis_prefix: String,

    /// Seconds between a node's presence beats over Redis: each node
    /// repeats who has the room open on it, and forgets another node's
    /// users after three beats without news from that node (it crashed or
    /// lost Redis). Only used with `--redis-url`.
    #[arg(long, env = "PRESENCE_BEAT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub presence_beat_secs: u64,

    /// Do not run the schema migrations at start-up (for fleets that run
    /// `server migrate` separately).
    #[arg(long, env = "NO_MIGRATE")]
    pub no_migrate: bool,

    /// Folder with the built site (the `pkg/` bundle and the stylesheet).
    /// Default: `site/` beside the binary, or `../site` (a release build's
    /// `target/release/server` finds `target/site`), else `target/site`.
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<String>,

    /// Events a connection may fall behind its room before it is told to
    /// resync (its bounded queue, which takes memory only for what is
    /// waiting in it): 512 is seconds of a busy room's messages, and a
    /// page that falls that far behind catches up from the store.
    #[arg(long, env = "ROOM_BUFFER", default_value_t = DEFAULT_ROOM_BUFFER, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub room_buffer: u32,

    /// Seconds between heartbeats pages send on the room stream.
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_secs: u64,

    /// Seconds of silence after which a stream connection is dropped
    /// (must be more than the heartbeat).
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 45, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub idle_timeout_secs: u64,

    /// Seconds a write to a page may take before the connection is dropped.
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_secs: u64,

    /// Most messages replayed to a reconnecting page; a page further behind
    /// gets the latest ones instead.
    #[arg(long, env = "REPLAY_LIMIT", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub replay_limit: u64,

    /// Seconds to let connections finish and close, and pending webhook
    /// events go out, on shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_secs: u64,

    /// Secret that game servers sign identity tokens with (at least 32
    /// characters). With it, every page, server function and stream needs
    /// a valid token, and the user id comes from the token only. Without
    /// it, anyone can speak as anyone (local development only).
    #[arg(long, env = "CHAT_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// Keys the game's servers call the server API (`/api/v1`) with,
    /// comma-separated (several at once, to rotate them); each at least 32
    /// characters. Without any, the server API is off.
    #[arg(long, env = "API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<Secret>,

    /// URLs that receive the rooms' events as signed POSTs (webhooks),
    /// comma-separated.
    #[arg(long, env = "WEBHOOK_URLS", value_delimiter = ',')]
    pub webhook_urls: Vec<String>,

    /// Secret that webhook requests are signed with (at least 32
    /// characters; needed with WEBHOOK_URLS).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Events each webhook URL may have waiting (in the database's outbox)
    /// while its receiver is down or slow; beyond that the oldest are
    /// dropped.
    #[arg(long, env = "WEBHOOK_QUEUE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub webhook_queue: u32,

    /// Origins (`https://game.example`) whose pages may call the API and
    /// open the stream besides the chat's own; comma-separated. Requests
    /// from other sites are refused (cross-site form posts, websocket
    /// hijacking). Requests without an `Origin` (servers, tools) pass.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Who may embed the chat in a frame: the CSP `frame-ancestors` value,
    /// e.g. `https://game.example https://*.game.example`, or `'none'`.
    #[arg(long, env = "FRAME_ANCESTORS", default_value = "*")]
    pub frame_ancestors: String,

    /// Origins of the pages an embedded room may report to (unread counts
    /// over `postMessage`), comma- or space-separated exact origins such as
    /// `https://game.example`. The room's own origin is always allowed.
    #[arg(long, env = "EMBED_ALLOWED_ORIGINS", default_value = "")]
    pub embed_allowed_origins: String,

    /// Longest message, in characters.
    #[arg(long, env = "MAX_MESSAGE_CHARS", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_message_chars: u32,

    /// Messages per second one user may send in a room (sustained).
    #[arg(long, env = "MESSAGES_PER_SEC", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages_per_sec: u32,

    /// Messages one user may send at once before the rate applies.
    #[arg(long, env = "MESSAGE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub message_burst: u32,

    /// Under load, how long the message writer waits for more messages
    /// before storing a group, in milliseconds, counted from the group
    /// before (0: never waits). Fewer commits and fewer writes per
    /// delivered message, for at most that much more latency; a quiet
    /// room's messages never wait.
    #[arg(long, env = "GROUP_COMMIT_WAIT_MS", default_value_t = DEFAULT_GROUP_WAIT_MS, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub group_commit_wait_ms: u32,

    /// User ids that are moderators in every room, comma-separated: for
    /// trying moderation locally in open mode. With a token secret, roles
    /// come from the tokens only (their `r` claim) and this must be empty.
    #[arg(long, env = "MODERATOR_IDS", value_delimiter = ',')]
    pub moderators: Vec<String>,

    /// A file listing words and phrases not allowed in messages, one a
    /// line (`#` starts a comment); read again when it changes or on SIGHUP.
    #[arg(long, env = "WORD_FILTER_FILE")]
    pub word_filter_file: Option<std::path::PathBuf>,

    /// What the word filter does: `mask` (each match becomes `*`s) or
    /// `block` (the message is refused with a reason).
    #[arg(long, env = "WORD_FILTER_MODE", default_value = "mask", value_parser = parse_filter_mode)]
    pub word_filter_mode: moderation::Mode,

    /// What happens to the text of a removed message in the database:
    /// `erase` (gone for good) or `keep` (kept for the operator, e.g. as
    /// evidence). Pages never see it again either way.
    #[arg(long, env = "REMOVED_TEXT", default_value = "erase", value_parser = parse_removed_text)]
    pub removed_text: RemovedText,

    /// Days to keep what people write: messages (and reports already
    /// handled) older than that are deleted, looked for at start and every
    /// hour. Unset: kept for ever.
    #[arg(long, env = "MESSAGE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub message_retention_days: Option<u32>,

    /// Room pages and server-function calls worked on at once; more wait
    /// in line (see `--page-queue`).
    #[arg(long, env = "PAGES_IN_FLIGHT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pages_in_flight: u32,

    /// Requests that may wait for a turn when all are taken; beyond that a
    /// page is answered at once with a short page that retries by itself
    /// (a server function: 503 with Retry-After).
    #[arg(long, env = "PAGE_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub page_queue: u32,

    /// Longest a request waits in that line, in milliseconds, before it is
    /// answered like one that found no place in it.
    #[arg(long, env = "PAGE_QUEUE_WAIT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub page_queue_wait_ms: u32,

    /// Open stream connections allowed from one IP address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// Take the client's IP from the last `X-Forwarded-For` entry (set it
    /// only behind a load balancer that writes that header).
    #[arg(long, env = "TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Log filter, e.g. `info` or `server=debug,app=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `human` (default) or `json` (one object per line).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// A secret setting: never printed, not even in `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// The command line: settings, and optionally a command other than serving.
#[derive(Debug, Parser)]
#[command(name = "server", version, about = "Embedded Chat server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the chat (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Write a copy of the SQLite database to a new file, safe while the
    /// server runs (see README, Backups).
    Backup {
        /// The copy's path (must not exist yet).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Print a signed identity token (needs the token secret), as a game
    /// server would mint one.
    Token {
        /// The player's user id.
        #[arg(long)]
        user: String,
        /// The room.
        #[arg(long)]
        channel: String,
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// `player` or `moderator`.
        #[arg(long, default_value = "player", value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "player" => Ok(Role::Player),
        "moderator" => Ok(Role::Moderator),
        other => Err(format!("{other:?} is not a role: player or moderator")),
    }
}

fn parse_filter_mode(text: &str) -> Result<moderation::Mode, String> {
    text.parse().map_err(|err: moderation::UnknownMode| err.to_string())
}

fn parse_removed_text(text: &str) -> Result<RemovedText, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "erase" => Ok(RemovedText::Erase),
        "keep" => Ok(RemovedText::Keep),
        other => Err(format!("unknown REMOVED_TEXT {other:?}: use erase or keep")),
    }
}

impl Config {
    /// A configuration for tests and tools: port 0 (any free port), the
    /// given database, nothing read from the environment.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_max_connections: 4,
            db_timeout_secs: 10,
            db_startup_retry_secs: 0,
            redis_url: None,
            redis_prefix: "embedded-chat".to_owned(),
            presence_beat_secs: 10,
            no_migrate: false,
            site_root: Some("target/site".to_owned()),
            room_buffer: DEFAULT_ROOM_BUFFER,
            heartbeat_secs: 15,
            idle_timeout_secs: 45,
            write_timeout_secs: 10,
            replay_limit: 1000,
            shutdown_grace_secs: 5,
            token_secret: None,
            allowed_origins: Vec::new(),
            frame_ancestors: "*".to_owned(),
            embed_allowed_origins: String::new(),
            max_message_chars: 2000,
            messages_per_sec: 1000,
            message_burst: 1000,
            group_commit_wait_ms: DEFAULT_GROUP_WAIT_MS,
            max_connections_per_ip: 10_000,
            moderators: Vec::new(),
            word_filter_file: None,
            word_filter_mode: moderation::Mode::Mask,
            removed_text: RemovedText::Erase,
            message_retention_days: None,
            api_keys: Vec::new(),
            webhook_urls: Vec::new(),
            webhook_secret: None,
            webhook_queue: 10_000,
            pages_in_flight: 16,
            page_queue: 1024,
            page_queue_wait_ms: 3000,
            trust_forwarded_for: false,
            log: "warn".to_owned(),
            log_format: LogFormat::Human,
        }
    }
}

impl Config {
    /// Checks what clap cannot: relations between settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_secs <= self.heartbeat_secs {
            return Err(format!(
                "--idle-timeout-secs ({}) must be more than --heartbeat-secs ({})",
                self.idle_timeout_secs, self.heartbeat_secs
            ));
        }
        if let Some(url) = &self.redis_url {
            if !url.starts_with("redis://")
                && !url.starts_with("rediss://")
                && !url.starts_with("redis+unix://")
            {
                return Err("--redis-url must start with redis://".to_owned());
            }
        }
        if let Some(secret) = &self.token_secret {
            SigningKey::new(&secret.0).map_err(|e| format!("--token-secret: {e}"))?;
            if !self.moderators.is_empty() {
                return Err("--moderators (MODERATOR_IDS) is for open mode: with a token secret, \
                            moderators are named by their tokens (claim \"r\": \"moderator\")"
                    .to_owned());
            }
        }
        self.api_keys().map_err(|e| format!("--api-keys (API_KEYS): {e}"))?;
        self.webhooks()?;
        for origin in &self.allowed_origins {
            if normalize_origin(origin).is_none() {
                return Err(format!(
                    "--allowed-origins: {origin:?} is not an origin like https://game.example"
                ));
            }
        }
        EmbedSettings::parse(&self.embed_allowed_origins)
            .map_err(|e| format!("--embed-allowed-origins: {e}"))?;
        if self.frame_ancestors.trim().is_empty() || self.frame_ancestors.contains([';', ',', '\n']) {
            return Err("--frame-ancestors must be a space-separated CSP source list".to_owned());
        }
        if self.redis_prefix.is_empty()
            || self.redis_prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("--redis-prefix must be a non-empty word without spaces".to_owned());
        }
        Ok(())
    }

    /// The webhooks' settings, when URLs are given.
    pub fn webhooks(&self) -> Result<Option<crate::webhooks::WebhookSettings>, String> {
        let urls: Vec<String> =
            self.webhook_urls.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        if urls.is_empty() {
            return Ok(None);
        }
        let mut seen: Vec<axum::http::Uri> = Vec::new();
        for url in &urls {
            use axum::http::uri::Scheme;
            let parsed = url.parse::<axum::http::Uri>().ok().filter(|uri| {
                uri.scheme().is_some_and(|scheme| *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS)
            });
            let Some(uri) = parsed else {
                return Err(format!("--webhook-urls: {url:?} is not an http(s) URL"));
            };
            // Each URL has one queue and one sender: a second would send
            // its events again, out of order. (URIs compare their scheme
            // and host in any case, as receivers do.)
            if seen.contains(&uri) {
                return Err(format!("--webhook-urls: {url:?} is given twice"));
            }
            seen.push(uri);
        }
        let secret = self.webhook_secret.as_ref().map(|s| s.0.as_str()).unwrap_or_default();
        if secret.len() < 32 {
            return Err(
                "--webhook-secret (WEBHOOK_SECRET) of at least 32 characters is needed with --webhook-urls"
                    .to_owned(),
            );
        }
        Ok(Some(crate::webhooks::WebhookSettings {
            urls,
            secret: secret.as_bytes().to_vec(),
            queue: self.webhook_queue as usize,
        }))
    }

    /// The server API's keys.
    pub fn api_keys(&self) -> Result<crate::api_v1::ApiKeys, String> {
        crate::api_v1::ApiKeys::new(self.api_keys.iter().map(|k| k.0.as_str()).filter(|k| !k.is_empty()))
    }

    /// The key identity tokens are checked with, when a secret is set.
    pub fn signing_key(&self) -> Option<SigningKey> {
        self.token_secret.as_ref().and_then(|secret| SigningKey::new(&secret.0).ok())
    }

    /// The parent pages an embedded room may report to.
    /// How much page work is admitted at once (see `admission`).
    pub fn admission_limits(&self) -> crate::admission::Limits {
        crate::admission::Limits {
            in_flight: self.pages_in_flight as usize,
            queue: self.page_queue as usize,
            max_wait: Duration::from_millis(self.page_queue_wait_ms.into()),
        }
    }

    pub fn embed_settings(&self) -> EmbedSettings {
        EmbedSettings::parse(&self.embed_allowed_origins).unwrap_or_default()
    }

    /// The database pool's settings.
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            timeout: Duration::from_secs(self.db_timeout_secs),
        }
    }

    /// The Redis bus's settings, when several nodes share rooms.
    pub fn redis(&self) -> Option<RedisSettings> {
        self.redis_url.as_ref().map(|url| RedisSettings {
            url: url.clone(),
            prefix: self.redis_prefix.clone(),
            presence_beat: Duration::from_secs(self.presence_beat_secs),
        })
    }

    /// The site folder to serve (see `--site-root`).
    pub fn site_root(&self) -> String {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        let beside_binary = std::env::current_exe().ok().and_then(|exe| {
            let dir = exe.parent()?.to_path_buf();
            [dir.join("site"), dir.join("../site")].into_iter().find(|p| p.join("pkg").is_dir())
        });
        match beside_binary {
            Some(path) => path.to_string_lossy().into_owned(),
            None => "target/site".to_owned(),
        }
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
            replay_limit: self.replay_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_the_original_url_from_a_sqlite_file() {
        let config = parse_config(["server"]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert!(config.database_url.starts_with("sqlite://"));
        assert!(!config.no_migrate);
        assert_eq!(config.message_retention_days, None, "messages are kept unless told otherwise");
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = parse_config(["server", "--addr", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--addr"), "{err}");
        let err = parse_config(["server", "--db-max-connections", "0"]).unwrap_err();
        assert!(err.to_string().contains("--db-max-connections"), "{err}");
        for days in ["0", "-3", "a week"] {
            let err = parse_config(["server", &format!("--message-retention-days={days}")]).unwrap_err();
            assert!(err.to_string().contains("--message-retention-days"), "{err}");
        }
    }

    #[test]
    fn webhook_urls_are_http_each_given_once_and_need_the_secret() {
        let secret = "s".repeat(40);
        let with = |urls: &str| {
            parse_config(["server", "--webhook-urls", urls, "--webhook-secret", secret.as_str()])
                .unwrap()
                .webhooks()
        };
        let settings = with("https://a.example/hook, http://b.example/hook").unwrap().unwrap();
        assert_eq!(settings.urls, ["https://a.example/hook", "http://b.example/hook"]);
        assert!(with("ftp://a.example/hook").unwrap_err().contains("not an http(s) URL"));
        let twice = with("https://a.example/hook, https://a.example/hook ").unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        assert!(with("https://a.example/hook,HTTPS://A.Example/hook").unwrap_err().contains("given twice"));
        assert!(with("https://a.example/hook,https://a.example/Hook").is_ok(), "paths are case-sensitive");
        let no_secret =
            parse_config(["server", "--webhook-urls", "https://a.example/hook"]).unwrap().webhooks();
        assert!(no_secret.unwrap_err().contains("--webhook-secret"));
    }

    #[test]
    fn the_token_secret_is_checked_and_never_printed() {
        let config = parse_config(["server", "--token-secret", "short"]).unwrap();
        assert!(config.validate().unwrap_err().contains("at least 32"));
        let long = "s".repeat(40);
        let config = parse_config(["server", "--token-secret", long.as_str()]).unwrap();
        assert!(config.validate().is_ok());
        assert!(config.signing_key().is_some());
        assert!(!format!("{config:?}").contains(&long));
    }

    #[test]
    fn origins_must_be_origins() {
        let config =
            parse_config(["server", "--allowed-origins", "https://a.example,http://b.example:8080"]).unwrap();
        assert_eq!(config.allowed_origins.len(), 2);
        assert!(config.validate().is_ok());
        let config = parse_config(["server", "--allowed-origins", "a.example/path"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--allowed-origins"));
    }

    #[test]
    fn redis_is_optional_and_checked_when_given() {
        assert!(parse_config(["server"]).unwrap().redis().is_none());
        let config = parse_config(["server", "--redis-url", "redis://127.0.0.1:6379/"]).unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(config.redis().unwrap().prefix, "embedded-chat");
        assert_eq!(config.redis().unwrap().presence_beat, Duration::from_secs(10));
        let config = parse_config(["server", "--redis-url", "127.0.0.1:6379"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--redis-url"));
        let config = parse_config(["server", "--redis-prefix", "a b"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--redis-prefix"));
    }

    #[test]
    fn the_idle_timeout_must_exceed_the_heartbeat() {
        let config = parse_config(["server", "--heartbeat-secs", "30", "--idle-timeout-secs", "20"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--idle-timeout-secs"));
        assert!(parse_config(["server"]).unwrap().validate().is_ok());
    }
}
