//! Several nodes sharing rooms through one PostgreSQL database and one
//! Redis: what a page on one node sees of the others, in which order, and
//! what happens when Redis connections or whole nodes go away.
//!
//! Each node here is a full server (its own listener, database pool, Redis
//! connections and hub) running in the test process; `two_processes`
//! below runs the real binary twice.
mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use app::protocol::{ClientFrame, ServerFrame};
use common::{kill_redis_connections, spawn_nodes, Client, Endpoint, Event, REDIS};

/// Reads frames until `count` messages have arrived; returns their seqs.
async fn read_messages(client: &mut Client, count: usize) -> Vec<(i64, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        if let ServerFrame::Message(m) = client.next().await {
            got.push((m.seq, m.body));
        }
    }
    got
}

/// The next message someone else wrote (a page also receives its own).
async fn next_from_others(client: &mut Client, me: &str) -> String {
    loop {
        let message = client.next_message().await;
        if message.user_id != me {
            return message.body;
        }
    }
}

/// Reads frames until the given member event arrives.
async fn wait_for(client: &mut Client, expected: ServerFrame) {
    loop {
        if client.next().await == expected {
            return;
        }
    }
}

#[tokio::test]
async fn pages_on_two_nodes_see_each_others_messages_and_members_in_the_same_order() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ana = a.join("ana", "arena").await;
    let mut bob = b.join("bob", "arena").await;
    // Bob joined through node B: Ana, on node A, is told.
    wait_for(&mut ana, ServerFrame::MemberJoined { user_id: "bob".into() }).await;

    for i in 0..10 {
        ana.say(&format!("a{i}"), &format!("from ana {i}")).await;
        bob.say(&format!("b{i}"), &format!("from bob {i}")).await;
    }
    let seen_by_ana = read_messages(&mut ana, 20).await;
    let seen_by_bob = read_messages(&mut bob, 20).await;
    assert_eq!(seen_by_ana, seen_by_bob, "both nodes deliver the room in one order");
    let seqs: Vec<i64> = seen_by_ana.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());

    // Member changes made through one node reach pages on the other.
    let added =
        a.post_fn("add_user", &[("channel_id", "arena"), ("user_id", "ana"), ("new_user", "carl")]).await;
    assert_eq!(added.status(), 200);
    wait_for(&mut bob, ServerFrame::MemberJoined { user_id: "carl".into() }).await;
    let left = b.post_fn("leave_room", &[("channel_id", "arena"), ("user_id", "carl")]).await;
    assert!(left.status().is_success() || left.status().is_redirection(), "{}", left.status());
    wait_for(&mut ana, ServerFrame::MemberLeft { user_id: "carl".into() }).await;

    // A page that opens the room on either node sees the same room.
    let (_, on_a) = a.connect("bob", "arena", 0).await;
    let (_, on_b) = b.connect("ana", "arena", 0).await;
    assert_eq!(on_a, vec!["ana".to_owned(), "bob".to_owned()]);
    assert_eq!(on_a, on_b);
}

#[tokio::test]
async fn concurrent_senders_on_both_nodes_get_unique_gap_free_seqs() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let users = ["u0", "u1", "u2", "u3"];
    for (i, user) in users.iter().enumerate() {
        assert_eq!(nodes[i % 2].open_room(user, "race").await.0, 200);
    }
    let mut watchers = Vec::new();
    for node in &nodes {
        watchers.push(node.connect("u0", "race", 0).await.0);
    }
    const EACH: usize = 25;
    let mut senders = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut client = nodes[i % 2].connect(user, "race", 0).await.0;
        let user = user.to_string();
        senders.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                seqs.push(client.send_and_ack(&format!("{user}-{n}"), &format!("{user} says {n}")).await);
            }
            seqs
        }));
    }
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    acked.sort();
    let total = users.len() * EACH;
    assert_eq!(acked, (1..=total as i64).collect::<Vec<_>>(), "every send got its own seq, no gaps");
    for watcher in &mut watchers {
        let seqs: Vec<i64> = read_messages(watcher, total).await.into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(
            seqs,
            (1..=total as i64).collect::<Vec<_>>(),
            "each node delivers every seq once, in order"
        );
    }
}

