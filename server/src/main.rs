//! `server`: runs Embedded Chat. See `--help` for every setting.
use clap::Parser;
use engine::identity;
use server::config::{Cli, Command};
use server::startup::{self, Application};

/// mimalloc rather than the system's allocator: the hot path allocates
/// small, short-lived buffers (frames, replies, a group's rows), and
/// glibc's malloc and free were about a tenth of the server's CPU in a
/// profile of rooms of 10. With mimalloc, CPU per delivered message is
/// 7–8% lower in rooms of 10 and 100 (interleaved runs), for 11–13 MiB
/// more at start and about the same memory per idle connection
/// (`bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let Cli { command, config } = Cli::parse();
    server::telemetry::init(&config.log, config.log_format);
    if let Err(problem) = config.validate() {
        fail(&problem);
    }
    match command {
        Some(Command::Migrate) => match startup::migrate(&config).await {
            Ok(applied) => {
                tracing::info!(applied, "database is up to date");
                return;
            }
            Err(err) => fail(&err.to_string()),
        },
        Some(Command::Backup { to }) => match server::backup::backup(&config.database_url, &to).await {
            Ok(bytes) => {
                println!("backup written to {} ({bytes} bytes)", to.display());
                return;
            }
            Err(err) => fail(&err.to_string()),
        },
        Some(Command::Token { user, channel, ttl_secs, role }) => {
            let Some(key) = config.signing_key() else {
                fail("`server token` needs the token secret (--token-secret or CHAT_TOKEN_SECRET)");
            };
            let expires = identity::unix_now().saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
            println!(
                "{}",
                key.mint(&identity::Identity { user_id: user, channel_id: channel, expires, role })
            );
            return;
        }
        Some(Command::Serve) | None => {}
    }
    if config.token_secret.is_none() {
        tracing::warn!(
            "OPEN MODE: no CHAT_TOKEN_SECRET is set, so anyone can speak as anyone. \
             Set a secret before exposing this server to the internet (see README, Security)."
        );
    }
    let app = match Application::build(config.clone()).await {
        Ok(app) => app,
        Err(err) => fail(&err.to_string()),
    };
    tracing::info!(
        "Embedded Chat listening on http://{}:{} (database: {})",
        config.addr.ip(),
        app.port(),
        redact(&config.database_url)
    );
    if let Err(err) = app.run_until_stopped().await {
        fail(&err.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

/// A database URL without its password, fit for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}://{}:***{}", &url[..scheme_end], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("sqlite://chat.db"), "sqlite://chat.db");
    }
}
