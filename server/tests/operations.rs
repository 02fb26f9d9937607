//! Operations: health and readiness probes, Prometheus metrics that move
//! with traffic, configuration errors that stop the server at once, and a
//! SIGTERM that drains connections and exits cleanly, and what goes over the
//! wire compressed. (This file is its own
//! test process, so metric counts are not disturbed by other tests.)
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pg_admin, spawn_app, Event};

/// Parses the Prometheus text format into `name{labels}` → value.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(app: &common::TestApp) -> HashMap<String, f64> {
    let (status, text) = app.get(&format!("{}/metrics", app.base)).await;
    assert_eq!(status, 200);
    parse_exposition(&text)
}

fn value(metrics: &HashMap<String, f64>, key: &str) -> f64 {
    metrics.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let (status, body) = app.get(&format!("{}/healthz", app.base)).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = app.get(&format!("{}/readyz", app.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"ready\""), "{body}");

    let before = scrape(&app).await;
    assert_eq!(value(&before, "chat_build_info{version=\"0.1.0\"}"), 1.0);
    // Every family is there before anything happened (at zero in a fresh
    // process; this file's tests share one).
    let families = [
        "chat_messages_stored_total",
        "chat_messages_delivered_total",
        "chat_stream_resyncs_total",
        "chat_stream_write_timeouts_total",
        "chat_stream_refused_total",
        "chat_bus_dropped_total",
        "chat_bus_resyncs_total",
        "chat_member_list_reads_total{how=\"whole\"}",
        "chat_stream_connections",
        "chat_rooms_active",
        "chat_fanout_seconds_count",
        "chat_db_seconds_count{op=\"insert_messages\"}",
        "chat_requests_shed_total",
        "chat_request_queued_seconds_count",
        "chat_moderation_total{what=\"remove\"}",
        "chat_moderation_total{what=\"report\"}",
        "chat_blocks_total{what=\"block\"}",
        "chat_retention_deleted_total{what=\"messages\"}",
    ];
    for family in families {
        assert!(before.contains_key(family), "{family} missing from a fresh server's metrics");
    }

    let mut ana = app.join("ana", "metrics").await;
    let mut bob = app.join("bob", "metrics").await;
    ana.next().await; // bob joined
    for i in 0..3 {
        ana.send_and_ack(&format!("m{i}"), "hello").await;
        // Both pages, the sender's included, have their copy.
        ana.next_message().await;
        bob.next_message().await;
    }
    let after = scrape(&app).await;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(moved("chat_messages_stored_total"), 3.0);
    // Each message reached both open pages.
    assert_eq!(moved("chat_messages_delivered_total"), 6.0);
    assert_eq!(value(&after, "chat_stream_connections"), 2.0);
    assert_eq!(value(&after, "chat_rooms_active"), 1.0);
    // Sampled: each connection's first write, then one in 16.
    assert_eq!(moved("chat_fanout_seconds_count"), 2.0);
    // Stored in groups: one timing per transaction, at least one.
    assert!(value(&after, "chat_db_seconds_count{op=\"insert_messages\"}") >= 1.0);
}

#[test]
fn bad_settings_stop_the_server_with_a_clear_message() {
    let cases: [(&[&str], &str); 3] = [
        (&["--db-max-connections", "0"], "--db-max-connections"),
        (&["--addr", "not-an-address"], "--addr"),
        (&["--heartbeat-secs", "30", "--idle-timeout-secs", "10"], "--idle-timeout-secs"),
    ];
    for (args, mentions) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("DATABASE_URL", "sqlite::memory:")
            .output()
            .expect("server runs");
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_closes_streams_with_going_away_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0", "--log", "info"])
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("chat.db").display()))
        .env("LEPTOS_SITE_ROOT", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                return rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse::<u16>().unwrap();
            }
        }
        panic!("the server never said where it listens");
    })
    .await
    .unwrap();

    let http = reqwest::Client::new();
    let page =
        http.get(format!("http://127.0.0.1:{port}/chat_room?user_id=ana&channel_id=r")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/stream")).await.unwrap();
    let mut client = common::Client::new(ws);
    client
        .send(&app::protocol::ClientFrame::Hello {
            channel_id: "r".into(),
            user_id: "ana".into(),
            after_seq: 0,
            token: None,
        })
        .await;
    client.next().await; // welcome

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(client.next_event().await, Event::Closed(Some(1001)));
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}