/// A page that reconnects the way the browser does: on a resync or a
/// going-away close it says hello again with the last seq it has.
struct ResumingReader {
    client: Client,
    user: String,
    room: String,
    seqs: Vec<i64>,
    reconnects: usize,
}

impl ResumingReader {
    async fn open(node: &Endpoint, user: &str, room: &str) -> Self {
        let client = node.connect(user, room, 0).await.0;
        ResumingReader { client, user: user.into(), room: room.into(), seqs: Vec::new(), reconnects: 0 }
    }

    /// Reads until `total` messages are in, reconnecting to `node` as
    /// needed. Panics if a message takes longer than the wait to come.
    async fn read_until(&mut self, node: &Endpoint, total: usize) {
        while self.seqs.len() < total {
            match self.client.next_event().await {
                Event::Frame(ServerFrame::Message(m)) => self.seqs.push(m.seq),
                Event::Frame(_) => {}
                Event::Closed(code) => {
                    assert!(matches!(code, Some(4409) | Some(1001) | None), "unexpected close {code:?}");
                    let after = self.seqs.last().copied().unwrap_or(0);
                    self.client = node.connect(&self.user, &self.room, after).await.0;
                    self.reconnects += 1;
                }
            }
        }
    }
}

fn assert_each_once_in_order(seqs: &[i64], total: usize) {
    assert_eq!(seqs.len(), total, "no message lost or duplicated");
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "in seq order");
}

#[tokio::test]
async fn killing_the_nodes_redis_connections_during_a_burst_loses_no_message() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let prefix = a.config.redis_prefix.clone();
    assert_eq!(a.open_room("ana", "burst").await.0, 200);
    assert_eq!(b.open_room("bob", "burst").await.0, 200);
    let mut reader = ResumingReader::open(b, "bob", "burst").await;

    // Ana posts through node A (each post returns once stored), while the
    // nodes' Redis connections are killed again and again.
    const TOTAL: usize = 300;
    let sender = Endpoint::new(a.port);
    let burst = tokio::spawn(async move {
        for n in 0..TOTAL {
            let (id, body) = (format!("m{n}"), format!("message {n}"));
            let form = [("channel_id", "burst"), ("user_id", "ana"), ("client_msg_id", &id), ("body", &body)];
            assert_eq!(sender.post_fn("send_message", &form).await.status(), 200);
        }
    });
    let mut kills = 0;
    let mut killed_connections = 0;
    while !burst.is_finished() && kills < 6 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        killed_connections += kill_redis_connections(&prefix).await;
        kills += 1;
    }
    burst.await.unwrap();
    reader.read_until(b, TOTAL).await;
    assert_each_once_in_order(&reader.seqs, TOTAL);
    assert!(killed_connections >= 4, "the nodes' Redis connections were found and killed");
    println!(
        "redis faults: {kills} kills, {killed_connections} connections killed, {TOTAL} messages, \
         reader reconnected {} times, 0 lost, 0 duplicated",
        reader.reconnects
    );

    // Both nodes recover their Redis connections and the room is live again.
    let mut ready = 0;
    for _ in 0..100 {
        let (status_a, _) = a.get(&format!("{}/readyz", a.base)).await;
        let (status_b, _) = b.get(&format!("{}/readyz", b.base)).await;
        ready = status_a.max(status_b);
        if status_a == 200 && status_b == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "both nodes ready again");
}

