//! The bus between several nodes: Redis pub/sub, one channel per room
//! (`<prefix>:room:<channel_id>`), subscribed while this node has listeners
//! in the room.
//!
//! Publishing hands the event to this node's hub at once (local pages do
//! not wait for a round trip) and queues it for Redis; a publisher task
//! sends the queue in pipelined batches, in order, and retries a failed
//! batch on a new connection: a dropped connection delays events but does
//! not lose them (a retried batch may arrive twice; pages skip a seq they
//! have, member lists ignore repeats). A payload is the publishing node's
//! id, a line break and the event's text: a node skips its own echoes.
//!
//! A subscriber task owns the subscription connection (RESP3: events
//! arrive as pushes on a connection that can also be named, see
//! `Connector`). Events published while it is down are gone for this node:
//! once subscribed again it hands every room it serves a resync event, and
//! the pages catch up from the store. A publish queue that overflows during
//! a long outage does the same for the rooms whose events it had to drop.
//!
//! Presence crosses nodes on the same channels (see `hub` and `presence`):
//! the hub hands this node's news to the publish queue, every
//! `presence_beat` the node repeats who it still has, and it forgets a node
//! silent for [`BEATS_BEFORE_EXPIRY`] beats. A node that starts hearing a
//! room asks the others to repeat themselves at once (`PRESENCE_QUERY`),
//! so its first page sees who is online without waiting a beat.
//!
//! Slow mode is counted here too, so that a player with pages on two nodes
//! (or whose page reconnects to another one) still sends once per period:
//! one key per player and room holds the time of their last send, checked
//! and set by one script (`SLOW_MODE_SCRIPT`) on Redis's clock. Only sends
//! in a room under slow mode pay that round trip.
use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Msg, ProtocolVersion, PushInfo, PushKind};
use tokio::sync::{mpsc, oneshot};

use super::{Bus, BusError};
use crate::backoff;
use crate::hub::{Hub, PresenceSink, RoomEvent, Subscription};

/// Events waiting for Redis at most; past this, events are dropped and
/// their rooms told to resync once Redis is back.
const PUBLISH_QUEUE: usize = 65_536;
/// Events sent to Redis in one pipeline at most.
const PUBLISH_BATCH: usize = 512;
/// How long one Redis operation (connect, publish, subscribe) may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often rooms without listeners here are unsubscribed.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Payload of the control event that says "resync this room".
const RESYNC: &str = "!resync";
/// Payload of the control event that asks the nodes for a beat of the room.
const PRESENCE_QUERY: &str = "!presence?";
/// Beats another node may miss before its users count as offline.
pub const BEATS_BEFORE_EXPIRY: u32 = 3;
/// Longest wait between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Longest wait for Redis's answer to a slow-mode send; past it, the send
/// is counted on this node.
const SLOW_MODE_TIMEOUT: Duration = Duration::from_millis(500);
/// A player's send under slow mode: `KEYS[1]` the player's key in the
/// room, `ARGV[1]` the period and `ARGV[2]` the longest one, in
/// milliseconds. Returns 0 (sent: the time is kept) or the milliseconds
/// left to wait. The key outlives the longest period, so a period made
/// longer counts from the last send, as on one node.
const SLOW_MODE_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local last = tonumber(redis.call('GET', KEYS[1]))
local period = tonumber(ARGV[1])
if last and now - last < period then
  return period - (now - last)
end
redis.call('SET', KEYS[1], now, 'PX', ARGV[2])
return 0
";

/// Where the bus connects and how it names its channels.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: String,
    /// Namespace of the channels (deployments sharing one Redis differ).
    pub prefix: String,
    /// How often this node repeats who has pages open here.
    pub presence_beat: Duration,
}

pub struct RedisBus {
    hub: Hub,
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Outgoing>,
    commands: mpsc::UnboundedSender<Subscribe>,
}

/// What the bus shares with its tasks. (Not the publish queue's sender: the
/// publisher ends once every sender is gone.)
#[derive(Default)]
struct Shared {
    prefix: String,
    /// This node's id, at the start of every payload it publishes.
    node: String,
    /// Rooms whose events the full publish queue dropped.
    overflowed: Mutex<BTreeSet<String>>,
    subscriber_up: AtomicBool,
    /// The publisher's connection while it is up (`None`: down); slow-mode
    /// sends use it too.
    publishing: Mutex<Option<MultiplexedConnection>>,
}

