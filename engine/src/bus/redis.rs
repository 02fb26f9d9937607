//! The bus between several nodes: Redis pub/sub, one channel per room
//! (`<prefix>:room:<channel_id>`), subscribed while this node has listeners
//! in the room.
//!
//! Publishing hands the event to this node's hub at once (local pages do
//! not wait for a round trip) and queues it for Redis; a publisher task
//! sends the queue in pipelined batches, in order, and retries a failed
//! batch on a new connection, so a dropped publisher connection delays
//! events but does not lose them (a retried batch may arrive twice: pages
//! skip a seq they already have, and member lists ignore repeats). Each
//! payload starts with the publishing node's id, so a node skips its own
//! events when Redis echoes them back.
//!
//! A subscriber task owns the subscription connection (RESP3, so events
//! arrive as pushes on a connection that can also be named: every
//! connection shows in CLIENT LIST as `<prefix>/<node>/<role>`). When it drops (Redis
//! restarted, `CLIENT KILL`, network), events published meanwhile are gone
//! for this node: after reconnecting and subscribing again it hands every
//! room it serves a resync event, and the pages catch up from the store.
//! A publish queue that overflows during a long outage does the same for
//! the rooms whose events it had to drop.
//!
//! Presence crosses nodes on the same channels (see `hub` and
//! `presence`): the hub hands this node's news (first page of a user
//! opened here, last one closed) to the publish queue, every
//! `presence_beat` the node repeats who it still has, and it forgets
//! another node's users once that node has been silent for
//! [`BEATS_BEFORE_EXPIRY`] beats. A node that starts hearing a room asks
//! the others to repeat themselves at once (the `!presence?` control
//! payload), so its first page sees who is online without waiting a beat.
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use async_trait::async_trait;
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
/// Payload of the control event that says "tell me who is online in this
/// room" (the nodes answer with a beat of the room).
const PRESENCE_QUERY: &str = "!presence?";
/// Beats another node may miss before its users count as offline.
pub const BEATS_BEFORE_EXPIRY: u32 = 3;
/// Longest wait between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Where the bus connects and how it names its channels.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: String,
    /// Namespace of the channels: deployments sharing one Redis use
    /// different prefixes.
    pub prefix: String,
    /// How often this node repeats who has pages open here.
    pub presence_beat: Duration,
}

pub struct RedisBus {
    hub: Hub,
    node: Arc<str>,
    prefix: Arc<str>,
    outgoing: mpsc::Sender<Outgoing>,
    overflowed: Arc<Mutex<BTreeSet<String>>>,
    commands: mpsc::UnboundedSender<Subscribe>,
    health: Arc<Health>,
}

struct Outgoing {
    channel: String,
    payload: String,
}

struct Subscribe {
    channel_id: String,
    done: oneshot::Sender<Result<(), BusError>>,
}

#[derive(Default)]
struct Health {
    subscriber_up: AtomicBool,
    publisher_up: AtomicBool,
}