#[tokio::test]
async fn when_a_node_stops_its_pages_reconnect_to_the_other_and_catch_up() {
    let mut nodes = spawn_nodes(2, |_| {}).await;
    let mut ana = nodes[0].join("ana", "lobby").await;
    let mut bob = nodes[1].join("bob", "lobby").await;
    wait_for(&mut ana, ServerFrame::MemberJoined { user_id: "bob".into() }).await;
    for n in 0..5 {
        ana.send_and_ack(&format!("a{n}"), "before").await;
    }
    read_messages(&mut bob, 5).await;

    // Node A goes away (a deploy): its pages are told to go elsewhere.
    let stopping = nodes.remove(0);
    let mut stopping = stopping;
    let (closed, ()) = tokio::join!(
        async {
            loop {
                match ana.next_event().await {
                    Event::Closed(code) => return code,
                    Event::Frame(_) => continue,
                }
            }
        },
        stopping.stop()
    );
    assert_eq!(closed, Some(1001));

    // The room goes on without Ana...
    for n in 0..5 {
        bob.send_and_ack(&format!("b{n}"), "meanwhile").await;
    }
    // ...and her page, reconnecting through the load balancer to node B
    // with the last seq it has, gets exactly what it missed.
    let b = &nodes[0];
    let (mut ana, members) = b.connect("ana", "lobby", 5).await;
    assert_eq!(members, vec!["ana".to_owned(), "bob".to_owned()]);
    let caught_up: Vec<i64> = read_messages(&mut ana, 5).await.into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(caught_up, vec![6, 7, 8, 9, 10]);
    ana.send_and_ack("after", "back").await;
    assert_eq!(next_from_others(&mut bob, "bob").await, "back");
}

/// One node of `two_processes`: the real server binary.
struct NodeProcess {
    child: Child,
    endpoint: Endpoint,
}

