//! Moderation as players meet it: the word filter masks or refuses a
//! message before it is stored, through the stream and through the form
//! posted without JavaScript, and follows its list file as it is edited;
//! moderators remove messages, mute, kick and ban members and set slow
//! mode, members report messages to them, and players can do none of a
//! moderator's actions by any path (stream frame, server function, form,
//! forged token). Each action is seen by every page of the room, stays in
//! the history and replays after a reconnect.
mod common;

use std::time::Duration;

use app::protocol::moderation::{Action, Request};
use app::protocol::{ChatMessage, ClientFrame, ErrorCode, ServerFrame};
use common::{list_items, spawn_app_with, spawn_nodes, Client, Endpoint, Event, TestApp};
use moderation::Mode;
use sea_orm::{ConnectionTrait, DatabaseConnection};

const QUIET: Duration = Duration::from_millis(300);

/// The room's stored messages, as its page shows them.
async fn stored(app: &TestApp, user: &str, room: &str) -> Vec<String> {
    let (_, html) = app.open_room(user, room).await;
    list_items(&html, "messages")
}

/// A server whose word filter reads `list` from a file in `dir` (and
/// where `mod` is a moderator).
async fn filtered(dir: &tempfile::TempDir, list: &str, mode: Mode) -> TestApp {
    let path = dir.path().join("words.txt");
    std::fs::write(&path, list).unwrap();
    spawn_app_with(|config| {
        config.word_filter_file = Some(path);
        config.word_filter_mode = mode;
        config.moderators = vec!["mod".into()];
    })
    .await
}

#[tokio::test]
async fn in_mask_mode_the_words_are_starred_for_everyone_and_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let app = filtered(&dir, "# test list\ndarn\nget lost\n", Mode::Mask).await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    ana.next().await; // bob joined

    ana.send_and_ack("m1", "oh D.A.R.N, get   lost 👋").await;
    // A phrase is starred from its first letter to its last.
    let expected = "oh *******, ********** 👋";
    assert_eq!(ana.next_message().await.body, expected);
    assert_eq!(bob.next_message().await.body, expected);
    // A word that merely contains an entry is left alone.
    ana.send_and_ack("m2", "darning socks").await;
    assert_eq!(bob.next_message().await.body, "darning socks");
    assert_eq!(
        stored(&app, "bob", "r").await,
        vec![format!("ana: {expected}"), "ana: darning socks".to_owned()]
    );
}