const PG: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::test]
async fn readiness_follows_the_database_going_away_and_coming_back() {
    let db = format!("chat_ready_{}", std::process::id());
    pg_admin(&format!("CREATE DATABASE {db}")).await;
    let app = common::spawn_app_with(|c| c.database_url = format!("{PG}/{db}")).await;
    let ready = || async { app.get(&format!("{}/readyz", app.base)).await };
    assert_eq!(ready().await.0, 200);

    // The database refuses connections and drops the open ones.
    pg_admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).await;
    pg_admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")).await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    // Liveness is about the process, not its dependencies.
    assert_eq!(app.get(&format!("{}/healthz", app.base)).await.0, 200);

    pg_admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    drop(app);
    pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// The bundle goes out as it was compressed at build time, in the
/// encoding the browser accepts; its content-hashed files are kept by
/// browsers for good and the pages name exactly those; anything else is
/// revalidated; pages are compressed as they go out.
#[tokio::test]
async fn the_bundle_and_the_pages_go_out_compressed() {
    use std::io::Read;
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let wasm: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let wasm_name = "embedded-chat.0123456789abcdef.wasm";
    std::fs::write(pkg.join(wasm_name), &wasm).unwrap();
    std::fs::write(pkg.join(format!("{wasm_name}.br")), b"as brotli").unwrap();
    std::fs::write(pkg.join(format!("{wasm_name}.gz")), b"as gzip").unwrap();
    std::fs::write(pkg.join("embedded-chat.fedcba9876543210.js"), b"export default 1;").unwrap();
    std::fs::write(pkg.join("embedded-chat.00000000ffffffff.css"), b"body {}").unwrap();
    std::fs::write(pkg.join("notes.txt"), b"not hashed").unwrap();
    let root = site.path().display().to_string();
    let app = common::spawn_app_with(|config| config.site_root = Some(root)).await;
    let url = format!("{}/pkg/{wasm_name}", app.base);
    let get = |accept: &str| app.http.get(&url).header("accept-encoding", accept).send();

    let brotli = get("gzip, deflate, br").await.unwrap();
    assert_eq!(brotli.status(), 200);
    assert_eq!(brotli.headers()["content-encoding"], "br");
    assert_eq!(brotli.headers()["content-type"], "application/wasm");
    assert_eq!(brotli.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(brotli.headers()["vary"], "accept-encoding");
    assert_eq!(brotli.bytes().await.unwrap().as_ref(), b"as brotli");
    let gzip = get("gzip").await.unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.bytes().await.unwrap().as_ref(), b"as gzip");
    let plain = get("identity").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let last_modified = plain.headers()["last-modified"].clone();
    assert_eq!(plain.bytes().await.unwrap().as_ref(), wasm.as_slice());
    let again = app.http.get(&url).header("if-modified-since", last_modified).send().await.unwrap();
    assert_eq!(again.status(), 304, "a browser that has the file downloads nothing");
    assert_eq!(again.headers()["cache-control"], "public, max-age=31536000, immutable");

    // A name without a hash may change its content: asked again each time.
    let unhashed = app.http.get(format!("{}/pkg/notes.txt", app.base)).send().await.unwrap();
    assert_eq!(unhashed.status(), 200);
    assert_eq!(unhashed.headers()["cache-control"], "no-cache");
    // Nor is a missing file (of an older build, say) kept.
    let gone = app.http.get(format!("{}/pkg/embedded-chat.1111111111111111.wasm", app.base)).send().await;
    let gone = gone.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.headers()["cache-control"], "no-cache");

    let page_url = format!("{}/chat_room?user_id=ana&channel_id=lobby", app.base);
    let page = app.http.get(&page_url).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-encoding"], "gzip");
    assert_eq!(page.headers()["cache-control"], "no-cache, private");
    let compressed = page.bytes().await.unwrap();
    let mut html = String::new();
    flate2::read::GzDecoder::new(compressed.as_ref()).read_to_string(&mut html).unwrap();
    assert!(
        html.contains("lobby") && html.len() > compressed.len(),
        "{} bytes sent for {}",
        compressed.len(),
        html.len()
    );
    // The page asks for the files of the bundle the server found.
    for name in [wasm_name, "embedded-chat.fedcba9876543210.js", "embedded-chat.00000000ffffffff.css"] {
        assert!(html.contains(&format!("\"/pkg/{name}\"")), "{name} in {html}");
    }
}

