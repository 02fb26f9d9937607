//! The room stream: one websocket per open page, at `/api/stream`.
//!
//! A connection is one task. It waits for the page's `Hello`, is admitted
//! by the rooms service (which subscribes it to the room before reading
//! anything), replays from the store every message after the page's last
//! seq, then forwards the room's live events — skipping what it already
//! sent, filling any gap from the store — while it handles the page's
//! `Send` frames. Frames are JSON text (see `protocol`).
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::rooms::{OpenRoom, RoomError, Rooms};
use super::state::AppState;
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

/// Time a new connection has to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame a page may send (a message of 2000 characters of 4 bytes
/// each fits comfortably).
const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Messages read from the store per query while catching up.
const REPLAY_BATCH: u64 = 500;

/// Close codes the page acts on (4000–4999 are for applications).
pub mod close_code {
    /// The user left the room (or was never in it): do not reconnect.
    pub const NOT_MEMBER: u16 = 4403;
    /// The connection fell behind: reconnect and catch up.
    pub const RESYNC: u16 = 4409;
    /// The first frame was not a valid `Hello`.
    pub const BAD_HELLO: u16 = 4400;
}

pub async fn stream_handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| connection(socket, state.rooms))
}

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// Why a connection ends (for the log).
#[derive(Debug)]
enum End {
    PeerClosed,
    SocketError,
    Refused(&'static str),
}

async fn connection(socket: WebSocket, rooms: Rooms) {
    let (mut sink, mut source) = socket.split();
    let end = match admit(&mut sink, &mut source, &rooms).await {
        Ok(admitted) => serve(&mut sink, &mut source, &rooms, admitted).await,
        Err(end) => end,
    };
    match end {
        End::Refused(why) => tracing::debug!(why, "stream refused or closed by the server"),
        End::PeerClosed => tracing::debug!("stream closed by the page"),
        End::SocketError => tracing::debug!("stream socket failed"),
    }
}

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> Result<(), End> {
    let text = serde_json::to_string(frame).expect("server frames always serialize");
    sink.send(Message::Text(text.into())).await.map_err(|_| End::SocketError)
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

async fn refuse(
    sink: &mut Sink,
    code: ErrorCode,
    message: String,
    close_code: u16,
    why: &'static str,
) -> End {
    let _ = send_frame(sink, &ServerFrame::Error { code, message, client_msg_id: None }).await;
    close(sink, close_code, why).await;
    End::Refused(why)
}

/// Reads the `Hello`, admits the connection and replays what the page
/// missed. Returns the admitted room and its live subscription.
async fn admit(
    sink: &mut Sink,
    source: &mut Source,
    rooms: &Rooms,
) -> Result<(OpenRoom, super::hub::Subscription, i64), End> {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, source.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Err(End::PeerClosed),
        Err(_) | Ok(Some(Ok(_))) => {
            let msg = "The connection must start with a hello frame.".to_owned();
            return Err(refuse(sink, ErrorCode::BadFrame, msg, close_code::BAD_HELLO, "no hello").await);
        }
    };
    let Ok(ClientFrame::Hello { channel_id, user_id, after_seq }) = serde_json::from_str(first.as_str())
    else {
        let msg = "The connection must start with a hello frame.".to_owned();
        return Err(refuse(sink, ErrorCode::BadFrame, msg, close_code::BAD_HELLO, "bad hello").await);
    };
    let (room, subscription) = match rooms.open(&channel_id, &user_id).await {
        Ok(admitted) => admitted,
        Err(err) => {
            let (code, close_code) = match err {
                RoomError::NotMember | RoomError::NoSuchRoom => {
                    (ErrorCode::NotMember, close_code::NOT_MEMBER)
                }
                RoomError::Invalid(_) | RoomError::BadMessageId => {
                    (ErrorCode::InvalidInput, close_code::BAD_HELLO)
                }
                RoomError::Store(_) | RoomError::Bus(_) => {
                    tracing::error!(%err, "admitting a stream failed");
                    (ErrorCode::Internal, 1011)
                }
            };
            return Err(refuse(sink, code, err.public_message(), close_code, "refused").await);
        }
    };
    let welcome = ServerFrame::Welcome { members: room.members.clone(), last_seq: room.last_seq };
    send_frame(sink, &welcome).await?;
    // A page cannot have seen more than the room holds.
    let after_seq = after_seq.clamp(0, room.last_seq);
    let last_sent = replay(sink, rooms, &room, after_seq, i64::MAX).await?;
    Ok((room, subscription, last_sent))
}

/// Sends the stored messages with `after < seq < until` (oldest first) and
/// returns the last seq sent.
async fn replay(sink: &mut Sink, rooms: &Rooms, room: &OpenRoom, after: i64, until: i64) -> Result<i64, End> {
    let mut last = after;
    loop {
        let batch = match rooms.messages_after(room.room_id, last, REPLAY_BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(%err, "replay failed");
                close(sink, 1011, "store unavailable").await;
                return Err(End::SocketError);
            }
        };
        let full = batch.len() as u64 == REPLAY_BATCH;
        for message in batch.into_iter().take_while(|m| m.seq < until) {
            last = message.seq;
            let text = serde_json::to_string(&ServerFrame::Message(message)).expect("frames serialize");
            // Queue the whole batch, then write it out at once.
            sink.feed(Message::Text(text.into())).await.map_err(|_| End::SocketError)?;
        }
        sink.flush().await.map_err(|_| End::SocketError)?;
        if !full || last + 1 >= until {
            return Ok(last);
        }
    }
}

