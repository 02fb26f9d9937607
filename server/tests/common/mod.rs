//! Test harness: starts the real server on port 0 with a fresh SQLite file
//! and talks to it as a browser does, over HTTP and the room stream.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use app::protocol::{ClientFrame, ServerFrame};
use futures::{SinkExt, StreamExt};
use server::config::Config;
use server::startup::Application;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an HTTP answer: generous (a loaded CI
/// machine is slow); a hang still fails the test.
pub const HTTP_WAIT: Duration = Duration::from_secs(20);

/// How long a test waits for a frame that should come.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server of a test, in this process. It derefs to its
/// [`Endpoint`], through which tests talk to it.
pub struct TestApp {
    endpoint: Endpoint,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _db: Arc<TestDatabase>,
}

impl std::ops::Deref for TestApp {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// A server's address, and the ways a browser talks to it.
pub struct Endpoint {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
}

impl Endpoint {
    pub fn new(port: u16) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_WAIT)
            .build()
            .unwrap();
        Endpoint { base: format!("http://127.0.0.1:{port}"), port, http }
    }
}

/// Whether the suite runs on PostgreSQL and Redis (`CHAT_TEST_BACKEND=postgres`)
/// rather than SQLite and the in-process bus.
pub fn on_postgres_and_redis() -> bool {
    std::env::var("CHAT_TEST_BACKEND").as_deref() == Ok("postgres")
}

pub const REDIS: &str = "redis://127.0.0.1:6379/";

/// A Redis channel prefix of its own for one test (tests share the Redis).
pub fn unique_redis_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("chat-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The database of one test: a SQLite file in a temp dir (default), or,
/// with `CHAT_TEST_BACKEND=postgres`, a fresh database on the PostgreSQL
/// at 127.0.0.1:5432 that is dropped when the test ends.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

impl TestDatabase {
    async fn create() -> (TestDatabase, String) {
        if on_postgres_and_redis() {
            TestDatabase::postgres().await
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("chat.db").display());
            (TestDatabase::Sqlite(dir), url)
        }
    }

    pub async fn postgres() -> (TestDatabase, String) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("chat_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        pg_admin(&format!("CREATE DATABASE {name}")).await;
        let url = format!("{PG_SERVER}/{name}");
        (TestDatabase::Postgres(name), url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres(name) = self {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            // Drop runs inside the test's runtime: do the async work on a
            // thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(pg_admin(&sql));
            })
            .join();
        }
    }
}

/// Runs one statement on the PostgreSQL server as its administrator.
pub async fn pg_admin(sql: &str) {
    use sea_orm::ConnectionTrait;
    let admin =
        sea_orm::Database::connect(format!("{PG_SERVER}/postgres")).await.expect("PostgreSQL is running");
    admin.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with a fresh database and settings adjusted by `tune`.
pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    let (db, url) = TestDatabase::create().await;
    let mut config = Config::for_tests(url);
    if on_postgres_and_redis() {
        config.redis_url = Some(REDIS.to_owned());
        config.redis_prefix = unique_redis_prefix();
    }
    tune(&mut config);
    TestApp::start_with(config, Arc::new(db)).await
}

/// Starts `count` nodes sharing one fresh PostgreSQL database and one
/// Redis prefix (whatever the suite's backend), each on its own port with
/// its own pool, bus connections and hub.
pub async fn spawn_nodes(count: usize, tune: impl Fn(&mut Config)) -> Vec<TestApp> {
    let (db, url) = TestDatabase::postgres().await;
    let db = Arc::new(db);
    let mut config = Config::for_tests(url);
    config.redis_url = Some(REDIS.to_owned());
    config.redis_prefix = unique_redis_prefix();
    tune(&mut config);
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(TestApp::start_with(config.clone(), db.clone()).await);
    }
    nodes
}

impl TestApp {
    async fn start_with(config: Config, db: Arc<TestDatabase>) -> TestApp {
        let mut app = TestApp { endpoint: Endpoint::new(0), config, stop: None, running: None, _db: db };
        app.start().await;
        app
    }

    /// Starts (or restarts) the server on this app's port and database.
    async fn start(&mut self) {
        let server = Application::build(self.config.clone()).await.expect("server starts");
        self.config.addr.set_port(server.port());
        self.endpoint = Endpoint::new(server.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.running = Some(tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        })));
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.expect("server task").expect("server stops cleanly");
        }
    }

    /// Stops the server and starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }
}

