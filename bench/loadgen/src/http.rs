//! A minimal HTTP/1.1 client: one request per connection (`Connection:
//! close`), read to the end. Enough to join rooms and to time how long a
//! page takes to start arriving (first byte) and to arrive whole — numbers
//! a pooled client library would blur.
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back and how long it took.
#[derive(Clone, Debug)]
pub struct Timed {
    pub status: u16,
    /// From sending the request to the first byte of the response.
    pub first_byte: Duration,
    /// From sending the request to the end of the response.
    pub total: Duration,
    /// Bytes received after the headers (chunk framing included).
    pub body_bytes: usize,
    /// The `Retry-After` header, in seconds, if the answer had one.
    pub retry_after: Option<u64>,
}

/// `GET path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<Timed> {
    get_encoded(addr, path, None).await
}

/// `GET path` on `addr`, offering the given `Accept-Encoding` (as a
/// browser does) or none (the body as it is made).
pub async fn get_encoded(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> io::Result<Timed> {
    let encoding = accept_encoding.map_or(String::new(), |e| format!("Accept-Encoding: {e}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\n{encoding}Connection: close\r\n\r\n"
    );
    exchange(addr, request.into_bytes()).await
}

/// `POST path` with a form body, asking for JSON (as server functions
/// answer API clients).
pub async fn post_form(addr: SocketAddr, path: &str, form: &str) -> io::Result<Timed> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    );
    exchange(addr, request.into_bytes()).await
}

async fn exchange(addr: SocketAddr, request: Vec<u8>) -> io::Result<Timed> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    stream.write_all(&request).await?;
    let mut response = Vec::with_capacity(16 * 1024);
    let mut first_byte = None;
    loop {
        let before = response.len();
        response.reserve(64 * 1024);
        let read = stream.read_buf(&mut response).await?;
        if read == 0 {
            break;
        }
        if before == 0 {
            first_byte = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first_byte = first_byte.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "empty reply"))?;
    let (status, body_bytes) = parse_head(&response)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP response"))?;
    let retry_after = header(&response, "retry-after").and_then(|v| v.parse().ok());
    Ok(Timed { status, first_byte, total, body_bytes, retry_after })
}

/// The value of a header of the response's head (case-insensitive name).
fn header<'a>(response: &'a [u8], name: &str) -> Option<&'a str> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The status code and the number of bytes after the header block.
fn parse_head(response: &[u8]) -> Option<(u16, usize)> {
    let status_line_end = response.windows(2).position(|w| w == b"\r\n")?;
    let status_line = std::str::from_utf8(&response[..status_line_end]).ok()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, response.len() - head_end))
}

/// Room and user names of the benchmark are plain (letters, digits, `-`,
/// `_`), so form and query values need no escaping; this keeps it so.
pub fn plain(value: &str) -> &str {
    assert!(
        value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "benchmark names must be plain: {value}"
    );
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_and_body_size_are_read_from_a_reply() {
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n<html></html>";
        assert_eq!(parse_head(reply), Some((200, 13)));
        assert_eq!(parse_head(b"garbage"), None);
    }

    #[test]
    fn a_header_is_found_by_name_in_any_case() {
        let reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nx: y\r\n\r\nRetry-After: 9";
        assert_eq!(header(reply, "retry-after"), Some("3"));
        assert_eq!(header(reply, "cache-control"), None);
    }
}
