//! Graceful shutdown: the server's long-lived connections, and the signal
//! that tells them to wind down.
use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shutting down = [`Lifecycle::stop`], then [`Lifecycle::drained`].
#[derive(Clone, Default)]
pub struct Lifecycle {
    stopping: CancellationToken,
    connections: TaskTracker,
}

impl Lifecycle {
    pub fn stopping_token(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Runs a connection as part of this server's work.
    pub fn track<F: Future<Output = ()> + Send + 'static>(&self, connection: F) -> impl Future<Output = ()> {
        self.connections.track_future(connection)
    }

    /// Asks every connection to finish what it is doing and close. Open
    /// streams hear it through their rooms (`Hub::keep_house`, which the
    /// server ties to this lifecycle's token), after the events their room
    /// had queued for them; a page reading too slowly to get there within
    /// the grace period is cut off and reconnects all the same.
    pub fn stop(&self) {
        self.stopping.cancel();
        self.connections.close();
    }

    /// Completes when every tracked connection has ended.
    pub async fn drained(&self) {
        self.connections.wait().await
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}
