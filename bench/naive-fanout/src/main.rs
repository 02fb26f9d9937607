//! The naive Rust peer of the benchmark: what a room fan-out costs with
//! nothing on top. Every text frame a connection sends is broadcast as is,
//! through one `tokio::sync::broadcast` channel per room, to every
//! connection of that room (the sender included). No store, no sequence
//! numbers, no heartbeats; a reader that falls more than [`ROOM_CAPACITY`]
//! frames behind silently misses them.
//!
//! One setting is deliberate: a small read buffer ([`READ_BUFFER`]).
//! tungstenite's default allocates 128 KiB per connection and zero-fills it
//! before each read, which makes every idle connection cost 128 KiB of
//! resident memory; the baseline is meant to show what a fan-out costs,
//! not that default.
//!
//! ```text
//! naive-fanout --port 9200        # ws://127.0.0.1:9200/ws?room=R&user=U
//! ```
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames a room keeps for its slowest reader (tokio's usual example size).
const ROOM_CAPACITY: usize = 1024;
/// Bytes read from a socket at a time: clients send small frames.
const READ_BUFFER: usize = 4 * 1024;

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>;

#[tokio::main]
async fn main() {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("naive-fanout: cannot listen on 127.0.0.1:{port}: {err}");
            std::process::exit(1);
        }
    };
    println!("naive-fanout listening on 127.0.0.1:{port}");
    let rooms = Rooms::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, rooms.clone()));
            }
            // Out of file descriptors and the like: keep serving the others.
            Err(err) => eprintln!("naive-fanout: accept failed: {err}"),
        }
    }
}

fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let usage = "usage: naive-fanout --port N".to_owned();
    match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(port)) => port.parse().map_err(|_| usage),
        _ => Err(usage),
    }
}

/// The value of `key` in a query string such as `room=a&user=b`.
fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, rooms: Rooms) {
    // Small frames go out at once, as they do from the other servers.
    let _ = stream.set_nodelay(true);
    let mut room = None;
    let pick_room = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        room = request.uri().query().and_then(|q| query_value(q, "room")).map(str::to_owned);
        Ok(response)
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(stream, pick_room, Some(config)).await
    else {
        return;
    };
    let Some(room) = room.filter(|r| !r.is_empty()) else {
        return;
    };
    let sender = {
        let mut rooms = rooms.lock().expect("rooms lock");
        rooms.entry(room).or_insert_with(|| broadcast::channel(ROOM_CAPACITY).0).clone()
    };
    let mut receiver = sender.subscribe();
    let (mut sink, mut source) = socket.split();
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // Err only means nobody listens, which cannot be: we do.
                    let _ = sender.send(text);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            outgoing = receiver.recv() => match outgoing {
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_comes_from_the_query_string() {
        assert_eq!(query_value("room=r1&user=u", "room"), Some("r1"));
        assert_eq!(query_value("user=u&room=r2", "room"), Some("r2"));
        assert_eq!(query_value("roomy=x", "room"), None);
        assert_eq!(query_value("user=u", "room"), None);
    }

    #[test]
    fn the_port_is_required() {
        assert_eq!(parse_port(["--port".to_owned(), "9200".to_owned()].into_iter()), Ok(9200));
        assert!(parse_port(std::iter::empty()).is_err());
        assert!(parse_port(["--port".to_owned(), "x".to_owned()].into_iter()).is_err());
    }
}
