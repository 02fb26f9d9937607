//! The three wire protocols the load generator speaks, and nothing else:
//! how a client joins a room, what a send, a heartbeat and an incoming
//! frame look like. Scenarios only see [`Session`], [`send`], [`ping`]
//! and [`decode`], so a protocol change (a token in our hello, say) is a
//! change here only.
//!
//! - `ours`: join over HTTP (`POST /api/join_room`), then the room stream
//!   `/api/stream` with JSON frames from `chat-protocol`: `hello` →
//!   `welcome`, `send` → `ack` plus the `message` broadcast to the room.
//! - `socketio`: Engine.IO v4 over a websocket (`/socket.io/?EIO=4&
//!   transport=websocket`): open packet `0{…}`, connect `40`, events
//!   `42["name",payload]`; the server pings with `2`, the client answers `3`.
//!   The peer's events are `join`/`joined` and `msg`.
//! - `naive`: `/ws?room=R&user=U`; every text frame is a body.
use std::net::SocketAddr;
use std::time::Duration;

use chat_protocol::{ClientFrame, ServerFrame};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::http::{self, plain};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// Embedded Chat's room stream.
    Ours,
    /// A socket.io 4 server (bench/socketio-peer).
    Socketio,
    /// The naive Rust fan-out (bench/naive-fanout).
    Naive,
}

impl Proto {
    /// The server's name in reports and tables.
    pub fn label(self) -> &'static str {
        match self {
            Proto::Ours => "ours",
            Proto::Socketio => "socket.io",
            Proto::Naive => "naive",
        }
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// An open connection, admitted to its room.
pub struct Session {
    pub ws: Ws,
    /// How often this client must send a heartbeat (our server says so in
    /// its welcome; socket.io pings from its side instead).
    pub heartbeat: Option<Duration>,
    /// Our server: the room's newest seq when the stream opened; the replay
    /// that follows the welcome runs up to it.
    pub last_seq: i64,
    /// Our server: where that replay starts (after this seq).
    pub resume_after: i64,
}

/// One frame from the server, reduced to what the benchmark needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A chat message (`seq` on our server only).
    Message { body: String, seq: Option<i64> },
    /// Our server stored a message this connection sent.
    Ack,
    /// The server refused something; the text says what.
    Error(String),
    /// A frame the client must answer at once (socket.io's ping).
    Reply(Message),
    /// Anything else (presence, pongs, …).
    Other,
}

/// Our server: makes `user` a member of `room` (the page's first request).
pub async fn join_room(addr: SocketAddr, room: &str, user: &str) -> Result<http::Timed, String> {
    let form = format!("channel_id={}&user_id={}", plain(room), plain(user));
    let reply =
        http::post_form(addr, "/api/join_room", &form).await.map_err(|e| format!("join_room: {e}"))?;
    if reply.status != 200 {
        return Err(format!("join_room answered {}", reply.status));
    }
    Ok(reply)
}

/// Opens a connection and joins `room` as `user` (on our server the user
/// must have joined over HTTP first). Returns once the server confirmed.
pub async fn open(proto: Proto, addr: SocketAddr, room: &str, user: &str) -> Result<Session, String> {
    match proto {
        Proto::Ours => open_ours(addr, room, user).await,
        Proto::Socketio => open_socketio(addr, room).await,
        Proto::Naive => {
            let path = format!("/ws?room={}&user={}", plain(room), plain(user));
            let ws = connect(addr, &path).await?;
            Ok(Session { ws, heartbeat: None, last_seq: 0, resume_after: 0 })
        }
    }
}

/// The frame that sends `body` to the room.
pub fn send(proto: Proto, client_msg_id: &str, body: &str) -> Message {
    match proto {
        Proto::Ours => {
            let frame = ClientFrame::Send { client_msg_id: client_msg_id.to_owned(), body: body.to_owned() };
            json(&frame)
        }
        // Bodies are plain ASCII (see `body`), so quoting is all the
        // escaping they need.
        Proto::Socketio => Message::text(format!(r#"42["msg","{body}"]"#)),
        Proto::Naive => Message::text(body),
    }
}

/// The client's heartbeat frame, for protocols where the client pings.
pub fn ping(proto: Proto) -> Option<Message> {
    match proto {
        Proto::Ours => Some(json(&ClientFrame::Ping)),
        Proto::Socketio | Proto::Naive => None,
    }
}

pub fn decode(proto: Proto, text: &str) -> Incoming {
    match proto {
        Proto::Ours => match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::Message(m)) => Incoming::Message { body: m.body, seq: Some(m.seq) },
            Ok(ServerFrame::Ack { .. }) => Incoming::Ack,
            Ok(ServerFrame::Error { message, .. }) => Incoming::Error(message),
            Ok(_) => Incoming::Other,
            Err(err) => Incoming::Error(format!("unreadable frame ({err}): {text:.80}")),
        },
        Proto::Socketio => match socketio_event(text) {
            Some((event, payload)) if event == "msg" => Incoming::Message { body: payload, seq: None },
            Some(_) => Incoming::Other,
            None if text == "2" => Incoming::Reply(Message::text("3")),
            None if text.starts_with("44") => Incoming::Error(format!("socket.io connect error: {text:.80}")),
            None => Incoming::Other,
        },
        Proto::Naive => Incoming::Message { body: text.to_owned(), seq: None },
    }
}