async fn serve(
    sink: &mut Sink,
    source: &mut Source,
    rooms: &Rooms,
    (room, mut subscription, mut last_sent): (OpenRoom, super::hub::Subscription, i64),
) -> End {
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Err(end) = handle_client_frame(sink, rooms, &room, text.as_str()).await {
                        return end;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let frame = ServerFrame::Error {
                        code: ErrorCode::BadFrame,
                        message: "Frames must be JSON text.".to_owned(),
                        client_msg_id: None,
                    };
                    if let Err(end) = send_frame(sink, &frame).await {
                        return end;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return End::PeerClosed,
                Some(Err(_)) => return End::SocketError,
            },
            event = subscription.recv() => match event {
                Ok(event) => {
                    if let Some(seq) = event.frame.seq() {
                        if seq <= last_sent {
                            continue;
                        }
                        if seq > last_sent + 1 {
                            // An event went missing upstream: the store has it.
                            if let Err(end) = replay(sink, rooms, &room, last_sent, seq).await {
                                return end;
                            }
                        }
                        last_sent = seq;
                    }
                    if sink.send(Message::Text(event.text.clone())).await.is_err() {
                        return End::SocketError;
                    }
                    if matches!(&event.frame, ServerFrame::MemberLeft { user_id } if *user_id == room.user_id) {
                        close(sink, close_code::NOT_MEMBER, "left the room").await;
                        return End::Refused("left the room");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, channel_id = %room.channel_id, "slow reader told to resync");
                    let msg = "This page fell behind and is catching up.".to_owned();
                    return refuse(sink, ErrorCode::Resync, msg, close_code::RESYNC, "resync").await;
                }
                Err(RecvError::Closed) => return End::PeerClosed,
            },
        }
    }
}

async fn handle_client_frame(sink: &mut Sink, rooms: &Rooms, room: &OpenRoom, text: &str) -> Result<(), End> {
    let reply = match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Send { client_msg_id, body }) => {
            match rooms.send(room, &client_msg_id, &body).await {
                Ok(stored) => ServerFrame::Ack { client_msg_id, seq: stored.seq },
                Err(err) => {
                    let code =
                        if err.is_client_error() { ErrorCode::InvalidInput } else { ErrorCode::Internal };
                    if !err.is_client_error() {
                        tracing::error!(%err, "storing a message failed");
                    }
                    ServerFrame::Error {
                        code,
                        message: err.public_message(),
                        client_msg_id: Some(client_msg_id),
                    }
                }
            }
        }
        Ok(ClientFrame::Hello { .. }) => ServerFrame::Error {
            code: ErrorCode::BadFrame,
            message: "This connection already said hello.".to_owned(),
            client_msg_id: None,
        },
        Err(_) => ServerFrame::Error {
            code: ErrorCode::BadFrame,
            message: "That frame could not be understood.".to_owned(),
            client_msg_id: None,
        },
    };
    send_frame(sink, &reply).await
}
