//! Every setting of the server, as a command-line flag and an environment
//! variable (`--help` lists them). Defaults run the embedded mode: a SQLite
//! file next to where the server starts, the in-process bus, port 8080.
use std::net::SocketAddr;

use std::time::Duration;

use app::server::stream::StreamSettings;
use clap::Parser;

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
    /// resync (its bounded queue).
    #[arg(long, env = "ROOM_BUFFER", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
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

    /// Seconds to let connections finish and close on shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_secs: u64,

    /// Log filter, e.g. `info` or `server=debug,app=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `human` (default) or `json` (one object per line).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
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

#[derive(Clone, Copy, Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the chat (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
}

impl Config {
    /// A configuration for tests and tools: port 0 (any free port), the
    /// given database, nothing read from the environment.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_max_connections: 4,
            no_migrate: false,
            site_root: Some("target/site".to_owned()),
            room_buffer: 1024,
            heartbeat_secs: 15,
            idle_timeout_secs: 45,
            write_timeout_secs: 10,
            replay_limit: 1000,
            shutdown_grace_secs: 5,
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
        Ok(())
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
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = parse_config(["server", "--addr", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--addr"), "{err}");
        let err = parse_config(["server", "--db-max-connections", "0"]).unwrap_err();
        assert!(err.to_string().contains("--db-max-connections"), "{err}");
    }

    #[test]
    fn the_idle_timeout_must_exceed_the_heartbeat() {
        let config = parse_config(["server", "--heartbeat-secs", "30", "--idle-timeout-secs", "20"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--idle-timeout-secs"));
        assert!(parse_config(["server"]).unwrap().validate().is_ok());
    }
}