impl Endpoint {
    /// Opens a room page as a browser would; returns status and HTML.
    pub async fn open_room(&self, user_id: &str, channel_id: &str) -> (u16, String) {
        let url = format!("{}{}", self.base, app::pages::chat_room::room_href(channel_id, user_id));
        self.get(&url).await
    }

    pub async fn get(&self, url: &str) -> (u16, String) {
        let response = self.get_response(url).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A GET, headers included.
    pub async fn get_response(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("GET")
    }

    /// Posts a form to a server function, as the page's scripts do
    /// (asking for JSON).
    pub async fn post_fn(&self, name: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form(name, form, "application/json").await
    }

    /// Posts a form to a server function as a browser without JavaScript
    /// does (asking for HTML, so the answer is a redirect).
    pub async fn post_plain_form(&self, name: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form(name, form, "text/html").await
    }

    async fn post_form(&self, name: &str, form: &[(&str, &str)], accept: &str) -> reqwest::Response {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    app::pages::chat_room::encode_query_value(k),
                    app::pages::chat_room::encode_query_value(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        self.http
            .post(format!("{}/api/{name}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", accept)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// Opens the room stream, says hello and returns after the welcome.
    pub async fn connect(&self, user_id: &str, channel_id: &str, after_seq: i64) -> (Client, Vec<String>) {
        let mut client = self.raw_stream().await;
        client
            .send(&ClientFrame::Hello {
                channel_id: channel_id.into(),
                user_id: user_id.into(),
                after_seq,
                token: None,
            })
            .await;
        match client.next().await {
            ServerFrame::Welcome { members, .. } => (client, members),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Opens the stream and returns the raw welcome frame.
    pub async fn hello(&self, user_id: &str, channel_id: &str, after_seq: i64) -> (Client, ServerFrame) {
        let mut client = self.raw_stream().await;
        client
            .send(&ClientFrame::Hello {
                channel_id: channel_id.into(),
                user_id: user_id.into(),
                after_seq,
                token: None,
            })
            .await;
        let welcome = client.next().await;
        (client, welcome)
    }

    /// A stream connection that has not said anything yet.
    pub async fn raw_stream(&self) -> Client {
        let url = format!("ws://127.0.0.1:{}/api/stream", self.port);
        let connecting = tokio_tungstenite::connect_async_with_config(url, None, true);
        let (ws, _) = tokio::time::timeout(WAIT, connecting)
            .await
            .expect("websocket connects in time")
            .expect("websocket connects");
        Client::new(ws)
    }

    /// A stream connection whose socket has a small receive buffer (a page
    /// on a slow link, or one that stopped reading).
    pub async fn raw_stream_with_receive_buffer(&self, bytes: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(([127, 0, 0, 1], self.port).into()).await.unwrap();
        let url = format!("ws://127.0.0.1:{}/api/stream", self.port);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.unwrap();
        Client { ws, set_aside: Default::default() }
    }

    /// Joins a room (as opening its page does) and connects its stream.
    pub async fn join(&self, user_id: &str, channel_id: &str) -> Client {
        let (status, _) = self.open_room(user_id, channel_id).await;
        assert_eq!(status, 200);
        self.connect(user_id, channel_id, 0).await.0
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames that arrived while [`Client::send_and_ack`] waited for its
    /// ack (a page's own copy of its message may come before or after the
    /// ack); the next reads return them first.
    set_aside: std::collections::VecDeque<ServerFrame>,
}

impl Client {
    pub fn new(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Client { ws, set_aside: Default::default() }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).unwrap();
        let sending = self.ws.send(Message::text(text));
        tokio::time::timeout(WAIT, sending).await.expect("frame sent in time").expect("send frame");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send raw");
    }

    pub async fn say(&mut self, client_msg_id: &str, body: &str) {
        self.send(&ClientFrame::Send { client_msg_id: client_msg_id.into(), body: body.into() }).await;
    }

    /// The next frame (panics after [`WAIT`]), presence and typing aside
    /// (see [`Client::next_event`]).
    pub async fn next(&mut self) -> ServerFrame {
        match self.next_event().await {
            Event::Frame(frame) => frame,
            Event::Closed(code) => panic!("stream closed ({code:?}) while a frame was expected"),
        }
    }

    /// The next frame or the close. Presence and typing frames are skipped:
    /// they come whenever pages open, close or type, and only the tests
    /// about them read them (with [`Client::next_any_event`]).
    pub async fn next_event(&mut self) -> Event {
        loop {
            match self.next_any_event().await {
                Event::Frame(frame) if is_ephemeral(&frame) => continue,
                event => return event,
            }
        }
    }

    /// The next frame, presence and typing included (panics after [`WAIT`]).
    pub async fn next_any(&mut self) -> ServerFrame {
        match self.next_any_event().await {
            Event::Frame(frame) => frame,
            Event::Closed(code) => panic!("stream closed ({code:?}) while a frame was expected"),
        }
    }

    /// The next frame of any kind, or the close.
    pub async fn next_any_event(&mut self) -> Event {
        if let Some(frame) = self.set_aside.pop_front() {
            return Event::Frame(frame);
        }
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame within the wait");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Event::Frame(serde_json::from_str(text.as_str()).expect("valid server frame"))
                }
                Some(Ok(Message::Close(frame))) => return Event::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    /// Asserts nothing but presence or typing arrives for a while.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, self.ws.next()).await {
            if let Message::Text(text) = message {
                match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(frame) if is_ephemeral(&frame) => continue,
                    _ => panic!("expected no frame, got {text}"),
                }
            }
        }
    }

    /// Asserts no frame at all arrives for a while, presence and typing
    /// included.
    pub async fn expect_total_silence(&mut self, wait: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(wait, self.ws.next()).await {
            panic!("expected no frame, got {text}");
        }
    }

    /// Reads frames until a stored message arrives.
    pub async fn next_message(&mut self) -> app::protocol::ChatMessage {
        loop {
            if let ServerFrame::Message(m) = self.next().await {
                return m;
            }
        }
    }

    /// Sends a message and waits for its ack; returns the seq.
    pub async fn send_and_ack(&mut self, client_msg_id: &str, body: &str) -> i64 {
        self.say(client_msg_id, body).await;
        let mut waiting = Vec::new();
        loop {
            match self.next().await {
                ServerFrame::Ack { client_msg_id: id, seq } if id == client_msg_id => {
                    self.set_aside.extend(waiting);
                    return seq;
                }
                ServerFrame::Error { message, .. } => panic!("send refused: {message}"),
                other => waiting.push(other),
            }
        }
    }
}

/// Frames about who is online or typing: never stored, they come whenever
/// pages open, close or type.
pub fn is_ephemeral(frame: &ServerFrame) -> bool {
    // A roster is what a busy room sends for member and presence changes.
    matches!(frame, ServerFrame::Presence { .. } | ServerFrame::Typing { .. } | ServerFrame::Roster { .. })
}

#[derive(Debug, PartialEq)]
pub enum Event {
    Frame(ServerFrame),
    Closed(Option<u16>),
}

/// The text of the HTML list items inside the element with `class="{class}"`.
pub fn list_items(html: &str, class: &str) -> Vec<String> {
    let Some(start) = html.find(&format!("class=\"{class}")) else { return Vec::new() };
    let rest = &html[start..];
    let end = rest.find("</ol>").or_else(|| rest.find("</ul>")).unwrap_or(rest.len());
    rest[..end]
        .split("<li")
        .skip(1)
        .map(|item| {
            // A line's menu (its actions) is not what the line says.
            let item = without_menus(item);
            let mut text = String::new();
            let mut in_tag = true;
            for c in item.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            decode_entities(text.trim())
        })
        .collect()
}

/// `html` without its `<details>…</details>` elements (the lines' menus).
fn without_menus(html: &str) -> String {
    let mut rest = html;
    let mut kept = String::new();
    while let Some(start) = rest.find("<details") {
        kept.push_str(&rest[..start]);
        rest = rest[start..].find("</details>").map_or("", |end| &rest[start + end + "</details>".len()..]);
    }
    kept.push_str(rest);
    kept
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Kills (`CLIENT KILL`) every Redis connection of the nodes using
/// `prefix`, as a Redis restart or a network cut would; returns how many.
pub async fn kill_redis_connections(prefix: &str) -> usize {
    let client = redis::Client::open(REDIS).expect("Redis URL");
    let mut admin = client.get_multiplexed_async_connection().await.expect("Redis is running");
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut admin).await.expect("CLIENT LIST");
    let ours = format!(" name={prefix}/");
    let mut killed = 0;
    for line in list.lines().filter(|line| line.contains(&ours)) {
        let Some(id) = line.split(' ').find_map(|field| field.strip_prefix("id=")) else { continue };
        let n: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL");
        killed += n as usize;
    }
    killed
}