/// A page on a freshly started server answers at once: several servers
/// starting side by side (as the tests' runtimes do, one thread each), each
/// asked for its first pages all together, never leave one unanswered.
#[test]
fn first_pages_of_fresh_servers_all_answer() {
    // Before the route list was made once per process, 4 × 6 stalled a page
    // in four runs out of five.
    const THREADS: usize = 4;
    const SERVERS_EACH: usize = 6;
    let all_done = std::sync::Arc::new(tokio::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let all_done = all_done.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async move {
                    let mut slow = Vec::new();
                    for server in 0..SERVERS_EACH {
                        let app = common::spawn_app().await;
                        let mut paths: Vec<String> = (0..4)
                            .map(|user| format!("/chat_room?user_id=u{user}&channel_id=r{thread}x{server}"))
                            .collect();
                        paths.push("/chat_room".to_owned());
                        paths.push("/".to_owned());
                        let asks = paths.iter().map(|path| {
                            let started = std::time::Instant::now();
                            let request = app.http.get(format!("{}{path}", app.base)).send();
                            async move {
                                let answer = tokio::time::timeout(Duration::from_secs(5), request).await;
                                let status = answer.ok().and_then(Result::ok).map(|r| r.status().as_u16());
                                (path.clone(), status, started.elapsed())
                            }
                        });
                        for (path, status, took) in futures::future::join_all(asks).await {
                            if status != Some(200) {
                                slow.push(format!("{path}: {status:?} after {took:?}"));
                            }
                        }
                    }
                    // Every runtime stays up until all are done (what
                    // another's server might still need).
                    all_done.wait().await;
                    slow
                })
            })
        })
        .collect();
    let slow: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(slow.is_empty(), "pages not answered within 5 s on fresh servers: {slow:#?}");
}

/// More pages at once than the node admits: every request is answered at
/// once, either with its page or with a short page that retries by itself
/// (503, `Retry-After`, a refresh), and the turned-away are counted; the
/// node stays well (its probe and its rooms answer).
#[tokio::test]
async fn a_crowd_beyond_capacity_is_told_to_come_back_never_left_waiting() {
    let app = common::spawn_app_with(|config| {
        config.pages_in_flight = 1;
        config.page_queue = 0;
    })
    .await;
    let shed_before = value(&scrape(&app).await, "chat_requests_shed_total");
    let asks = (0..40).map(|i| {
        let url = format!("{}/chat_room?user_id=p{i}&channel_id=crowd", app.base);
        app.http.get(url).header("accept", "text/html").send()
    });
    let mut turned_away = 0;
    for answer in futures::future::join_all(asks).await {
        let answer = answer.expect("answered");
        match answer.status().as_u16() {
            200 => {}
            503 => {
                turned_away += 1;
                let retry: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=4).contains(&retry), "retry after {retry} s");
                assert_eq!(answer.headers()["cache-control"], "no-store");
                let page = answer.text().await.unwrap();
                assert!(
                    page.contains(&format!("<meta http-equiv=\"refresh\" content=\"{retry}\">")),
                    "{page}"
                );
                assert!(page.contains("The room opens in a moment"), "{page}");
            }
            other => panic!("answered {other}"),
        }
    }
    assert!(turned_away > 0, "40 pages at once with one slot and no line: some must be turned away");
    let shed = value(&scrape(&app).await, "chat_requests_shed_total") - shed_before;
    assert!(shed >= turned_away as f64, "{shed} counted for {turned_away} turned away");
    // The probe is never turned away, and a page asked for alone is served.
    assert_eq!(app.get(&format!("{}/healthz", app.base)).await.0, 200);
    assert_eq!(app.open_room("late", "crowd").await.0, 200);
}