impl NodeProcess {
    fn start(database_url: &str, prefix: &str) -> NodeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", REDIS)
            .env("REDIS_PREFIX", prefix)
            .env("LEPTOS_SITE_ROOT", "target/site")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server binary starts");
        NodeProcess { child, endpoint: Endpoint::new(port) }
    }

    async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.endpoint.base);
        for _ in 0..200 {
            if let Ok(response) = self.endpoint.http.get(&url).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node on port {} never became ready", self.endpoint.port);
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_processes_share_a_room_and_a_crashed_nodes_pages_catch_up_on_the_other() {
    let (_db, url) = common::TestDatabase::postgres().await;
    let prefix = common::unique_redis_prefix();
    let mut first = NodeProcess::start(&url, &prefix);
    // The first node creates the schema; the second finds it migrated.
    first.wait_ready().await;
    let second = NodeProcess::start(&url, &prefix);
    second.wait_ready().await;
    let (a, b) = (&first.endpoint, &second.endpoint);

    let mut ana = a.join("ana", "duel").await;
    let mut bob = b.join("bob", "duel").await;
    wait_for(&mut ana, ServerFrame::MemberJoined { user_id: "bob".into() }).await;
    ana.send_and_ack("hi", "hello from A").await;
    assert_eq!(next_from_others(&mut bob, "bob").await, "hello from A");
    bob.send_and_ack("yo", "hello from B").await;
    assert_eq!(next_from_others(&mut ana, "ana").await, "hello from B");

    // Node A crashes (no goodbye); Bob keeps talking.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut sent = HashSet::new();
    for n in 0..10 {
        sent.insert(bob.send_and_ack(&format!("b{n}"), &format!("while A is down {n}")).await);
    }
    assert_eq!(sent.len(), 10);
    let (mut ana, _) = b.connect("ana", "duel", 2).await;
    let caught_up: Vec<i64> = read_messages(&mut ana, 10).await.into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(caught_up, (3..=12).collect::<Vec<_>>());
    ana.send(&ClientFrame::Ping).await;
    assert_eq!(ana.next().await, ServerFrame::Pong);
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_on_readyz_and_refused_streams_say_why() {
    // Nothing listens on port 1: the bus keeps retrying in the background.
    let app = common::spawn_app_with(|c| {
        c.redis_url = Some("redis://127.0.0.1:1/".to_owned());
        c.redis_prefix = common::unique_redis_prefix();
    })
    .await;
    let (status, body) = app.get(&format!("{}/readyz", app.base)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Redis"), "{body}");
    // Liveness is about the process.
    assert_eq!(app.get(&format!("{}/healthz", app.base)).await.0, 200);
    // A page cannot go live without the bus, and is told so (it retries).
    assert_eq!(app.open_room("ana", "r").await.0, 200);
    let mut client = app.raw_stream().await;
    let hello =
        ClientFrame::Hello { channel_id: "r".into(), user_id: "ana".into(), after_seq: 0, token: None };
    client.send(&hello).await;
    match client.next().await {
        ServerFrame::Error { message, .. } => assert!(message.contains("Please try again"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(client.next_event().await, Event::Closed(Some(1011)));
}

/// A big room's members (a list each node keeps between reads) stay right
/// on every node while people join and leave through the others.
#[tokio::test]
async fn a_big_rooms_member_list_follows_joins_and_departures_on_every_node() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (status, _) = a.open_room("ana", "hall").await;
    assert_eq!(status, 200);
    let mut expected = vec!["ana".to_owned()];
    let add = |node: usize, name: String| {
        let node = &nodes[node];
        async move {
            let response = node
                .post_fn("add_user", &[("channel_id", "hall"), ("user_id", "ana"), ("new_user", &name)])
                .await;
            assert!(response.status().is_success(), "{}", response.status());
        }
    };
    for i in 0..80 {
        // Names that do not sort in the order they joined.
        let name = format!("{}-{i}", if i % 2 == 0 { "zed" } else { "amy" });
        add(i % 2, name.clone()).await;
        expected.push(name);
    }
    assert_eq!(a.connect("ana", "hall", 0).await.1, expected);
    assert_eq!(b.connect("ana", "hall", 0).await.1, expected);

    // Through node B: one leaves and two come; node A's next page sees it.
    let left = b.post_fn("leave_room", &[("channel_id", "hall"), ("user_id", "amy-41")]).await;
    assert!(left.status().is_success(), "{}", left.status());
    expected.retain(|name| name != "amy-41");
    for name in ["bea", "cal"] {
        add(1, name.to_owned()).await;
        expected.push(name.to_owned());
    }
    assert_eq!(a.connect("ana", "hall", 0).await.1, expected);
    add(0, "dee".to_owned()).await;
    expected.push("dee".to_owned());
    assert_eq!(b.connect("ana", "hall", 0).await.1, expected);
    assert_eq!(a.connect("ana", "hall", 0).await.1, expected);
    // The kept lists were brought up to date, not only read whole.
    let (_, metrics) = a.get(&format!("{}/metrics", a.base)).await;
    let newcomer_reads = metrics
        .lines()
        .find_map(|line| line.strip_prefix("chat_member_list_reads_total{how=\"newcomers\"} "))
        .and_then(|n| n.trim().parse::<f64>().ok());
    assert!(newcomer_reads.is_some_and(|n| n > 0.0), "{metrics}");
}

/// What another node replays from PostgreSQL is the message as it was
/// delivered live: its body to the last character, its time to the
/// millisecond.
#[tokio::test]
async fn a_message_replayed_by_another_node_is_the_one_delivered_live() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ana = a.join("ana", "notes").await;
    let tricky = "quotes \" and \\ backslash,\nnew line, tab\t, ünïcode ✓ and 🎲";
    ana.say("t1", tricky).await;
    let live = ana.next_message().await;
    assert_eq!(live.body, tricky);
    let (mut again, _) = b.connect("ana", "notes", 0).await;
    assert_eq!(again.next_message().await, live);
    let page = b
        .post_fn("older_messages", &[("channel_id", "notes"), ("user_id", "ana"), ("before_seq", "2")])
        .await;
    assert!(page.status().is_success(), "{}", page.status());
    assert!(page.text().await.unwrap().contains(&live.at_ms.to_string()));
}
