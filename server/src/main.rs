//! `server`: runs Embedded Chat. See `--help` for every setting.
use clap::Parser;
use server::config::Config;
use server::startup::Application;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    server::telemetry::init(&config.log);
    let app = match Application::build(config.clone()).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        "Embedded Chat listening on http://{}:{} (database: {})",
        config.addr.ip(),
        app.port(),
        redact(&config.database_url)
    );
    if let Err(err) = app.run_until_stopped().await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
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
