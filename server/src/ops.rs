//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the
//! database answers, the schema is migrated, the bus is up) and `/metrics`
//! (Prometheus exposition of the chat's metrics, see `engine::metrics`).
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use engine::bus::Bus;
use engine::hub::Hub;
use engine::metrics as m;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use migration::MigratorTrait;
use sea_orm::DatabaseConnection;
use serde_json::json;

/// How long a readiness probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The process-wide metrics recorder (installed once, shared by every
/// server built in this process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Err only if another recorder was installed first (tests embedding
            // the server twice share this one).
            let _ = metrics::set_global_recorder(recorder);
            m::describe();
            metrics::describe_counter!(
                crate::admission::SHED,
                "Page and server-function requests answered at once because the node was full"
            );
            metrics::describe_histogram!(
                crate::admission::QUEUED_SECONDS,
                metrics::Unit::Seconds,
                "Time admitted page and server-function requests waited for their turn"
            );
            crate::webhooks::describe();
            crate::retention::describe();
            metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            at_zero();
            handle
        })
        .clone()
}

/// Every family present from the start, at zero: a dashboard or an alert
/// on something that has not happened yet sees 0, not "no data".
fn at_zero() {
    let counters = [
        m::MESSAGES_STORED,
        m::MESSAGES_DELIVERED,
        m::RESYNCS,
        m::WRITE_TIMEOUTS,
        m::REFUSED_CONNECTIONS,
        m::BUS_DROPPED,
        m::BUS_RESYNCS,
    ];
    for name in counters {
        metrics::counter!(name).increment(0);
    }
    for how in ["kept", "newcomers", "whole"] {
        metrics::counter!(m::MEMBER_LIST_READS, "how" => how).increment(0);
    }
    for what in m::MODERATION_KINDS {
        metrics::counter!(m::MODERATION, "what" => what).increment(0);
    }
    for what in ["block", "unblock"] {
        metrics::counter!(m::BLOCKS, "what" => what).increment(0);
    }
    metrics::gauge!(m::CONNECTIONS).increment(0.0);
    metrics::gauge!(m::ROOMS).increment(0.0);
    // Registered without a sample: present, with a count of 0.
    let _ = metrics::histogram!(m::FANOUT_SECONDS);
    let _ = metrics::histogram!(m::DB_SECONDS, "op" => "insert_messages");
    metrics::counter!(crate::admission::SHED).increment(0);
    for name in [crate::webhooks::DELIVERED, crate::webhooks::RETRIED, crate::webhooks::DROPPED] {
        metrics::counter!(name).increment(0);
    }
    let _ = metrics::histogram!(crate::webhooks::RECEIVER_SECONDS);
    let _ = metrics::histogram!(crate::admission::QUEUED_SECONDS);
    crate::retention::at_zero();
}

struct Ops {
    db: DatabaseConnection,
    hub: Hub,
    bus: Arc<dyn Bus>,
    metrics: PrometheusHandle,
    migrations_expected: bool,
}

/// `migrations_expected`: whether readiness requires an up-to-date schema.
pub fn routes(db: DatabaseConnection, hub: Hub, bus: Arc<dyn Bus>, migrations_expected: bool) -> Router {
    let ops = Arc::new(Ops { db, hub, bus, metrics: metrics_handle(), migrations_expected });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ops)
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let mut problems = Vec::new();
    match tokio::time::timeout(PROBE_TIMEOUT, ops.db.ping()).await {
        Ok(Ok(())) => {
            if ops.migrations_expected {
                match migration::Migrator::get_pending_migrations(&ops.db).await {
                    Ok(pending) if pending.is_empty() => {}
                    Ok(pending) => problems.push(format!("{} migrations pending", pending.len())),
                    Err(_) => problems.push("cannot read the migration table".to_owned()),
                }
            }
        }
        Ok(Err(err)) => {
            tracing::warn!(%err, "readiness: database unreachable");
            problems.push("database unreachable".to_owned());
        }
        Err(_) => problems.push("database did not answer in time".to_owned()),
    }
    if let Some(problem) = ops.bus.problem() {
        problems.push(problem);
    }
    if problems.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "problems": problems })))
            .into_response()
    }
}

async fn metrics_text(State(ops): State<Arc<Ops>>) -> Response {
    metrics::gauge!(m::ROOMS).set(ops.hub.room_count() as f64);
    ops.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], ops.metrics.render()).into_response()
}
