//! Builds the application from a [`Config`]: opens the store, runs the
//! migrations, picks the bus, wires the routes (pages, server functions,
//! the room stream, static files) and binds the listener. Tests build it on
//! port 0 with a fresh database and talk to it over the network.
use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use app::api::ApiError;
use app::bundle::Bundle;
use app::embed::EmbedSettings;
use app::server::page_policy::PagePolicy;
use app::server::AppState;
use app::{shell, App};
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use engine::bus::redis::RedisBus;
use engine::bus::{Bus, LocalBus};
use engine::hub::Hub;
use engine::identity::Access;
use engine::limits::ConnectionLimits;
use engine::limits::{ConnectionsPerIp, SendRate};
use engine::rooms::{Rooms, SendLimits};
use engine::Lifecycle;
use engine::{store, stream, Engine};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use migration::MigratorTrait;
use moderation::WordFilter;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeader;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admission::{self, Admission};
use crate::api_v1::{self, ApiState};
use crate::config::Config;
use crate::security::{self, OriginPolicy};
use crate::{retention, word_filter};

/// Longest a request may take before it is answered 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Name of the site bundle files (`output-name` in the workspace metadata).
const OUTPUT_NAME: &str = "embedded-chat";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot open the database: {0}")]
    Database(#[source] sea_orm::DbErr),
    #[error("cannot migrate the database: {0}")]
    Migration(#[source] sea_orm::DbErr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: io::Error },
}

/// Applies pending migrations (the `migrate` command); returns how many.
pub async fn migrate(config: &Config) -> Result<usize, StartupError> {
    let pool = store::PoolSettings { max_connections: 1, ..config.pool() };
    let db = connect_with_retry(config, pool).await?;
    let pending = migration::Migrator::get_pending_migrations(&db).await.map_err(StartupError::Migration)?;
    migration::Migrator::up(&db, None).await.map_err(StartupError::Migration)?;
    Ok(pending.len())
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    port: u16,
    lifecycle: Lifecycle,
    shutdown_grace: Duration,
    /// Told last at shutdown: what the connections stored on their way out.
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate().map_err(StartupError::Config)?;
        // Migrations run through a connection of their own, closed before
        // the pool opens: a pooled SQLite connection that ran one step of a
        // migration keeps the schema as it saw it then and compiles later
        // statements against it (an upsert on a unique index that a later
        // step made was refused). An in-memory database is its one
        // connection.
        let in_memory = config.database_url.contains(":memory:");
        if !config.no_migrate && !in_memory {
            let alone = store::PoolSettings { max_connections: 1, ..config.pool() };
            let migrating = connect_with_retry(&config, alone).await?;
            migration::Migrator::up(&migrating, None).await.map_err(StartupError::Migration)?;
            let _ = migrating.close().await;
        }
        let db = connect_with_retry(&config, config.pool()).await?;
        if !config.no_migrate && in_memory {
            migration::Migrator::up(&db, None).await.map_err(StartupError::Migration)?;
        }
        let hub = Hub::new(config.room_buffer as usize);
        let bus: Arc<dyn Bus> = match config.redis() {
            Some(redis) => {
                let bus =
                    RedisBus::start(&redis, hub.clone()).map_err(|e| StartupError::Config(e.to_string()))?;
                tracing::info!(prefix = %redis.prefix, "rooms shared with other nodes over Redis");
                Arc::new(bus)
            }
            None => Arc::new(LocalBus::new(hub.clone())),
        };
        let ops = crate::ops::routes(db.clone(), hub.clone(), bus.clone(), !config.no_migrate);
        let words = match &config.word_filter_file {
            Some(path) => Arc::new(WordFilter::new(
                word_filter::load(path).map_err(StartupError::Config)?,
                config.word_filter_mode,
            )),
            None => Arc::default(),
        };
        let limits = SendLimits {
            max_body_chars: config.max_message_chars as usize,
            rate: Arc::new(SendRate::new(config.messages_per_sec, config.message_burst)),
            words: words.clone(),
        };
        let webhook_db = db.clone();
        let retention_db = db.clone();
        let rooms =
            Rooms::with_limits(db, bus, limits, Duration::from_millis(config.group_commit_wait_ms.into()))
                .with_removed_text(config.removed_text);

        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartupError::Bind { addr: config.addr, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: config.addr, source })?;

        let leptos_options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(config.site_root())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .reload_port(reload_port())
            .build();
        let lifecycle = Lifecycle::default();
        let webhook_settings = config.webhooks().map_err(StartupError::Config)?;
        let delivered = webhook_settings.as_ref().map(|s| s.urls.clone()).unwrap_or_default();
        crate::webhooks::warn_of_events_left_behind(webhook_db.clone(), delivered);
        let webhooks = webhook_settings.map(|settings| {
            tracing::info!(urls = settings.urls.len(), "webhooks");
            let webhooks = crate::webhooks::Webhooks::start(settings, webhook_db);
            rooms.events().listen(webhooks.clone());
            webhooks
        });
        if let Some(days) = config.message_retention_days {
            tracing::info!(days, "messages are kept for a limited time");
            retention::keep_sweeping(
                retention_db,
                retention::Retention::days(days),
                lifecycle.stopping_token(),
            );
        }
        if let Some(path) = &config.word_filter_file {
            tracing::info!(path = %path.display(), entries = words.len(), mode = ?words.mode(), "word filter");
            word_filter::keep_fresh(path.clone(), words.clone(), lifecycle.stopping_token());
        }
        // Idle checks and the shutdown reach the connections as chores.
        hub.keep_house(config.stream_settings().idle_check_every(), lifecycle.stopping_token());
        let engine = Engine {
            rooms,
            access: match config.signing_key() {
                Some(key) => Access::Signed(key),
                None => Access::Open { moderators: config.moderators.clone() },
            },
            stream: config.stream_settings(),
            connections: ConnectionLimits {
                per_ip: ConnectionsPerIp::new(config.max_connections_per_ip),
                trust_forwarded_for: config.trust_forwarded_for,
            },
            lifecycle: lifecycle.clone(),
        };
        let api = api_v1::routes(
            ApiState {
                rooms: engine.rooms.clone(),
                signing: config.signing_key(),
                words: config.word_filter_file.clone().map(|path| (path, words.clone())),
            },
            config.api_keys().map_err(StartupError::Config)?,
        );
        let state = AppState {
            leptos_options,
            engine,
            pages: PagePolicy {
                frame_ancestors: config.frame_ancestors.clone(),
                // What `AutoReload` checks before it adds its script.
                live_reload: std::env::var_os("LEPTOS_WATCH").is_some().then(reload_port),
            },
        };
        let origins = OriginPolicy::new(&config.allowed_origins);
        let admission = Admission::new(config.admission_limits());
        let router = router(state, origins, config.embed_settings(), admission)
            .merge(ops)
            .merge(api)
            .layer(middleware::from_fn(security::security_headers));
        Ok(Application {
            listener,
            router,
            port: local_addr.port(),
            lifecycle,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            webhooks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down gracefully: stops
    /// accepting, lets each stream connection finish what it is doing
    /// (an in-flight message is committed and acknowledged) and close with
    /// "going away", then delivers the webhook events still pending,
    /// waiting at most the configured grace period for both.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let lifecycle = self.lifecycle.clone();
        let signal = async move {
            stop.await;
            lifecycle.stop();
        };
        // Small frames go out at once: no Nagle delay on chat traffic.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // Peer addresses reach the handlers (connections per IP).
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).with_graceful_shutdown(signal).await?;
        let deadline = tokio::time::Instant::now() + self.shutdown_grace;
        let open = self.lifecycle.connection_count();
        if tokio::time::timeout_at(deadline, self.lifecycle.drained()).await.is_err() {
            tracing::warn!(open, "connections still open after the grace period");
        }
        // Then what they stored is told to the webhooks, in the time left.
        if let Some(webhooks) = &self.webhooks {
            webhooks.finish(deadline).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the database, retrying with backoff for up to
/// `--db-startup-retry-secs` while it is unreachable (a fleet restarting
/// with its database comes up without a crash loop).
async fn connect_with_retry(
    config: &Config,
    pool: store::PoolSettings,
) -> Result<sea_orm::DatabaseConnection, StartupError> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(config.db_startup_retry_secs);
    let mut attempt = 0;
    loop {
        match store::connect(&config.database_url, pool).await {
            Ok(db) => return Ok(db),
            Err(err) => {
                let delay = Duration::from_millis(u64::from(app::backoff::delay_ms(attempt, 0.5)));
                if tokio::time::Instant::now() + delay > give_up {
                    return Err(StartupError::Database(err));
                }
                tracing::warn!(%err, retry_in_ms = delay.as_millis() as u64, "database unreachable; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// The live-reload port `cargo leptos watch` announces, if any.
fn reload_port() -> u32 {
    std::env::var("LEPTOS_RELOAD_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001)
}

fn router(state: AppState, origins: OriginPolicy, embed: EmbedSettings, admission: Arc<Admission>) -> Router {
    let routes = app_routes();
    let options = &state.leptos_options;
    // The bundle (WASM, JS glue, CSS), compressed at build time (`cargo
    // xtask site` writes `.br` and `.gz` beside each file) and sent as the
    // browser accepts it; kept by browsers for good when its names carry
    // content hashes (see `bundle_caching`).
    let pkg_dir = format!("{}/{}", options.site_root, options.site_pkg_dir);
    let bundle = find_bundle(&pkg_dir, &options.site_pkg_dir, &options.output_name);
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            provide_context(embed.clone());
            provide_context(bundle.clone());
        }
    };
    let shell_options = state.leptos_options.clone();
    let bundle_files = ServiceBuilder::new()
        .layer(middleware::from_fn(bundle_caching))
        .service(ServeDir::new(&pkg_dir).precompressed_br().precompressed_gzip());
    // What a cache keeps depends on what the browser accepted.
    let bundle_files =
        SetResponseHeader::overriding(bundle_files, VARY, HeaderValue::from_static("accept-encoding"));
    // Pages and JSON compressed as they go out, at the fastest level: a
    // room page of 100 members and 50 messages (46 KB) costs 90 µs of CPU
    // with brotli and goes out as 4.9 KB, where level 4 cost 410 µs for
    // 3.5 KB. Never the stream's upgrade, never what already has an
    // encoding (the bundle).
    let compression = CompressionLayer::new().quality(CompressionLevel::Fastest).compress_when(
        DefaultPredicate::new()
            .and(|status: StatusCode, _, _: &_, _: &_| status != StatusCode::SWITCHING_PROTOCOLS),
    );
    Router::new()
        .route("/api/stream", get(stream::stream_handler))
        .nest_service(&format!("/{}", options.site_pkg_dir), bundle_files)
        .leptos_routes_with_context(&state, routes, context.clone(), move || shell(shell_options.clone()))
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::map_response(client_errors_answer_400))
        .layer(middleware::from_fn_with_state(origins.clone(), security::guard_origin))
        // A bug must cost one request a 500, never the process or a hung reply.
        .layer(CatchPanicLayer::new())
        // A page render that stalls (a database that stops answering, say)
        // ends with a 503 the browser can retry, instead of a spinner
        // forever. The stream's upgrade answers at once and is
        // not affected; its connection lives outside the request.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        // One span per request (method, path) for the logs.
        .layer(TraceLayer::new_for_http())
        // More pages than the node can serve wait in a bounded line or are
        // told to come back in a moment. Outside the request's log span and
        // deadline: turning a crowd away costs no log line each (they are
        // counted in the metrics), and waiting in line is bounded on its own.
        .layer(middleware::from_fn_with_state(admission, admission::admit))
        // A game's page reads every answer of the server functions,
        // whichever layer gave it (see `security::cross_site_reads`).
        .layer(middleware::from_fn_with_state(origins, security::cross_site_reads))
        // Outermost: the layers above see bodies as they were made.
        .layer(compression)
        .with_state(state)
}

/// The app's routes, found once per process, before any server of it
/// serves. Leptos finds them by running the app with resource loading
/// switched off for the whole process (a global flag): a page rendered at
/// that moment by another server in the same process (tests run many at
/// once) had its data never load and stalled until the request timeout.
fn app_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The bundle's names among the files the site's `pkg/` holds now.
fn find_bundle(dir: &str, pkg_dir: &str, output_name: &str) -> Bundle {
    let files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let bundle = Bundle::from_files(pkg_dir, output_name, files.iter().map(String::as_str));
    let present = |path: &str| path.rsplit('/').next().is_some_and(|name| files.iter().any(|f| f == name));
    if [&bundle.js, &bundle.wasm, &bundle.css].into_iter().all(|path| present(path)) {
        tracing::info!(wasm = %bundle.wasm, "the site's bundle");
    } else {
        tracing::warn!(dir, "the site's bundle is incomplete: rooms will not come alive (build the site)");
    }
    bundle
}

/// Browsers keep a bundle file whose name carries its content's hash for
/// a year without asking again (`immutable`): the name changes when the
/// content does. Anything else under `/pkg` (unhashed names in
/// development, a file not found) is revalidated on every use.
async fn bundle_caching(request: Request, next: Next) -> Response {
    let hashed = request.uri().path().rsplit('/').next().is_some_and(Bundle::is_hashed);
    let mut response = next.run(request).await;
    let keep = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let policy = if hashed && keep { "public, max-age=31536000, immutable" } else { "no-cache" };
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// A server-function call that could not even be decoded (missing or
/// malformed fields) is the client's fault: it answers 400, not server_fn's
/// blanket 500. Errors the functions return set their own status.
async fn client_errors_answer_400(response: Response) -> Response {
    let is_server_fn_error = response.headers().contains_key("serverfnerror");
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR || !is_server_fn_error {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    if let Ok(ApiError::Rejected(_)) = serde_json::from_slice::<ApiError>(&bytes) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
