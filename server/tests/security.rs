//! Bad and hostile input: every refusal says why, stores nothing, delivers
//! nothing, and leaves the connection and the server up.
mod common;

use std::time::Duration;

use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use common::{list_items, spawn_app, spawn_app_with, Event, TestApp};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

/// The room's stored messages, as its page shows them.
async fn stored(app: &TestApp, user: &str, room: &str) -> Vec<String> {
    let (_, html) = app.open_room(user, room).await;
    list_items(&html, "messages")
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The websocket handshake with these extra header lines: the open socket,
/// or the status code when refused.
async fn handshake(app: &TestApp, headers: &[(&'static str, &str)]) -> Result<Socket, u16> {
    let mut request = format!("ws://127.0.0.1:{}/api/stream", app.port).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected handshake error {other}"),
    }
}

/// Answers the websocket handshake gets from this origin: the status code
/// when refused.
async fn upgrade_status(app: &TestApp, origin: &str) -> Result<(), u16> {
    handshake(app, &[("origin", origin)]).await.map(drop)
}

#[tokio::test]
async fn a_websocket_upgrade_from_another_site_is_refused() {
    let app = spawn_app().await;
    assert_eq!(upgrade_status(&app, "https://evil.example").await, Err(403));
    assert_eq!(upgrade_status(&app, "null").await, Err(403));
    // The chat's own pages connect.
    assert_eq!(upgrade_status(&app, &format!("http://127.0.0.1:{}", app.port)).await, Ok(()));
}

#[tokio::test]
async fn an_allowed_origin_may_connect() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://game.example".into()]).await;
    assert_eq!(upgrade_status(&app, "https://game.example").await, Ok(()));
    assert_eq!(upgrade_status(&app, "https://evil.example").await, Err(403));
}

/// A server function's call from a page of `origin`, as the JavaScript
/// client makes it.
async fn call_from(app: &TestApp, origin: &str, function: &str, form: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/{function}", app.base))
        .header("origin", origin)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

fn granted(response: &reqwest::Response) -> Option<&str> {
    response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_allowed_site_reads_the_server_functions_answers_and_no_other_does() {
    let game = "https://game.example";
    let app = spawn_app_with(|c| c.allowed_origins = vec![game.into()]).await;
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/join_room", app.base))
        .header("origin", game)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(granted(&preflight), Some(game));
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");

    let joined = call_from(&app, game, "join_room", "channel_id=r&user_id=ana").await;
    assert_eq!(joined.status(), 200);
    assert_eq!(granted(&joined), Some(game));
    assert!(joined.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("origin")));
    let room: serde_json::Value = joined.json().await.unwrap();
    assert_eq!(room["members"], serde_json::json!(["ana"]));
    // A refusal too: the page reads its sentence.
    let refused = call_from(&app, game, "older_messages", "channel_id=r&user_id=bob&before_seq=5").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(granted(&refused), Some(game));
    assert!(refused.text().await.unwrap().contains("not a member"), "a sentence for people");

    // Another site: refused, and never told anything it could read.
    let evil = call_from(&app, "https://evil.example", "join_room", "channel_id=r&user_id=eve").await;
    assert_eq!(evil.status(), 403);
    assert_eq!(granted(&evil), None);
    let evil_preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/join_room", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(granted(&evil_preflight), None);
    // The server API (keys, server to server) never answers a browser.
    let api = app.http.get(format!("{}/api/v1/rooms", app.base)).header("origin", game).send().await.unwrap();
    assert_eq!(granted(&api), None);
    // The chat's own pages need no grant.
    let own = call_from(&app, &app.base, "join_room", "channel_id=r&user_id=cy").await;
    assert_eq!((own.status().as_u16(), granted(&own)), (200, None));
    let (_, html) = app.open_room("ana", "r").await;
    assert_eq!(list_items(&html, "member-list"), vec!["ana", "cy"], "eve never joined");
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    for (function, form) in [
        ("add_user", vec![("channel_id", "r"), ("user_id", "ana"), ("new_user", "mallory")]),
        (
            "send_message",
            vec![("channel_id", "r"), ("user_id", "ana"), ("client_msg_id", "x1"), ("body", "pwned")],
        ),
        ("leave_room", vec![("channel_id", "r"), ("user_id", "ana")]),
    ] {
        let body: String = form.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let response = app
            .http
            .post(format!("{}/api/{function}", app.base))
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{function}");
        assert!(response.text().await.unwrap().contains("Cross-site request refused"));
    }
    ana.expect_silence(QUIET).await;
    let (_, html) = app.open_room("ana", "r").await;
    assert_eq!(list_items(&html, "member-list"), vec!["ana"]);
    assert!(list_items(&html, "messages").is_empty());
}

#[tokio::test]
async fn a_message_over_the_configured_length_is_refused_with_the_limit() {
    let app = spawn_app_with(|c| c.max_message_chars = 10).await;
    let mut ana = app.join("ana", "r").await;
    ana.say("long", "eleven char").await;
    match ana.next().await {
        ServerFrame::Error { code: ErrorCode::InvalidInput, message, client_msg_id, .. } => {
            assert_eq!(message, "The message is too long (at most 10 characters).");
            assert_eq!(client_msg_id.as_deref(), Some("long"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(ana.send_and_ack("ok", "ten chars!").await, 1);
    assert_eq!(stored(&app, "ana", "r").await, vec!["ana: ten chars!"]);
}

#[tokio::test]
async fn control_characters_are_refused_in_messages_and_ids() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    ana.say("bell", "ring\u{7}").await;
    assert!(matches!(
        ana.next().await,
        ServerFrame::Error { code: ErrorCode::InvalidInput, message, .. }
            if message == "The message contains characters that are not allowed."
    ));
    let response = app.post_fn("join_room", &[("channel_id", "r"), ("user_id", "evil\u{0}user")]).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not allowed"));
    assert!(stored(&app, "ana", "r").await.is_empty());
}

#[tokio::test]
async fn an_oversize_frame_closes_only_that_connection_and_stores_nothing() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    ana.next().await; // bob joined
    let huge = serde_json::to_string(&ClientFrame::Send {
        client_msg_id: "big".into(),
        body: "x".repeat(64 * 1024),
    })
    .unwrap();
    ana.send_raw(Message::text(huge)).await;
    assert_eq!(ana.next_event().await, Event::Closed(Some(1009)), "closed as too big");
    bob.expect_silence(QUIET).await;
    // The server and the room carry on.
    assert_eq!(bob.send_and_ack("hi", "still here").await, 1);
    assert_eq!(stored(&app, "bob", "r").await, vec!["bob: still here"]);
}

#[tokio::test]
async fn a_flood_over_the_rate_is_refused_while_the_connection_stays_up() {
    let app = spawn_app_with(|c| {
        c.messages_per_sec = 1;
        c.message_burst = 5;
    })
    .await;
    let mut ana = app.join("ana", "r").await;
    for n in 0..12 {
        ana.say(&format!("m{n}"), &format!("spam {n}")).await;
    }
    let (mut acked, mut refused) = (0, 0);
    while acked + refused < 12 {
        match ana.next().await {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { message, .. } => {
                assert_eq!(message, "You are sending messages too fast. Please wait a moment.");
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!((acked, refused), (5, 7));
    ana.send(&ClientFrame::Ping).await;
    loop {
        match ana.next().await {
            ServerFrame::Pong => break,
            ServerFrame::Message(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored(&app, "ana", "r").await.len(), 5);
    // The no-JavaScript path is limited too, with 429.
    let response = app
        .post_fn(
            "send_message",
            &[("channel_id", "r"), ("user_id", "ana"), ("client_msg_id", "f1"), ("body", "more")],
        )
        .await;
    assert_eq!(response.status(), 429);
    // Another user is not slowed down by Ana.
    let mut bob = app.join("bob", "r").await;
    assert_eq!(bob.send_and_ack("b1", "hello").await, 6);
}

#[tokio::test]
async fn too_many_connections_from_one_address_are_refused_until_one_closes() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.raw_stream().await);
    }
    let url = format!("ws://127.0.0.1:{}/api/stream", app.port);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("Too many chat connections"), "{body}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Closing one frees its place.
    let mut first = open.remove(0);
    first.ws.close(None).await.unwrap();
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a place was freed");
}

#[tokio::test]
async fn behind_a_balancer_the_address_is_the_one_it_added_not_what_the_client_claims() {
    let app = spawn_app_with(|c| {
        c.max_connections_per_ip = 1;
        c.trust_forwarded_for = true;
    })
    .await;
    let forwarded_for =
        |lines: &[&'static str]| lines.iter().map(|line| ("x-forwarded-for", *line)).collect::<Vec<_>>();
    let _open = handshake(&app, &forwarded_for(&["6.6.6.6", "1.2.3.4"])).await.unwrap();
    // Whatever the client wrote itself, in a line of its own or before the
    // balancer's entry, it is the balancer's entry (the last) that counts.
    for claims in [&["7.7.7.7", "1.2.3.4"][..], &["8.8.8.8, 1.2.3.4"], &["1.2.3.4"]] {
        assert_eq!(handshake(&app, &forwarded_for(claims)).await.err(), Some(429), "{claims:?}");
    }
    assert!(handshake(&app, &forwarded_for(&["1.2.3.4", "5.6.7.8"])).await.is_ok(), "another player");
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;
    let response = app.get_response(&format!("{}/", app.base)).await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["referrer-policy"], "same-origin");

    // A room page allows exactly its own inline scripts, by nonce.
    let url = format!("{}{}", app.base, app::pages::chat_room::room_href("r", "ana"));
    let response = app.get_response(&url).await;
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = response.text().await.unwrap();
    let nonce = policy.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).expect("a nonce");
    assert!(
        html.contains(&format!("<script type=\"module\" nonce=\"{nonce}\"")),
        "hydration script carries it"
    );
    assert!(policy.contains("frame-ancestors *"), "{policy}");
    let framed = spawn_app_with(|c| c.frame_ancestors = "https://game.example".into()).await;
    let (_, _) = framed.open_room("ana", "r").await;
    let url = format!("{}{}", framed.base, app::pages::chat_room::room_href("r", "ana"));
    let response = framed.get_response(&url).await;
    assert!(response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .ends_with("frame-ancestors https://game.example"));
}

#[tokio::test]
async fn a_send_or_request_that_cannot_be_read_is_answered_by_its_id() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    for (frame, sent, asked) in [
        (r#"{"type":"send","client_msg_id":"m1","body":42}"#, Some("m1"), None),
        (r#"{"type":"act","request_id":"r1","request":{"remove":{"seq":"3"}}}"#, None, Some("r1")),
        (r#"{"type":"send","body":"no id"}"#, None, None),
    ] {
        ana.send_raw(Message::Text(frame.into())).await;
        match ana.next().await {
            ServerFrame::Error { code: ErrorCode::BadFrame, client_msg_id, request_id, .. } => {
                assert_eq!((client_msg_id.as_deref(), request_id.as_deref()), (sent, asked), "{frame}");
            }
            other => panic!("{frame}: {other:?}"),
        }
    }
    // Nothing stored, the connection still up.
    let acked = ana.send_and_ack("m2", "still here").await;
    assert_eq!(acked, 1);
}

/// A small deterministic generator (xorshift), so a failing case replays.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.below(300) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 12] =
            ["", "a", "send", "hello", "ping", "\u{0}", "é", "\"", "\\", "<script>", "💥", "0123456789"];
        (0..self.below(6)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }

    /// Random JSON, biased towards the shapes of real frames.
    fn json(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::{json, Value};
        match self.below(if depth > 2 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.next() as i64),
            2 => json!(self.string()),
            3 => json!(self.below(2) == 0),
            4 => json!(f64::from(self.next() as u32) / 7.0),
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => {
                const TYPES: [&str; 5] = ["hello", "send", "ping", "pong", "welcome"];
                const KEYS: [&str; 6] =
                    ["channel_id", "user_id", "after_seq", "client_msg_id", "body", "token"];
                let mut object = serde_json::Map::new();
                if self.below(4) != 0 {
                    object.insert("type".into(), json!(TYPES[self.below(5) as usize]));
                }
                for _ in 0..self.below(5) {
                    object.insert(KEYS[self.below(6) as usize].into(), self.json(depth + 1));
                }
                Value::Object(object)
            }
        }
    }

    fn frame(&mut self) -> Message {
        match self.below(3) {
            0 => Message::binary(self.bytes()),
            1 => Message::text(String::from_utf8_lossy(&self.bytes()).into_owned()),
            _ => Message::text(self.json(0).to_string()),
        }
    }
}

#[tokio::test]
async fn random_frames_never_break_the_stream_or_the_server() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "fuzz").await;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    // After the hello: every frame gets an answer or is ignored, and the
    // connection stays open.
    for round in 0..400 {
        ana.send_raw(noise.frame()).await;
        if round % 50 == 49 {
            ana.send(&ClientFrame::Ping).await;
            loop {
                match ana.next_event().await {
                    Event::Frame(ServerFrame::Pong) => break,
                    Event::Frame(_) => continue,
                    Event::Closed(code) => panic!("closed by frame noise at round {round}: {code:?}"),
                }
            }
        }
    }
    // As a first frame: refused with a close code, never a dropped socket.
    for _ in 0..60 {
        let mut client = app.raw_stream().await;
        client.send_raw(noise.frame()).await;
        loop {
            match client.next_event().await {
                Event::Frame(_) => continue,
                Event::Closed(code) => {
                    assert!(matches!(code, Some(4400) | Some(4403) | Some(1009)), "closed with {code:?}");
                    break;
                }
            }
        }
    }
    assert_eq!(app.get(&format!("{}/healthz", app.base)).await.0, 200);
    // Past the answers to the noise, a real message goes through.
    ana.say("after-fuzz", "still fine").await;
    loop {
        match ana.next().await {
            ServerFrame::Ack { client_msg_id, .. } if client_msg_id == "after-fuzz" => break,
            ServerFrame::Error { client_msg_id: Some(id), message, .. } if id == "after-fuzz" => {
                panic!("refused: {message}")
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn the_stream_refuses_requests_that_are_not_websocket_upgrades() {
    let app = spawn_app().await;
    let url = format!("{}/api/stream", app.base);
    let (status, body) = app.get(&url).await;
    assert_eq!((status, body.as_str()), (400, "This endpoint only speaks websocket."));

    let upgrade = |version: &'static str, key: &'static str| {
        app.http
            .get(&url)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", version)
            .header("sec-websocket-key", key)
            .send()
    };
    let old_version = upgrade("8", "dGhlIHNhbXBsZSBub25jZQ==").await.unwrap();
    assert_eq!(old_version.status().as_u16(), 426);
    assert_eq!(old_version.headers()["sec-websocket-version"], "13");

    let bad_key = upgrade("13", "short").await.unwrap();
    assert_eq!(bad_key.status().as_u16(), 400);
    assert_eq!(bad_key.text().await.unwrap(), "The websocket key is malformed.");
}