impl Shared {
    fn channel(&self, channel_id: &str) -> String {
        format!("{}:room:{channel_id}", self.prefix)
    }

    /// A publish of `text` (an event's, or a control payload) to a room.
    fn outgoing(&self, channel_id: &str, text: &str) -> Outgoing {
        Outgoing { channel: self.channel(channel_id), payload: format!("{}\n{text}", self.node) }
    }
}

struct Outgoing {
    channel: String,
    payload: String,
}

struct Subscribe {
    channel_id: String,
    done: oneshot::Sender<Result<(), BusError>>,
}

impl RedisBus {
    /// Starts the bus's tasks (they end when the bus is dropped). Fails only
    /// on a malformed URL: an unreachable Redis is retried in the
    /// background and reported by [`Bus::problem`].
    pub fn start(settings: &RedisSettings, hub: Hub) -> Result<Self, BusError> {
        let info = settings.url.as_str().into_connection_info().map_err(|e| BusError(e.to_string()))?;
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3)).map_err(|e| BusError(e.to_string()))?;
        let node = hub.node_id().to_owned();
        let connect = Connector { client, name: format!("{}/{node}", settings.prefix).into() };
        let shared = Arc::new(Shared { prefix: settings.prefix.clone(), node, ..Shared::default() });
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        hub.set_presence_sink(presence_sink(outgoing.clone(), shared.clone()));
        tokio::spawn(publisher(connect.clone(), queue, shared.clone()));
        let (commands, incoming) = mpsc::unbounded_channel();
        let subscriber = Subscriber {
            connect,
            hub: hub.clone(),
            shared: shared.clone(),
            outgoing: outgoing.clone(),
            beat: settings.presence_beat.max(Duration::from_millis(100)),
        };
        tokio::spawn(subscriber.run(incoming));
        Ok(RedisBus { hub, shared, outgoing, commands })
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish_all(&self, channel_id: &str, events: Vec<Arc<RoomEvent>>) -> Result<(), BusError> {
        self.hub.deliver_all(channel_id, events.iter().cloned());
        // Each is queued even if one before did not fit; a full queue loses
        // events, and their room is resynced (see the module docs).
        let publishes = events.iter().map(|event| self.shared.outgoing(channel_id, &event.text));
        let dropped = publishes.filter_map(|publish| self.outgoing.try_send(publish).err()).count();
        if dropped == 0 {
            return Ok(());
        }
        metrics::counter!(crate::metrics::BUS_DROPPED).increment(dropped as u64);
        self.shared.overflowed.lock().insert(channel_id.to_owned());
        Err(BusError("the Redis publish queue is full".to_owned()))
    }

    async fn subscribe(&self, channel_id: &str) -> Result<Subscription, BusError> {
        // Listen here first, then make sure Redis sends us the room: an
        // event published once the SUBSCRIBE is confirmed reaches the
        // subscription.
        let subscription = self.hub.subscribe(channel_id);
        let (done, confirmed) = oneshot::channel();
        let request = Subscribe { channel_id: channel_id.to_owned(), done };
        let stopped = || BusError("the Redis subscriber has stopped".to_owned());
        self.commands.send(request).map_err(|_| stopped())?;
        match tokio::time::timeout(REDIS_TIMEOUT, confirmed).await {
            Ok(Ok(result)) => result.map(|()| subscription),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(BusError("Redis did not confirm the subscription in time".to_owned())),
        }
    }

    async fn slow_mode_send(
        &self,
        room_id: i64,
        user_id: &str,
        period: Duration,
    ) -> Option<Result<(), Duration>> {
        let mut connection = self.shared.publishing.lock().clone()?;
        let longest = Duration::from_secs(crate::protocol::moderation::MAX_SLOW_MODE_SECS.into());
        let mut script = redis::cmd("EVAL");
        script.arg(SLOW_MODE_SCRIPT).arg(1).arg(format!("{}:slow:{room_id}:{user_id}", self.shared.prefix));
        script.arg(period.as_millis() as u64).arg(longest.as_millis() as u64);
        let answer =
            tokio::time::timeout(SLOW_MODE_TIMEOUT, script.query_async::<u64>(&mut connection)).await;
        match answer {
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(wait_ms)) => Some(Err(Duration::from_millis(wait_ms))),
            Ok(Err(err)) => {
                tracing::warn!(%err, "slow mode not counted in Redis; counting on this node");
                None
            }
            Err(_) => {
                tracing::warn!("Redis did not answer a slow-mode send in time; counting on this node");
                None
            }
        }
    }

    fn has_other_nodes(&self) -> bool {
        true
    }

    fn problem(&self) -> Option<String> {
        let mut problems = Vec::new();
        if !self.shared.subscriber_up.load(Ordering::Relaxed) {
            problems.push("Redis subscription connection down");
        }
        if self.shared.publishing.lock().is_none() {
            problems.push("Redis publish connection down");
        }
        (!problems.is_empty()).then(|| problems.join(", "))
    }
}

