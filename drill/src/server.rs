//! The server under drill, as a child process on loopback.
//!
//! The drill needs real restarts (a new process on the same port and the
//! same database file), so it runs the release binary rather than the
//! in-process `Application` the integration tests use. [`Server`] is a
//! guard: whatever way the drill ends — success, deadline or panic — its
//! `Drop` kills the child, so no server outlives the drill.
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// How long a start may take before the drill gives up on the server.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How a restart stops the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the server closes its streams and exits.
    Graceful,
    /// SIGKILL: the process is gone at once, as in a crash.
    Kill,
}

/// Seconds the server gets to close its streams on SIGTERM.
pub const SHUTDOWN_GRACE_SECS: u64 = 5;

/// Everything needed to start the server the same way every time.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub bin: PathBuf,
    pub site_root: PathBuf,
    pub port: u16,
    pub database_url: String,
    /// Where the child's stdout and stderr go (appended on each start).
    pub log: PathBuf,
}

impl ServerSpec {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/api/stream", self.port)
    }
}

/// A port that was free a moment ago (bound to 0, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

pub struct Server {
    spec: ServerSpec,
    child: Option<Child>,
}

impl Server {
    /// Starts the server and waits until it answers `GET /` with 200.
    pub async fn start(spec: ServerSpec, http: &reqwest::Client) -> Result<Server, String> {
        let mut server = Server { spec, child: None };
        server.launch_and_wait(http).await?;
        Ok(server)
    }

    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// Stops the server (SIGTERM and a wait, or SIGKILL: a crash), starts
    /// it again on the same port and database. Returns how long the
    /// server was unavailable.
    pub async fn restart(&mut self, http: &reqwest::Client, how: Stop) -> Result<Duration, String> {
        let began = Instant::now();
        match how {
            Stop::Graceful => {
                let status = self.stop().await;
                if !status.is_some_and(|s| s.success()) {
                    eprintln!("drill: server exited with {status:?} on SIGTERM");
                }
            }
            Stop::Kill => {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        self.launch_and_wait(http).await?;
        Ok(began.elapsed())
    }

    /// Asks the server to stop (SIGTERM) and waits for it; kills it if it
    /// takes longer than its grace period plus a margin.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let limit = Instant::now() + Duration::from_secs(SHUTDOWN_GRACE_SECS + 5);
        while Instant::now() < limit {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => break,
            }
        }
        eprintln!("drill: server did not stop within its grace period; killing it");
        let _ = child.kill();
        child.wait().ok()
    }

    async fn launch_and_wait(&mut self, http: &reqwest::Client) -> Result<(), String> {
        self.child =
            Some(spawn(&self.spec).map_err(|e| format!("cannot start {}: {e}", self.spec.bin.display()))?);
        let limit = Instant::now() + START_TIMEOUT;
        let url = format!("{}/", self.spec.base_url());
        while Instant::now() < limit {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "server exited during start-up ({status}); see {}",
                        self.spec.log.display()
                    ));
                }
            }
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("server not ready after {START_TIMEOUT:?}; see {}", self.spec.log.display()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(spec: &ServerSpec) -> std::io::Result<Child> {
    let log = open_log(&spec.log)?;
    Command::new(&spec.bin)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{}", spec.port))
        .env("DATABASE_URL", &spec.database_url)
        .env("LEPTOS_SITE_ROOT", &spec.site_root)
        .env("RUST_LOG", "warn")
        // The drill's clients send far faster than people do.
        .env("MESSAGES_PER_SEC", "100000")
        .env("MESSAGE_BURST", "100000")
        .env("SHUTDOWN_GRACE_SECS", SHUTDOWN_GRACE_SECS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
}

fn open_log(path: &Path) -> std::io::Result<File> {
    File::options().create(true).append(true).open(path)
}

/// A fresh folder for the run's database and server log. Removed on drop
/// unless [`RunDir::keep`] was called (a failed run keeps its evidence).
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    pub fn create() -> std::io::Result<RunDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("embedded-chat-drill-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)?;
        Ok(RunDir { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