#[tokio::test]
async fn in_block_mode_the_message_is_refused_with_a_reason_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = filtered(&dir, "darn\n", Mode::Block).await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    ana.next().await; // bob joined

    ana.say("m1", "well dárn").await;
    match ana.next().await {
        ServerFrame::Error { code, message, client_msg_id, .. } => {
            assert_eq!(code, ErrorCode::InvalidInput);
            assert_eq!(message, "Your message was not sent: it contains words this chat does not allow.");
            assert_eq!(client_msg_id.as_deref(), Some("m1"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    bob.expect_silence(QUIET).await;
    // The connection carries on, and a clean message goes through.
    assert_eq!(ana.send_and_ack("m2", "well then").await, 1);
    assert_eq!(stored(&app, "bob", "r").await, vec!["ana: well then"]);

    // The form posted without JavaScript is refused the same way.
    let response = app
        .post_fn(
            "send_message",
            &[("channel_id", "r"), ("user_id", "ana"), ("client_msg_id", "f1"), ("body", "darn")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("words this chat does not allow"));
    assert_eq!(stored(&app, "bob", "r").await, vec!["ana: well then"]);
}

#[tokio::test]
async fn an_edited_list_is_in_force_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let app = filtered(&dir, "darn\n", Mode::Mask).await;
    let mut ana = app.join("ana", "r").await;
    // Modification times can be coarse: the edit must look newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(dir.path().join("words.txt"), "heck\n").unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    loop {
        n += 1;
        ana.send_and_ack(&format!("m{n}"), "heck and darn").await;
        let body = ana.next_message().await.body;
        if body == "**** and darn" {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "still {body:?} after the edit");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_server_given_a_malformed_list_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.txt");
    std::fs::write(&path, "darn\n!!!\n").unwrap();
    let mut config = server::config::Config::for_tests("sqlite::memory:".to_owned());
    config.word_filter_file = Some(path);
    let problem =
        server::startup::Application::build(config).await.err().expect("refuses to start").to_string();
    assert!(problem.contains("words.txt") && problem.contains("line 2"), "{problem}");
}

/// A server where `mod` is a moderator in every room (open mode).
async fn moderated() -> TestApp {
    spawn_app_with(|c| c.moderators = vec!["mod".into()]).await
}

/// Asks for `request` over the stream; returns the answer to it (`Done`
/// or the refusal), setting aside nothing else: other frames are read past.
async fn act(client: &mut Client, request: Request) -> ServerFrame {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let request_id = format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed));
    client.send(&ClientFrame::Act { request_id: request_id.clone(), request }).await;
    loop {
        let frame = client.next().await;
        let answers = match &frame {
            ServerFrame::Done { request_id: id } | ServerFrame::Error { request_id: Some(id), .. } => {
                *id == request_id
            }
            _ => false,
        };
        if answers {
            return frame;
        }
    }
}

/// Asks for `request` over the stream and expects it done.
async fn done(client: &mut Client, request: Request) {
    let answer = act(client, request.clone()).await;
    assert!(matches!(answer, ServerFrame::Done { .. }), "{request:?}: {answer:?}");
}

/// The next moderation event a page receives.
async fn next_action(client: &mut Client) -> (ChatMessage, Action) {
    loop {
        if let ServerFrame::Message(m) = client.next().await {
            if let Some(action) = m.action.clone() {
                return (m, action);
            }
        }
    }
}

/// The next refusal a page receives (its own copies of messages, and
/// the history a fresh page replays, read past).
async fn refusal(client: &mut Client) -> (ErrorCode, String) {
    loop {
        if let ServerFrame::Error { code, message, .. } = client.next().await {
            return (code, message);
        }
    }
}

/// The next moderation event of a page that matches `wanted` (earlier ones,
/// replayed to a fresh page, read past).
async fn next_action_like(client: &mut Client, wanted: impl Fn(&Action) -> bool) -> Action {
    loop {
        let (_, action) = next_action(client).await;
        if wanted(&action) {
            return action;
        }
    }
}

/// Asks for `request` through the `moderate` server function (JSON), as
/// the page's menus do.
async fn moderate_fn(app: &Endpoint, user: &str, room: &str, request: &Request) -> (u16, String) {
    let body = serde_json::json!({ "channel_id": room, "user_id": user, "request": request });
    let response = app
        .http
        .post(format!("{}/api/moderate", app.base))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn database(app: &TestApp) -> DatabaseConnection {
    let pool = engine::store::PoolSettings { max_connections: 1, timeout: Duration::from_secs(5) };
    engine::store::connect(&app.config.database_url, pool).await.unwrap()
}

/// One text value of the database (`SELECT` of one row and column).
async fn db_text(db: &DatabaseConnection, sql: &str) -> Option<String> {
    let row = db.query_one(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap()?;
    row.try_get_by_index::<Option<String>>(0).unwrap()
}

#[tokio::test]
async fn a_member_found_banned_is_taken_out_of_the_room_wherever_they_come_in() {
    let app = moderated().await;
    let mut moderator = app.join("mod", "r").await;
    app.open_room("bob", "r").await;
    moderator.next().await; // bob joined
                            // A ban that committed while bob was joining: he is a member and banned.
    let db = database(&app).await;
    let room_id = db_text(&db, "SELECT CAST(id AS TEXT) FROM room WHERE channel_id = 'r'").await.unwrap();
    let sql = format!(
        "INSERT INTO sanction (room_id, user_id, kind, until, reason, by_user, created_at) \
         VALUES ({room_id}, 'bob', 'ban', NULL, 'raced', 'mod', '2026-01-01T00:00:00Z')"
    );
    db.execute_unprepared(&sql).await.unwrap();
    let (_, refused) = app.hello("bob", "r", 0).await;
    assert!(matches!(refused, ServerFrame::Error { code: ErrorCode::NotMember, .. }), "{refused:?}");
    assert_eq!(moderator.next().await, ServerFrame::MemberLeft { user_id: "bob".into() });
    let (status, html) = app.open_room("bob", "r").await;
    assert_eq!(status, 403);
    assert!(html.contains("raced"));
    let (_, html) = app.open_room("mod", "r").await;
    assert_eq!(list_items(&html, "member-list"), ["mod"], "no longer listed");
}

/// Moves a member's sanction's end to the past, as time passing would.
async fn expire(app: &TestApp, user: &str, kind: &str) {
    let db = database(app).await;
    let past = "2020-01-01T00:00:00Z";
    let sql = format!("UPDATE sanction SET until = '{past}' WHERE user_id = '{user}' AND kind = '{kind}'");
    assert_eq!(db.execute_unprepared(&sql).await.unwrap().rows_affected(), 1);
}

#[tokio::test]
async fn a_removed_message_leaves_every_page_history_replay_and_paging_and_the_database_says_who() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let seq = ana.send_and_ack("m1", "my secret text").await;
    ana.send_and_ack("m2", "an ordinary line").await;
    for page in [&mut bob, &mut moderator] {
        assert_eq!(page.next_message().await.seq, seq);
    }

    done(&mut moderator, Request::Remove { seq }).await;
    for page in [&mut ana, &mut bob, &mut moderator] {
        let (event, action) = next_action(page).await;
        assert_eq!(action, Action::Remove { seq });
        assert_eq!(event.user_id, "mod", "the event names who acted");
        assert_eq!(event.seq, seq + 2, "in the room's order, after what came before");
    }

    // The page, a replay from the start and the history pages: never the text.
    let (_, html) = app.open_room("bob", "r").await;
    assert!(!html.contains("my secret text"));
    assert!(html.contains("an ordinary line"));
    let (mut replayed, _) = app.connect("bob", "r", 0).await;
    let first = replayed.next_message().await;
    assert_eq!((first.seq, first.body.as_str()), (seq, ""));
    assert_eq!(first.removed.as_ref().map(|r| r.by.as_str()), Some("mod"));
    let older = app
        .post_fn("older_messages", &[("channel_id", "r"), ("user_id", "bob"), ("before_seq", "100")])
        .await
        .text()
        .await
        .unwrap();
    assert!(!older.contains("my secret text") && older.contains("\"removed\""), "{older}");

    // Kept: who and when; erased (the default setting): the text.
    let db = database(&app).await;
    let by = db_text(&db, &format!("SELECT removed_by FROM message WHERE seq = {seq}")).await;
    assert_eq!(by.as_deref(), Some("mod"));
    let at = db_text(&db, &format!("SELECT CAST(removed_at AS TEXT) FROM message WHERE seq = {seq}")).await;
    assert!(at.is_some());
    assert_eq!(
        db_text(&db, &format!("SELECT body FROM message WHERE seq = {seq}")).await.as_deref(),
        Some("")
    );

    // Removing it again changes nothing and says so.
    let again = act(&mut moderator, Request::Remove { seq }).await;
    assert!(
        matches!(&again, ServerFrame::Error { message, .. } if message.contains("was removed")),
        "{again:?}"
    );
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_purge_removes_all_a_user_wrote_before_it_on_every_page_in_the_replay_and_in_the_store() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let spam = ana.send_and_ack("a1", "buy gold here").await;
    bob.send_and_ack("b1", "hello there").await;
    ana.send_and_ack("a2", "buy more gold").await;
    done(&mut bob, Request::Report { seq: spam, reason: String::new() }).await;

    // A player may not purge; a moderator may.
    let purge = Request::Purge { user_id: "ana".into() };
    let refused = act(&mut bob, purge.clone()).await;
    assert!(matches!(refused, ServerFrame::Error { code: ErrorCode::Forbidden, .. }), "{refused:?}");
    done(&mut moderator, purge.clone()).await;
    for page in [&mut ana, &mut bob, &mut moderator] {
        let action = next_action_like(page, |a| matches!(a, Action::Purge { .. })).await;
        assert_eq!(action, Action::Purge { user_id: "ana".into() });
    }
    // What she says after it stays.
    let later = ana.send_and_ack("a3", "sorry").await;

    // A replay from the start: her two earlier messages without their text.
    let (mut replayed, _) = app.connect("bob", "r", 0).await;
    let mut seen = Vec::new();
    loop {
        let message = replayed.next_message().await;
        if message.action.is_none() {
            seen.push((message.user_id.clone(), message.body.clone(), message.removed.is_some()));
        }
        if message.seq == later {
            break;
        }
    }
    let line = |user: &str, body: &str, removed| (user.to_owned(), body.to_owned(), removed);
    assert_eq!(
        seen,
        [
            line("ana", "", true),
            line("bob", "hello there", false),
            line("ana", "", true),
            line("ana", "sorry", false)
        ]
    );
    let (_, html) = app.open_room("bob", "r").await;
    assert!(!html.contains("gold") && html.contains("hello there") && html.contains("sorry"), "{html}");
    // Erased in the store, the report's copy too.
    let db = database(&app).await;
    let texts = "SELECT COALESCE(MAX(body), '') FROM message WHERE user_id = 'ana' AND seq < ";
    assert_eq!(db_text(&db, &format!("{texts}{later}")).await.as_deref(), Some(""));
    assert_eq!(db_text(&db, "SELECT body FROM report").await.as_deref(), Some(""));

    // A second purge takes what she said since; a third finds nothing,
    // says so and records nothing.
    done(&mut moderator, purge.clone()).await;
    let again = act(&mut moderator, purge).await;
    assert!(
        matches!(&again, ServerFrame::Error { message, .. } if message.contains("no messages here to remove")),
        "{again:?}"
    );
}

#[tokio::test]
async fn with_removed_text_kept_the_database_keeps_it_and_pages_still_never_see_it() {
    let app = spawn_app_with(|c| {
        c.moderators = vec!["mod".into()];
        c.removed_text = engine::store::moderation::RemovedText::Keep;
    })
    .await;
    let mut ana = app.join("ana", "r").await;
    let seq = ana.send_and_ack("m1", "evidence").await;
    // The author removes their own message, through the form posted
    // without JavaScript (a redirect back to the room).
    let response = app
        .post_plain_form(
            "remove_message",
            &[("channel_id", "r"), ("user_id", "ana"), ("seq", &seq.to_string())],
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let (_, action) = next_action(&mut ana).await;
    assert_eq!(action, Action::Remove { seq });
    let db = database(&app).await;
    assert_eq!(db_text(&db, "SELECT body FROM message WHERE seq = 1").await.as_deref(), Some("evidence"));
    assert_eq!(db_text(&db, "SELECT removed_by FROM message WHERE seq = 1").await.as_deref(), Some("ana"));
    let (_, html) = app.open_room("ana", "r").await;
    assert!(!html.contains("evidence"));
    let (mut replayed, _) = app.connect("ana", "r", 0).await;
    assert_eq!(replayed.next_message().await.body, "");
}

#[tokio::test]
async fn a_player_removes_only_their_own_messages_and_no_moderator_action_by_any_path() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let anas = ana.send_and_ack("m1", "ana's").await;
    let bobs = bob.send_and_ack("m2", "bob's").await;
    for page in [&mut ana, &mut bob, &mut moderator] {
        // Both messages, one's own copy included.
        assert_eq!(page.next_message().await.seq, anas);
        assert_eq!(page.next_message().await.seq, bobs);
    }
    let on_members = [
        Request::Remove { seq: bobs },
        Request::Mute { user_id: "bob".into(), minutes: Some(10), reason: String::new() },
        Request::Unmute { user_id: "bob".into() },
        Request::Kick { user_id: "bob".into(), reason: String::new() },
        Request::Ban { user_id: "bob".into(), minutes: None, reason: String::new() },
        Request::Unban { user_id: "bob".into() },
        Request::SlowMode { seconds: 30 },
        Request::CloseReport { id: 1, resolved: true },
        Request::Mute { user_id: "mod".into(), minutes: None, reason: String::new() },
    ];
    for request in &on_members {
        // A stream frame…
        match act(&mut ana, request.clone()).await {
            ServerFrame::Error { code, message, .. } => {
                assert!(
                    matches!(code, ErrorCode::Forbidden | ErrorCode::InvalidInput),
                    "{request:?}: {code:?}"
                );
                assert!(!message.is_empty());
            }
            other => panic!("{request:?} was not refused: {other:?}"),
        }
        // …and the server function.
        let (status, body) = moderate_fn(&app, "ana", "r", request).await;
        assert!(status == 403 || status == 404, "{request:?}: {status} {body}");
    }
    // The form without JavaScript, on someone else's message.
    let form = [("channel_id", "r"), ("user_id", "ana"), ("seq", &bobs.to_string())];
    assert_eq!(app.post_fn("remove_message", &form).await.status(), 403);
    // Nothing happened: nobody heard of anything, nothing is gone.
    bob.expect_silence(QUIET).await;
    moderator.expect_silence(QUIET).await;
    let (_, html) = app.open_room("bob", "r").await;
    assert!(html.contains("bob&#x27;s") || html.contains("bob's"));

    // Her own message she may remove.
    done(&mut ana, Request::Remove { seq: anas }).await;
    assert_eq!(next_action(&mut bob).await.1, Action::Remove { seq: anas });
    // Not a message: an event cannot be removed, nor can a seq that is not there.
    let missing = act(&mut moderator, Request::Remove { seq: 99 }).await;
    assert!(matches!(missing, ServerFrame::Error { .. }), "{missing:?}");
    let event_seq = bobs + 1;
    let on_event = act(&mut moderator, Request::Remove { seq: event_seq }).await;
    assert!(matches!(on_event, ServerFrame::Error { .. }), "{on_event:?}");
}

#[tokio::test]
async fn a_muted_player_reads_but_cannot_send_until_the_mute_is_lifted_or_ends() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let mute = Request::Mute { user_id: "bob".into(), minutes: Some(10), reason: "spam".into() };
    done(&mut moderator, mute).await;
    match next_action(&mut bob).await.1 {
        Action::Mute { user_id, until_ms: Some(_), reason } => {
            assert_eq!((user_id.as_str(), reason.as_str()), ("bob", "spam"))
        }
        other => panic!("{other:?}"),
    }
    next_action(&mut ana).await;

    // The stream refuses his sends with the reason; he still reads.
    bob.say("b1", "let me talk").await;
    match bob.next().await {
        ServerFrame::Error { code: ErrorCode::Muted, message, client_msg_id, .. } => {
            assert_eq!(client_msg_id.as_deref(), Some("b1"));
            assert!(message.starts_with("You are muted in this room for another 10 minutes"), "{message}");
            assert!(message.contains("spam"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    ana.send_and_ack("a1", "hello bob").await;
    assert_eq!(bob.next_message().await.body, "hello bob");
    // The form refuses too, and the page he opens says he is muted.
    let form = [("channel_id", "r"), ("user_id", "bob"), ("client_msg_id", "f1"), ("body", "via form")];
    let response = app.post_fn("send_message", &form).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("muted"));
    let (_, welcome) = app.hello("bob", "r", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { muted: Some(_), .. }), "{welcome:?}");
    // Leaving and coming back lifts nothing.
    app.post_fn("leave_room", &[("channel_id", "r"), ("user_id", "bob")]).await;
    let mut bob = app.join("bob", "r").await;
    bob.say("b2", "back again").await;
    assert_eq!(refusal(&mut bob).await.0, ErrorCode::Muted);

    // Lifted: the open page may send at once.
    done(&mut moderator, Request::Unmute { user_id: "bob".into() }).await;
    next_action_like(&mut bob, |a| matches!(a, Action::Unmute { .. })).await;
    bob.send_and_ack("b3", "thanks").await;
    let again = act(&mut moderator, Request::Unmute { user_id: "bob".into() }).await;
    assert!(
        matches!(&again, ServerFrame::Error { message, .. } if message == "bob is not muted."),
        "{again:?}"
    );

    // A mute that ends: muted again, then its time passes.
    done(&mut moderator, Request::Mute { user_id: "bob".into(), minutes: Some(1), reason: String::new() })
        .await;
    expire(&app, "bob", "mute").await;
    let form = [("channel_id", "r"), ("user_id", "bob"), ("client_msg_id", "f2"), ("body", "time is up")];
    assert!(app.post_plain_form("send_message", &form).await.status().is_redirection());
    let (mut fresh, welcome) = app.hello("bob", "r", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { muted: None, .. }), "{welcome:?}");
    fresh.send_and_ack("b4", "free again").await;
}

#[tokio::test]
async fn a_kicked_member_is_sent_out_and_may_come_back_a_banned_one_may_not_until_unbanned() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;

    done(&mut moderator, Request::Kick { user_id: "bob".into(), reason: "calm down".into() }).await;
    assert!(matches!(next_action(&mut bob).await.1, Action::Kick { .. }), "told first");
    assert_eq!(bob.next_event().await, Event::Closed(Some(4410)), "then closed: no reconnecting");
    assert!(matches!(next_action(&mut ana).await.1, Action::Kick { .. }));
    assert_eq!(ana.next().await, ServerFrame::MemberLeft { user_id: "bob".into() });
    // He may come back.
    let mut bob = app.join("bob", "r").await;
    bob.send_and_ack("b1", "sorry").await;

    let ban = Request::Ban { user_id: "bob".into(), minutes: Some(60), reason: "again".into() };
    done(&mut moderator, ban).await;
    next_action_like(&mut bob, |a| matches!(a, Action::Ban { .. })).await;
    assert_eq!(bob.next_event().await, Event::Closed(Some(4410)));
    // No way back in: the page, the stream, a friend adding him, a form.
    let (status, html) = app.open_room("bob", "r").await;
    assert_eq!(status, 403);
    assert!(html.contains("You are banned from this room for another 1 hour"), "a readable page");
    assert!(html.contains("again"));
    let (_, refused) = app.hello("bob", "r", 0).await;
    assert!(
        matches!(&refused, ServerFrame::Error { code: ErrorCode::NotMember, message, .. } if message.contains("banned")),
        "{refused:?}"
    );
    let add = app.post_fn("add_user", &[("channel_id", "r"), ("user_id", "ana"), ("new_user", "bob")]).await;
    assert_eq!(add.status(), 403);
    assert!(add.text().await.unwrap().contains("bob is banned from this room."));
    let form = [("channel_id", "r"), ("user_id", "bob"), ("client_msg_id", "f1"), ("body", "hi")];
    assert_eq!(app.post_fn("send_message", &form).await.status(), 403);

    // Lifted by a moderator: he may come back.
    done(&mut moderator, Request::Unban { user_id: "bob".into() }).await;
    assert_eq!(app.open_room("bob", "r").await.0, 200);
    // A ban with an end: once it has passed, the door is open again.
    let mut bob = app.connect("bob", "r", i64::MAX).await.0;
    done(&mut moderator, Request::Ban { user_id: "bob".into(), minutes: Some(5), reason: String::new() })
        .await;
    next_action_like(&mut bob, |a| matches!(a, Action::Ban { until_ms: Some(_), .. })).await;
    assert_eq!(bob.next_event().await, Event::Closed(Some(4410)));
    expire(&app, "bob", "ban").await;
    assert_eq!(app.open_room("bob", "r").await.0, 200);
}

#[tokio::test]
async fn a_page_away_when_its_user_was_kicked_is_told_the_kick_when_it_comes_back() {
    let app = moderated().await;
    let mut moderator = app.join("mod", "r").await;
    let bob = app.join("bob", "r").await;
    let seq = moderator.send_and_ack("m1", "hello").await;
    drop(bob); // his page goes away
    done(&mut moderator, Request::Kick { user_id: "bob".into(), reason: "calm down".into() }).await;

    // Coming back with what it had, the page hears the kick, then the close
    // that stops it reconnecting.
    let (mut bob, first) = app.hello("bob", "r", seq).await;
    let kicked = |frame: &ServerFrame| {
        matches!(frame, ServerFrame::Message(m) if matches!(&m.action,
            Some(Action::Kick { user_id, reason }) if user_id == "bob" && reason == "calm down"))
    };
    assert!(kicked(&first), "{first:?}");
    assert_eq!(bob.next_event().await, Event::Closed(Some(4410)));
    // And again, from a page that had seen nothing of the room.
    let (_, first) = app.hello("bob", "r", 0).await;
    assert!(kicked(&first), "{first:?}");

    // Someone who left by himself is no member, and hears just that.
    let carl = app.join("carl", "r").await;
    drop(carl);
    let left = app.post_fn("leave_room", &[("channel_id", "r"), ("user_id", "carl")]).await;
    assert!(left.status().is_success() || left.status().is_redirection(), "{}", left.status());
    let (mut carl, first) = app.hello("carl", "r", seq).await;
    assert!(matches!(first, ServerFrame::Error { code: ErrorCode::NotMember, .. }), "{first:?}");
    assert_eq!(carl.next_event().await, Event::Closed(Some(4403)));

    // Once back in the room (the kick let him), he is welcomed as anyone.
    assert_eq!(app.open_room("bob", "r").await.0, 200);
    let (_, first) = app.hello("bob", "r", seq).await;
    assert!(matches!(first, ServerFrame::Welcome { .. }), "{first:?}");
    // And a later ban is told as a ban, not as the old kick.
    done(&mut moderator, Request::Ban { user_id: "bob".into(), minutes: None, reason: "again".into() }).await;
    let (_, refused) = app.hello("bob", "r", seq).await;
    assert!(
        matches!(&refused, ServerFrame::Error { code: ErrorCode::NotMember, message, .. } if message.contains("banned")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn slow_mode_lets_a_player_send_once_per_period_and_spares_moderators() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut moderator = app.join("mod", "r").await;
    done(&mut moderator, Request::SlowMode { seconds: 30 }).await;
    assert_eq!(next_action(&mut ana).await.1, Action::SlowMode { seconds: 30 });

    ana.send_and_ack("a1", "one").await;
    ana.say("a2", "two").await;
    let (code, message) = refusal(&mut ana).await;
    assert_eq!(code, ErrorCode::SlowMode);
    assert!(message.starts_with("Slow mode is on: you can send again in 30 seconds"), "{message}");
    moderator.send_and_ack("m1", "mods").await;
    moderator.send_and_ack("m2", "are exempt").await;
    // A page opened now learns of it in its welcome; off again, anyone sends.
    let (_, welcome) = app.hello("ana", "r", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { slow_mode_secs: 30, .. }), "{welcome:?}");
    done(&mut moderator, Request::SlowMode { seconds: 0 }).await;
    next_action_like(&mut ana, |a| *a == Action::SlowMode { seconds: 0 }).await;
    ana.send_and_ack("a3", "three").await;
    let (status, body) = moderate_fn(&app, "mod", "r", &Request::SlowMode { seconds: 99_999 }).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn under_slow_mode_a_message_the_filter_refuses_does_not_start_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let app = filtered(&dir, "darn\n", Mode::Block).await;
    let mut ana = app.join("ana", "r").await;
    let mut moderator = app.join("mod", "r").await;
    done(&mut moderator, Request::SlowMode { seconds: 30 }).await;
    next_action_like(&mut ana, |a| *a == Action::SlowMode { seconds: 30 }).await;

    ana.say("a1", "well darn").await;
    assert_eq!(refusal(&mut ana).await.0, ErrorCode::InvalidInput);
    // The corrected message goes at once; the one after it waits.
    ana.send_and_ack("a2", "well then").await;
    ana.say("a3", "and again").await;
    assert_eq!(refusal(&mut ana).await.0, ErrorCode::SlowMode);
}

#[tokio::test]
async fn a_report_reaches_the_moderators_alone_and_leaves_their_queue_once_closed() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut bob = app.join("bob", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let seq = ana.send_and_ack("a1", "something rude").await;
    ana.next_message().await;
    bob.next_message().await;
    moderator.next_message().await;

    done(&mut bob, Request::Report { seq, reason: "insulting".into() }).await;
    let report = loop {
        if let ServerFrame::Reported { report } = moderator.next().await {
            break report;
        }
    };
    assert_eq!(
        (
            report.seq,
            report.author.as_str(),
            report.body.as_str(),
            report.reporter.as_str(),
            report.reason.as_str()
        ),
        (seq, "ana", "something rude", "bob", "insulting")
    );
    ana.expect_total_silence(QUIET).await; // players never hear of reports
                                           // Her own message she cannot report; a report without JavaScript works.
    let own = act(&mut ana, Request::Report { seq, reason: String::new() }).await;
    assert!(matches!(own, ServerFrame::Error { code: ErrorCode::Forbidden, .. }), "{own:?}");
    app.open_room("cat", "r").await;
    let mut cat = app.connect("cat", "r", i64::MAX).await.0;
    let form = [("channel_id", "r"), ("user_id", "cat"), ("seq", &seq.to_string()), ("reason", "")];
    assert!(app.post_plain_form("report_message", &form).await.status().is_redirection());
    cat.expect_silence(QUIET).await;

    // The queue: moderators only.
    let queue = |user: &'static str| {
        let app = &app;
        async move {
            let response = app.post_fn("open_reports", &[("channel_id", "r"), ("user_id", user)]).await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(queue("bob").await.0, 403);
    let (status, open) = queue("mod").await;
    assert_eq!(status, 200);
    let open: Vec<app::protocol::moderation::Report> = serde_json::from_str(&open).unwrap();
    assert_eq!(open.iter().map(|r| r.reporter.as_str()).collect::<Vec<_>>(), ["bob", "cat"]);

    done(&mut moderator, Request::CloseReport { id: report.id, resolved: true }).await;
    let closed = act(&mut moderator, Request::CloseReport { id: report.id, resolved: false }).await;
    assert!(matches!(closed, ServerFrame::Error { .. }), "closed once: {closed:?}");
    let (_, open) = queue("mod").await;
    let open: Vec<app::protocol::moderation::Report> = serde_json::from_str(&open).unwrap();
    assert_eq!(open.len(), 1);
    let db = database(&app).await;
    let handled = db_text(&db, &format!("SELECT handled_by FROM report WHERE id = {}", report.id)).await;
    assert_eq!(handled.as_deref(), Some("mod"));
}

#[tokio::test]
async fn a_page_that_was_away_replays_the_actions_it_missed() {
    let app = moderated().await;
    let mut ana = app.join("ana", "r").await;
    let mut moderator = app.join("mod", "r").await;
    let seq = ana.send_and_ack("a1", "soon gone").await;
    app.open_room("bob", "r").await; // a member, with no page open
    done(&mut moderator, Request::Remove { seq }).await;
    done(&mut moderator, Request::Mute { user_id: "bob".into(), minutes: None, reason: String::new() }).await;
    done(&mut moderator, Request::SlowMode { seconds: 10 }).await;
    // Bob comes back with what he had (seq 1): the three events replay.
    let (mut bob, welcome) = app.hello("bob", "r", seq).await;
    assert!(
        matches!(welcome, ServerFrame::Welcome { muted: Some(_), slow_mode_secs: 10, .. }),
        "{welcome:?}"
    );
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(next_action(&mut bob).await.1);
    }
    assert_eq!(replayed[0], Action::Remove { seq });
    assert!(matches!(replayed[1], Action::Mute { until_ms: None, .. }));
    assert_eq!(replayed[2], Action::SlowMode { seconds: 10 });
}

#[tokio::test]
async fn on_two_nodes_an_action_taken_on_one_holds_on_the_other() {
    let nodes = spawn_nodes(2, |c| c.moderators = vec!["mod".into()]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut moderator = a.join("mod", "r").await;
    let mut bob = b.join("bob", "r").await;
    let mut cat = b.join("cat", "r").await;
    let seq = bob.send_and_ack("b1", "from node b").await;
    assert_eq!(moderator.next_message().await.seq, seq);

    done(&mut moderator, Request::Remove { seq }).await;
    assert_eq!(next_action(&mut bob).await.1, Action::Remove { seq });
    assert_eq!(next_action(&mut cat).await.1, Action::Remove { seq });
    done(&mut moderator, Request::Mute { user_id: "bob".into(), minutes: Some(5), reason: String::new() })
        .await;
    assert!(matches!(next_action(&mut bob).await.1, Action::Mute { .. }));
    bob.say("b2", "still here?").await;
    assert!(matches!(bob.next().await, ServerFrame::Error { code: ErrorCode::Muted, .. }));

    // A report filed on node b reaches the moderator on node a.
    let mods = moderator.send_and_ack("m1", "quiet please").await;
    done(&mut cat, Request::Report { seq: mods, reason: "bossy".into() }).await;
    loop {
        if let ServerFrame::Reported { report } = moderator.next().await {
            assert_eq!((report.seq, report.reporter.as_str()), (mods, "cat"));
            break;
        }
    }
    // A ban on node a closes bob's page on node b, and b's pages refuse him.
    done(&mut moderator, Request::Ban { user_id: "bob".into(), minutes: None, reason: String::new() }).await;
    assert!(matches!(next_action(&mut bob).await.1, Action::Ban { .. }));
    assert_eq!(bob.next_event().await, Event::Closed(Some(4410)));
    assert_eq!(b.open_room("bob", "r").await.0, 403);
    let (_, html) = b.open_room("cat", "r").await;
    assert!(!html.contains("from node b"));
}

#[tokio::test]
async fn on_two_nodes_slow_mode_counts_a_players_sends_on_both() {
    let nodes = spawn_nodes(2, |c| c.moderators = vec!["mod".into()]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut moderator = a.join("mod", "r").await;
    let mut on_a = a.join("bob", "r").await;
    let mut on_b = b.join("bob", "r").await;
    done(&mut moderator, Request::SlowMode { seconds: 30 }).await;
    assert_eq!(next_action(&mut on_b).await.1, Action::SlowMode { seconds: 30 });
    next_action(&mut on_a).await;

    on_a.send_and_ack("b1", "from node a").await;
    // The same player's page on the other node waits as well.
    on_b.say("b2", "and at once from node b").await;
    let (code, message) = refusal(&mut on_b).await;
    assert_eq!(code, ErrorCode::SlowMode);
    assert!(message.starts_with("Slow mode is on: you can send again in "), "{message}");
    let form =
        [("channel_id", "r"), ("user_id", "bob"), ("client_msg_id", "b3"), ("body", "by form on node b")];
    let response = b.post_fn("send_message", &form).await;
    assert_eq!(response.status(), 429, "a form counts too");
    assert!(response.text().await.unwrap().contains("Slow mode is on"));
    moderator.send_and_ack("m1", "moderators are exempt").await;
    let mut mod_on_b = b.join("mod", "r").await;
    mod_on_b.send_and_ack("m2", "on both nodes").await;

    // A short period: once it has passed, the other node lets them send.
    done(&mut moderator, Request::SlowMode { seconds: 1 }).await;
    next_action_like(&mut on_b, |a| *a == Action::SlowMode { seconds: 1 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    on_b.send_and_ack("b4", "a second later, from node b").await;
    on_a.say("b5", "and at once from node a").await;
    assert_eq!(refusal(&mut on_a).await.0, ErrorCode::SlowMode);
}

#[tokio::test]
async fn an_id_made_before_the_stricter_rules_still_comes_in_and_is_moderated_but_none_is_made_now() {
    let app = moderated().await;
    let mut moderator = app.join("mod", "r").await;
    // "bob" with a zero-width space, a member from before the rules.
    let hidden = "bob\u{200B}";
    let db = database(&app).await;
    let room_id = db_text(&db, "SELECT CAST(id AS TEXT) FROM room WHERE channel_id = 'r'").await.unwrap();
    let at = "2026-01-01T00:00:00Z";
    db.execute_unprepared(&format!("INSERT INTO app_user (user_id, created_at) VALUES ('{hidden}', '{at}')"))
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO member (room_id, user_id, joined_at, role) VALUES ({room_id}, '{hidden}', '{at}', 'player')"
    ))
    .await
    .unwrap();
    let mut old = app.join(hidden, "r").await;
    old.send_and_ack("o1", "still here").await;
    let request = Request::Mute { user_id: hidden.into(), minutes: Some(10), reason: String::new() };
    done(&mut moderator, request).await;
    let (code, _) = refusal_of(&mut old, "o2", "and now?").await;
    assert_eq!(code, ErrorCode::Muted);
    // It enters a room it was never in (made now), and comes back after
    // leaving; a member adds it to another.
    app.join(hidden, "r2").await;
    let leave = app.post_fn("leave_room", &[("channel_id", "r2"), ("user_id", hidden)]).await;
    assert!(leave.status().is_success(), "{}", leave.status());
    app.join(hidden, "r2").await;
    app.join("mod", "r3").await;
    let add =
        app.post_fn("add_user", &[("channel_id", "r3"), ("user_id", "mod"), ("new_user", hidden)]).await;
    assert!(add.status().is_success(), "{}", add.status());

    // Nobody new comes in, nor is added, under such a name, nor a room made so.
    let (status, html) = app.open_room("eve\u{200B}", "r").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("The user name contains characters that are not allowed."));
    let form = [("channel_id", "r"), ("user_id", "mod"), ("new_user", "zed\u{2066}x")];
    let add = app.post_fn("add_user", &form).await;
    assert_eq!(add.status(), 400);
    assert!(add.text().await.unwrap().contains("The user name contains characters that are not allowed."));
    let (status, _) = app.open_room("mod", "r\u{202E}oom").await;
    assert_eq!(status, 400);
    let (_, html) = app.open_room("mod", "r").await;
    let members = list_items(&html, "member-list");
    assert!(members.iter().all(|m| !m.starts_with("eve") && !m.starts_with("zed")), "{members:?}");
}

/// Sends a message from `client` and returns the refusal it gets.
async fn refusal_of(client: &mut Client, client_msg_id: &str, body: &str) -> (ErrorCode, String) {
    client.say(client_msg_id, body).await;
    refusal(client).await
}
