//! Moderation as players meet it: the word filter masks or refuses a
//! message before it is stored, through the stream and through the form
//! posted without JavaScript, and follows its list file as it is edited.
mod common;

use std::time::Duration;

use app::protocol::{ErrorCode, ServerFrame};
use common::{list_items, spawn_app_with, TestApp};
use moderation::Mode;

const QUIET: Duration = Duration::from_millis(300);

/// The room's stored messages, as its page shows them.
async fn stored(app: &TestApp, user: &str, room: &str) -> Vec<String> {
    let (_, html) = app.open_room(user, room).await;
    list_items(&html, "messages")
}

/// A server whose word filter reads `list` from a file in `dir`.
async fn filtered(dir: &tempfile::TempDir, list: &str, mode: Mode) -> TestApp {
    let path = dir.path().join("words.txt");
    std::fs::write(&path, list).unwrap();
    spawn_app_with(|config| {
        config.word_filter_file = Some(path);
        config.word_filter_mode = mode;
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
        ServerFrame::Error { code, message, client_msg_id } => {
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