impl RedisBus {
    /// Starts the bus's tasks (they end when the bus is dropped). Fails only
    /// on a malformed URL: an unreachable Redis is retried in the
    /// background and reported by [`Bus::problem`].
    pub fn start(settings: &RedisSettings, hub: Hub) -> Result<Self, BusError> {
        let node: Arc<str> = hub.node_id().into();
        // RESP3: subscriptions ride a normal connection (as pushes), which
        // can also be named for CLIENT LIST.
        let info = settings.url.as_str().into_connection_info().map_err(|e| BusError(e.to_string()))?;
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3)).map_err(|e| BusError(e.to_string()))?;
        let name: Arc<str> = format!("{}/{node}", settings.prefix).into();
        let health = Arc::new(Health::default());
        let prefix: Arc<str> = settings.prefix.as_str().into();
        let overflowed = Arc::new(Mutex::new(BTreeSet::new()));

        let connect = Connector { client, name };
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        hub.set_presence_sink(presence_sink(outgoing.clone(), prefix.clone(), node.clone()));
        tokio::spawn(publisher(
            connect.clone(),
            queue,
            overflowed.clone(),
            prefix.clone(),
            node.clone(),
            health.clone(),
        ));
        let (commands, incoming) = mpsc::unbounded_channel();
        let subscriber = Subscriber {
            connect,
            hub: hub.clone(),
            prefix: prefix.clone(),
            node: node.clone(),
            health: health.clone(),
            outgoing: outgoing.clone(),
            beat: settings.presence_beat.max(Duration::from_millis(100)),
        };
        tokio::spawn(subscriber.run(incoming));
        Ok(RedisBus { hub, node, prefix, outgoing, overflowed, commands, health })
    }

    /// Queues an event for the other nodes; a full queue loses it, and
    /// the room is resynced (see the module docs).
    fn send_on(&self, channel_id: &str, event: &RoomEvent) -> Result<(), BusError> {
        let outgoing = Outgoing {
            channel: room_channel(&self.prefix, channel_id),
            payload: format!("{}\n{}", self.node, event.text.as_str()),
        };
        if self.outgoing.try_send(outgoing).is_err() {
            metrics::counter!(crate::metrics::BUS_DROPPED).increment(1);
            self.overflowed.lock().insert(channel_id.to_owned());
            return Err(BusError("the Redis publish queue is full".to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, channel_id: &str, event: Arc<RoomEvent>) -> Result<(), BusError> {
        self.hub.deliver(channel_id, event.clone());
        self.send_on(channel_id, &event)
    }

    async fn publish_all(&self, channel_id: &str, events: Vec<Arc<RoomEvent>>) -> Result<(), BusError> {
        self.hub.deliver_all(channel_id, events.iter().cloned());
        // Each is queued for Redis even if one before did not fit: the
        // room is resynced either way.
        events.iter().map(|event| self.send_on(channel_id, event)).fold(Ok(()), Result::and)
    }

    async fn subscribe(&self, channel_id: &str) -> Result<Subscription, BusError> {
        // Listen here first, then make sure Redis sends us the room: an
        // event published once the SUBSCRIBE is confirmed reaches the
        // subscription.
        let subscription = self.hub.subscribe(channel_id);
        let (done, confirmed) = oneshot::channel();
        let request = Subscribe { channel_id: channel_id.to_owned(), done };
        self.commands.send(request).map_err(|_| BusError("the Redis subscriber has stopped".to_owned()))?;
        match tokio::time::timeout(REDIS_TIMEOUT, confirmed).await {
            Ok(Ok(result)) => result.map(|()| subscription),
            Ok(Err(_)) => Err(BusError("the Redis subscriber has stopped".to_owned())),
            Err(_) => Err(BusError("Redis did not confirm the subscription in time".to_owned())),
        }
    }

    fn problem(&self) -> Option<String> {
        let mut problems = Vec::new();
        if !self.health.subscriber_up.load(Ordering::Relaxed) {
            problems.push("Redis subscription connection down");
        }
        if !self.health.publisher_up.load(Ordering::Relaxed) {
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
        let opening = async {
            let mut connection = self.client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(format!("{}/{role}", self.name))
                .exec_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        };
        match tokio::time::timeout(REDIS_TIMEOUT, opening).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

fn room_channel(prefix: &str, channel_id: &str) -> String {
    format!("{prefix}:room:{channel_id}")
}

/// Where the hub's presence news goes: the publish queue, behind the
/// events already waiting. A full queue drops it: the next beat repeats
/// an "online", and an "offline" lost that way expires on the other nodes.
fn presence_sink(outgoing: mpsc::Sender<Outgoing>, prefix: Arc<str>, node: Arc<str>) -> PresenceSink {
    Box::new(move |channel_id, event| {
        let message = Outgoing {
            channel: room_channel(&prefix, channel_id),
            payload: format!("{node}\n{}", event.text.as_str()),
        };
        if outgoing.try_send(message).is_err() {
            metrics::counter!(crate::metrics::BUS_DROPPED).increment(1);
        }
    })
}

/// Splits a payload into the publishing node and the event text.
fn split_payload(payload: &str) -> Option<(&str, &str)> {
    payload.split_once('\n')
}

fn reconnect_delay(attempt: u32) -> Duration {
    let jitter = f64::from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
            % 1000,
    ) / 1000.0;
    Duration::from_millis(u64::from(backoff::delay_ms(attempt, jitter))).min(MAX_RECONNECT_DELAY)
}

async fn publisher(
    connect: Connector,
    mut queue: mpsc::Receiver<Outgoing>,
    overflowed: Arc<Mutex<BTreeSet<String>>>,
    prefix: Arc<str>,
    node: Arc<str>,
    health: Arc<Health>,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut failures = 0;
    loop {
        if connection.is_none() {
            match connect.open("publish", None).await {
                Ok(c) => connection = Some(c),
                Err(err) => tracing::warn!(%err, "cannot connect to Redis to publish; retrying"),
            }
        }
        let Some(conn) = connection.as_mut() else {
            health.publisher_up.store(false, Ordering::Relaxed);
            tokio::time::sleep(reconnect_delay(failures)).await;
            failures += 1;
            continue;
        };
        // Rooms whose events the full queue dropped: tell their listeners
        // on every node to catch up.
        let dropped: Vec<String> = std::mem::take(&mut *overflowed.lock()).into_iter().collect();
        batch.extend(dropped.iter().map(|room| Outgoing {
            channel: room_channel(&prefix, room),
            payload: format!("{node}\n{RESYNC}"),
        }));
        if batch.is_empty() {
            health.publisher_up.store(true, Ordering::Relaxed);
            match queue.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
        }
        while batch.len() < PUBLISH_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for event in &batch {
            pipe.cmd("PUBLISH").arg(&event.channel).arg(&event.payload).ignore();
        }
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.exec_async(conn)).await {
            Ok(Ok(())) => {
                batch.clear();
                failures = 0;
                health.publisher_up.store(true, Ordering::Relaxed);
            }
            outcome => {
                let err = match outcome {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(%err, pending = batch.len(), "publishing to Redis failed; retrying on a new connection");
                health.publisher_up.store(false, Ordering::Relaxed);
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
    prefix: Arc<str>,
    node: Arc<str>,
    health: Arc<Health>,
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
            let mut connection = match self.connect.open("subscribe", Some(pushes_to)).await {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::warn!(%err, "cannot connect to Redis to subscribe; retrying");
                    self.health.subscriber_up.store(false, Ordering::Relaxed);
                    if !self.refuse_while_waiting(&mut commands, reconnect_delay(failures)).await {
                        return;
                    }
                    failures += 1;
                    continue;
                }
            };
            // Everything this node listens to, again.
            let rooms = self.hub.room_names();
            if !rooms.is_empty() {
                let channels: Vec<String> = rooms.iter().map(|r| room_channel(&self.prefix, r)).collect();
                if let Err(err) = connection.subscribe(&channels).await {
                    tracing::warn!(%err, "subscribing again after a reconnect failed; retrying");
                    failures += 1;
                    continue;
                }
            }
            let mut subscribed: HashSet<String> = rooms.into_iter().collect();
            self.health.subscriber_up.store(true, Ordering::Relaxed);
            failures = 0;
            if reconnecting {
                tracing::info!(
                    rooms = subscribed.len(),
                    "Redis subscription restored; rooms catch up from the store"
                );
                metrics::counter!(crate::metrics::BUS_RESYNCS).increment(subscribed.len() as u64);
                for room in &subscribed {
                    self.hub.deliver(room, RoomEvent::resync());
                    // Presence changed meanwhile, unheard: ask again, and
                    // say again who is here (others may have forgotten).
                    self.ask_presence(room);
                }
                self.hub.presence_beat();
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
                        if subscribed.contains(&channel_id) {
                            let _ = done.send(Ok(()));
                            continue;
                        }
                        let channel = room_channel(&self.prefix, &channel_id);
                        match connection.subscribe(&channel).await {
                            Ok(()) => {
                                self.ask_presence(&channel_id);
                                subscribed.insert(channel_id);
                                let _ = done.send(Ok(()));
                            }
                            _ => {
                                let _ = done.send(Err(BusError("subscribing on Redis failed".to_owned())));
                                break;
                            }
                        }
                    }
                    push = pushes.recv() => match push {
                        Some(push) if push.kind == PushKind::Disconnection => break,
                        Some(push) => {
                            if let Some(message) = Msg::from_push_info(push) {
                                self.forward(&message);
                            }
                        }
                        None => break,
                    },
                    _ = sweep.tick() => {
                        if !self.unsubscribe_idle(&mut connection, &mut subscribed).await {
                            break;
                        }
                    }
                    _ = beat.tick() => {
                        self.hub.presence_beat();
                        let cutoff = std::time::Instant::now().checked_sub(expiry);
                        if let Some(cutoff) = cutoff.filter(|_| listening_since.elapsed() >= expiry) {
                            self.hub.expire_presence(cutoff);
                        }
                    }
                }
            }
            self.health.subscriber_up.store(false, Ordering::Relaxed);
            tracing::warn!("lost the Redis subscription connection; reconnecting");
        }
    }

    /// Hands an event from another node to this node's listeners.
    fn forward(&self, message: &Msg) {
        let Some(channel_id) = message
            .get_channel_name()
            .strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix(":room:"))
        else {
            return;
        };
        let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
            tracing::warn!(channel_id, "ignoring a bus event that is not UTF-8");
            return;
        };
        let Some((node, text)) = split_payload(payload) else {
            tracing::warn!(channel_id, "ignoring a malformed bus event");
            return;
        };
        if node == &*self.node {
            return;
        }
        if text == RESYNC {
            metrics::counter!(crate::metrics::BUS_RESYNCS).increment(1);
            self.hub.deliver(channel_id, RoomEvent::resync());
            return;
        }
        if text == PRESENCE_QUERY {
            self.hub.presence_beat_room(channel_id);
            return;
        }
        match RoomEvent::decode(text) {
            Ok(event) => self.hub.deliver_from(node, channel_id, event),
            Err(err) => tracing::warn!(channel_id, %err, "ignoring a bus event that does not decode"),
        }
    }

    /// Stops receiving rooms nobody here listens to any more. False if the
    /// connection failed.
    async fn unsubscribe_idle(
        &self,
        connection: &mut MultiplexedConnection,
        subscribed: &mut HashSet<String>,
    ) -> bool {
        let idle: Vec<String> =
            subscribed.iter().filter(|room| !self.hub.has_listeners(room)).cloned().collect();
        if idle.is_empty() {
            return true;
        }
        let channels: Vec<String> = idle.iter().map(|room| room_channel(&self.prefix, room)).collect();
        if connection.unsubscribe(&channels).await.is_err() {
            return false;
        }
        for room in idle {
            // Not hearing the room any more, this node cannot follow who
            // comes and goes; it asks again when it listens again.
            self.hub.forget_remote_presence(&room);
            subscribed.remove(&room);
        }
        true
    }

    /// Asks the other nodes who is online in a room (they answer with a
    /// beat of it). A full queue skips the question: the next beats answer.
    fn ask_presence(&self, channel_id: &str) {
        let question = Outgoing {
            channel: room_channel(&self.prefix, channel_id),
            payload: format!("{}\n{PRESENCE_QUERY}", self.node),
        };
        let _ = self.outgoing.try_send(question);
    }

    /// Waits `delay` before the next connection attempt, refusing the
    /// subscriptions asked for meanwhile. False once the bus is gone.
    async fn refuse_while_waiting(
        &self,
        commands: &mut mpsc::UnboundedReceiver<Subscribe>,
        delay: Duration,
    ) -> bool {
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => return true,
                command = commands.recv() => match command {
                    Some(Subscribe { done, .. }) => {
                        let _ = done.send(Err(BusError("Redis is unreachable".to_owned())));
                    }
                    None => return false,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channels_are_namespaced_by_prefix() {
        assert_eq!(room_channel("chat", "game_1"), "chat:room:game_1");
    }

    #[test]
    fn a_payload_names_its_node_before_the_event() {
        assert_eq!(split_payload("n1\n{\"type\":\"pong\"}"), Some(("n1", "{\"type\":\"pong\"}")));
        // The event text may itself hold newlines (escaped in JSON it does
        // not, but the split must only take the first).
        assert_eq!(split_payload("n1\na\nb"), Some(("n1", "a\nb")));
        assert_eq!(split_payload("garbage"), None);
    }

    #[test]
    fn reconnects_wait_at_most_the_cap() {
        assert!(reconnect_delay(0) <= Duration::from_millis(500));
        assert!(reconnect_delay(30) <= MAX_RECONNECT_DELAY);
    }
}