/// Opens this node's Redis connections, each named
/// `<prefix>/<node>/<role>` (CLIENT LIST shows who holds what).
#[derive(Clone)]
struct Connector {
    client: Client,
    name: Arc<str>,
}

impl Connector {
    async fn open(
        &self,
        role: &str,
        pushes: Option<mpsc::UnboundedSender<PushInfo>>,
    ) -> Result<MultiplexedConnection, String> {
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        if let Some(pushes) = pushes {
            config = config.set_push_sender(pushes);
        }
        timed(async {
            let mut connection = self.client.get_multiplexed_async_connection_with_config(&config).await?;
            let name = format!("{}/{role}", self.name);
            redis::cmd("CLIENT").arg("SETNAME").arg(name).exec_async(&mut connection).await?;
            Ok(connection)
        })
        .await
    }
}

/// Runs one Redis operation under [`REDIS_TIMEOUT`].
async fn timed<T>(operation: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, operation).await {
        Ok(done) => done.map_err(|err| err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Where the hub's presence news goes: the publish queue, behind the
/// events already waiting. A full queue drops it: the next beat repeats
/// an "online", and an "offline" lost that way expires on the other nodes.
fn presence_sink(outgoing: mpsc::Sender<Outgoing>, shared: Arc<Shared>) -> PresenceSink {
    Box::new(move |channel_id, event| {
        if outgoing.try_send(shared.outgoing(channel_id, &event.text)).is_err() {
            metrics::counter!(crate::metrics::BUS_DROPPED).increment(1);
        }
    })
}

fn reconnect_delay(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let jitter = f64::from(nanos.subsec_nanos() % 1000) / 1000.0;
    Duration::from_millis(u64::from(backoff::delay_ms(attempt, jitter))).min(MAX_RECONNECT_DELAY)
}

/// Sends the publish queue to Redis, in order, in pipelined batches; a
/// batch that fails is sent again, whole, on a new connection.
async fn publisher(connect: Connector, mut queue: mpsc::Receiver<Outgoing>, shared: Arc<Shared>) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut failures = 0;
    loop {
        if connection.is_none() {
            match connect.open("publish", None).await {
                Ok(c) => {
                    *shared.publishing.lock() = Some(c.clone());
                    connection = Some(c);
                }
                Err(err) => tracing::warn!(%err, "cannot connect to Redis to publish; retrying"),
            }
        }
        let Some(conn) = connection.as_mut() else {
            tokio::time::sleep(reconnect_delay(failures)).await;
            failures += 1;
            continue;
        };
        // Rooms whose events the full queue dropped: tell their listeners
        // on every node to catch up.
        let dropped = std::mem::take(&mut *shared.overflowed.lock());
        batch.extend(dropped.iter().map(|room| shared.outgoing(room, RESYNC)));
        if batch.is_empty() {
            match queue.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
        }
        let room_left = PUBLISH_BATCH.saturating_sub(batch.len());
        batch.extend(std::iter::from_fn(|| queue.try_recv().ok()).take(room_left));
        let mut pipe = redis::pipe();
        for event in &batch {
            pipe.cmd("PUBLISH").arg(&event.channel).arg(&event.payload).ignore();
        }
        match timed(pipe.exec_async(conn)).await {
            Ok(()) => {
                batch.clear();
                failures = 0;
            }
            Err(err) => {
                tracing::warn!(%err, pending = batch.len(), "publishing to Redis failed; retrying on a new connection");
                *shared.publishing.lock() = None;
                connection = None;
                tokio::time::sleep(reconnect_delay(failures)).await;
                failures += 1;
            }
        }
    }
}

struct Subscriber {
    connect: Connector,
    hub: Hub,
    shared: Arc<Shared>,
    /// The publish queue, for the `!presence?` questions.
    outgoing: mpsc::Sender<Outgoing>,
    /// How often this node repeats its presence news.
    beat: Duration,
}

impl Subscriber {
    async fn run(self, mut commands: mpsc::UnboundedReceiver<Subscribe>) {
        let mut failures = 0;
        let mut reconnecting = false;
        loop {
            let (pushes_to, mut pushes) = mpsc::unbounded_channel();
            // Everything this node listens to, again.
            let rooms = self.hub.room_names();
            let connected = async {
                let mut connection = self.connect.open("subscribe", Some(pushes_to)).await?;
                if !rooms.is_empty() {
                    let channels: Vec<String> = rooms.iter().map(|room| self.shared.channel(room)).collect();
                    timed(connection.subscribe(&channels)).await?;
                }
                Ok::<_, String>(connection)
            };
            let mut connection = match connected.await {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::warn!(%err, "cannot subscribe on Redis; retrying");
                    self.shared.subscriber_up.store(false, Ordering::Relaxed);
                    if !self.refuse_while_waiting(&mut commands, reconnect_delay(failures)).await {
                        return;
                    }
                    failures += 1;
                    continue;
                }
            };
            let mut subscribed: HashSet<String> = rooms.into_iter().collect();
            self.shared.subscriber_up.store(true, Ordering::Relaxed);
            failures = 0;
            if reconnecting {
                tracing::info!(
                    rooms = subscribed.len(),
                    "Redis subscription restored; rooms catch up from the store"
                );
                metrics::counter!(crate::metrics::BUS_RESYNCS).increment(subscribed.len() as u64);
                for room in &subscribed {
                    self.hub.deliver_all(room, [RoomEvent::resync()]);
                    // Presence changed meanwhile, unheard: ask again, and
                    // say again who is here (others may have forgotten).
                    self.ask_presence(room);
                }
                self.hub.presence_beat(None);
            }
            reconnecting = true;
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            // Other nodes' users expire only once this node has listened
            // long enough to have heard them repeat themselves.
            let listening_since = tokio::time::Instant::now();
            let expiry = self.beat * BEATS_BEFORE_EXPIRY;
            let mut beat = tokio::time::interval_at(listening_since + self.beat, self.beat);
            loop {
                tokio::select! {
                    command = commands.recv() => {
                        let Some(Subscribe { channel_id, done }) = command else { return };
                        if !subscribed.contains(&channel_id) {
                            if connection.subscribe(self.shared.channel(&channel_id)).await.is_err() {
                                let _ = done.send(Err(BusError("subscribing on Redis failed".to_owned())));
                                break;
                            }
                            self.ask_presence(&channel_id);
                            subscribed.insert(channel_id);
                        }
                        let _ = done.send(Ok(()));
                    }
                    push = pushes.recv() => {
                        let Some(push) = push.filter(|push| push.kind != PushKind::Disconnection) else { break };
                        if let Some(message) = Msg::from_push_info(push) {
                            self.forward(&message);
                        }
                    }
                    _ = sweep.tick() => {
                        if self.unsubscribe_idle(&mut connection, &mut subscribed).await.is_err() {
                            break;
                        }
                    }
                    _ = beat.tick() => {
                        self.hub.presence_beat(None);
                        let cutoff = std::time::Instant::now().checked_sub(expiry);
                        if let Some(cutoff) = cutoff.filter(|_| listening_since.elapsed() >= expiry) {
                            self.hub.expire_presence(cutoff);
                        }
                    }
                }
            }
            self.shared.subscriber_up.store(false, Ordering::Relaxed);
            tracing::warn!("lost the Redis subscription connection; reconnecting");
        }
    }

    /// Hands an event from another node to this node's listeners.
    fn forward(&self, message: &Msg) {
        let Some(channel_id) = message
            .get_channel_name()
            .strip_prefix(&*self.shared.prefix)
            .and_then(|rest| rest.strip_prefix(":room:"))
        else {
            return;
        };
        let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
            tracing::warn!(channel_id, "ignoring a bus event that is not UTF-8");
            return;
        };
        let Some((node, text)) = payload.split_once('\n') else {
            tracing::warn!(channel_id, "ignoring a malformed bus event");
            return;
        };
        if node == self.shared.node {
            return;
        }
        if text == RESYNC {
            metrics::counter!(crate::metrics::BUS_RESYNCS).increment(1);
            self.hub.deliver_all(channel_id, [RoomEvent::resync()]);
            return;
        }
        if text == PRESENCE_QUERY {
            self.hub.presence_beat(Some(channel_id));
            return;
        }
        match RoomEvent::decode(text) {
            Ok(event) => self.hub.deliver_from(node, channel_id, event),
            Err(err) => tracing::warn!(channel_id, %err, "ignoring a bus event that does not decode"),
        }
    }

    /// Stops receiving rooms nobody here listens to any more.
    async fn unsubscribe_idle(
        &self,
        connection: &mut MultiplexedConnection,
        subscribed: &mut HashSet<String>,
    ) -> redis::RedisResult<()> {
        let listened: HashSet<String> = self.hub.room_names().into_iter().collect();
        let idle: Vec<String> = subscribed.difference(&listened).cloned().collect();
        if idle.is_empty() {
            return Ok(());
        }
        let channels: Vec<String> = idle.iter().map(|room| self.shared.channel(room)).collect();
        connection.unsubscribe(&channels).await?;
        for room in idle {
            // Not hearing the room any more, this node cannot follow who
            // comes and goes; it asks again when it listens again.
            self.hub.forget_remote_presence(&room);
            subscribed.remove(&room);
        }
        Ok(())
    }

    /// Asks the other nodes who is online in a room (they answer with a
    /// beat of it). A full queue skips the question: the next beats answer.
    fn ask_presence(&self, channel_id: &str) {
        let _ = self.outgoing.try_send(self.shared.outgoing(channel_id, PRESENCE_QUERY));
    }

    /// Waits `delay` before the next connection attempt, refusing the
    /// subscriptions asked for meanwhile. False once the bus is gone.
    async fn refuse_while_waiting(
        &self,
        commands: &mut mpsc::UnboundedReceiver<Subscribe>,
        delay: Duration,
    ) -> bool {
        let until = tokio::time::Instant::now() + delay;
        while let Ok(command) = tokio::time::timeout_at(until, commands.recv()).await {
            let Some(Subscribe { done, .. }) = command else { return false };
            let _ = done.send(Err(BusError("Redis is unreachable".to_owned())));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channels_are_namespaced_by_prefix() {
        let shared = Shared { prefix: "chat".into(), ..Shared::default() };
        assert_eq!(shared.channel("game_1"), "chat:room:game_1");
    }

    #[test]
    fn a_payload_names_its_node_before_the_event() {
        let shared = Shared { prefix: "chat".into(), node: "n1".into(), ..Shared::default() };
        let payload = shared.outgoing("r", "{\"type\":\"pong\"}").payload;
        assert_eq!(payload.split_once('\n'), Some(("n1", "{\"type\":\"pong\"}")));
        // The event text may itself hold newlines (escaped in JSON it does
        // not, but the split must only take the first).
        assert_eq!(shared.outgoing("r", "a\nb").payload.split_once('\n'), Some(("n1", "a\nb")));
    }

    #[test]
    fn reconnects_wait_at_most_the_cap() {
        assert!(reconnect_delay(0) <= Duration::from_millis(500));
        assert!(reconnect_delay(30) <= MAX_RECONNECT_DELAY);
    }
}