fn json(frame: &ClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).expect("client frames always serialize"))
}

/// `42["event","payload"]` → (event, payload); `None` for other packets.
fn socketio_event(text: &str) -> Option<(String, String)> {
    let array = text.strip_prefix("42")?;
    serde_json::from_str::<(String, String)>(array).ok()
}

/// Small buffers: a client reads small frames, and the load generator may
/// hold 15 000 of them.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0)
}

async fn connect(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    // Frames are small and latency is measured: no Nagle delay.
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .map_err(|e| format!("websocket handshake on {path}: {e}"))?;
    Ok(ws)
}

/// The next text frame, skipping control frames; a close or an error ends
/// the session.
async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(f) => format!("closed by the server: {} {}", u16::from(f.code), f.reason),
                    None => "closed by the server".to_owned(),
                })
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(format!("socket: {err}")),
            None => return Err("connection ended".to_owned()),
        }
    }
}

async fn open_ours(addr: SocketAddr, room: &str, user: &str) -> Result<Session, String> {
    let mut ws = connect(addr, "/api/stream").await?;
    let hello = ClientFrame::Hello {
        channel_id: room.to_owned(),
        user_id: user.to_owned(),
        after_seq: 0,
        token: None,
    };
    ws.send(json(&hello)).await.map_err(|e| format!("hello: {e}"))?;
    loop {
        let text = next_text(&mut ws).await?;
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Welcome { last_seq, resume_after, heartbeat_ms, .. }) => {
                return Ok(Session {
                    ws,
                    heartbeat: Some(Duration::from_millis(u64::from(heartbeat_ms.max(100)))),
                    last_seq,
                    resume_after,
                });
            }
            Ok(ServerFrame::Error { message, .. }) => return Err(format!("hello refused: {message}")),
            Ok(_) => {}
            Err(err) => return Err(format!("unreadable frame before the welcome: {err}")),
        }
    }
}

async fn open_socketio(addr: SocketAddr, room: &str) -> Result<Session, String> {
    let mut ws = connect(addr, "/socket.io/?EIO=4&transport=websocket").await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected the Engine.IO open packet, got {open:.80}"));
    }
    ws.send(Message::text("40")).await.map_err(|e| format!("connect: {e}"))?;
    let join = format!(r#"42["join","{}"]"#, plain(room));
    let mut joining = false;
    loop {
        let text = next_text(&mut ws).await?;
        if text == "2" {
            ws.send(Message::text("3")).await.map_err(|e| format!("pong: {e}"))?;
        } else if text.starts_with("40") && !joining {
            ws.send(Message::text(join.as_str())).await.map_err(|e| format!("join: {e}"))?;
            joining = true;
        } else if text.starts_with("44") {
            return Err(format!("socket.io refused the connection: {text:.80}"));
        } else if socketio_event(&text).is_some_and(|(event, _)| event == "joined") {
            return Ok(Session { ws, heartbeat: None, last_seq: 0, resume_after: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_messages_and_pings_are_recognised() {
        let msg = decode(Proto::Socketio, r#"42["msg","1|2|3|xx"]"#);
        assert_eq!(msg, Incoming::Message { body: "1|2|3|xx".into(), seq: None });
        assert_eq!(decode(Proto::Socketio, "2"), Incoming::Reply(Message::text("3")));
        assert_eq!(decode(Proto::Socketio, r#"42["joined","r"]"#), Incoming::Other);
    }

    #[test]
    fn our_message_frames_carry_the_seq() {
        let text = r#"{"type":"message","seq":9,"user_id":"u","body":"b","client_msg_id":"c","at_ms":1}"#;
        assert_eq!(decode(Proto::Ours, text), Incoming::Message { body: "b".into(), seq: Some(9) });
        assert_eq!(decode(Proto::Ours, r#"{"type":"ack","client_msg_id":"c","seq":9}"#), Incoming::Ack);
        assert!(matches!(decode(Proto::Ours, "nope"), Incoming::Error(_)));
    }

    #[test]
    fn sends_are_framed_per_protocol() {
        assert_eq!(send(Proto::Socketio, "c1", "hi"), Message::text(r#"42["msg","hi"]"#));
        assert_eq!(send(Proto::Naive, "c1", "hi"), Message::text("hi"));
        let ours = send(Proto::Ours, "c1", "hi");
        assert_eq!(ours, Message::text(r#"{"type":"send","client_msg_id":"c1","body":"hi"}"#));
        assert_eq!(ping(Proto::Naive), None);
    }
}
