//! Signed identities: with a token secret configured, the page, every
//! server function and the stream need a token from the game's server, and
//! the identity it names is the only one that acts.
mod common;

use std::process::Command;
use std::time::Duration;

use app::protocol::{ClientFrame, ErrorCode, Role, ServerFrame};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{list_items, spawn_app_with, Event, TestApp};
use engine::identity::{unix_now, Identity, SigningKey};
use server::config::Secret;

const SECRET: &str = "integration-test-secret-0123456789abcdef";
const QUIET: Duration = Duration::from_millis(300);

async fn signed_app() -> TestApp {
    spawn_app_with(|c| c.token_secret = Some(Secret(SECRET.to_owned()))).await
}

fn token_for(user: &str, room: &str, ttl_secs: i64) -> String {
    token_as(user, room, ttl_secs, Role::Player)
}

fn token_as(user: &str, room: &str, ttl_secs: i64, role: Role) -> String {
    let key = SigningKey::new(SECRET).unwrap();
    key.mint(&Identity {
        user_id: user.into(),
        channel_id: room.into(),
        expires: unix_now() + ttl_secs,
        role,
    })
}

async fn page(app: &TestApp, query: &str) -> (u16, String) {
    app.get(&format!("{}/chat_room?{query}", app.base)).await
}

#[tokio::test]
async fn pages_refuse_missing_malformed_tampered_expired_and_other_room_tokens() {
    let app = signed_app().await;
    let good = token_for("john", "game_1", 600);
    let (payload, signature) = good.split_once('.').unwrap();
    let forged_payload =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"u":"admin","c":"game_1","exp":{}}}"#, unix_now() + 600));
    let cases = [
        ("user_id=john&channel_id=game_1".to_owned(), 401, "needs a sign-in token"),
        ("user_id=john&channel_id=game_1&token=garbage".to_owned(), 401, "not valid"),
        (format!("user_id=john&channel_id=game_1&token={payload}.{}", &signature[1..]), 401, "not valid"),
        (format!("channel_id=game_1&token={forged_payload}.{signature}"), 401, "not valid"),
        (format!("channel_id=game_1&token={}", token_for("john", "game_1", -5)), 401, "expired"),
        (format!("channel_id=game_2&token={good}"), 403, "for another room"),
    ];
    for (query, status, sentence) in cases {
        let (got, html) = page(&app, &query).await;
        assert_eq!(got, status, "{query}");
        assert!(html.contains(sentence), "{query}: {sentence:?} not in the page");
        assert!(!html.contains("SELECT") && !html.contains("/src/"), "no internals");
    }
    // Nothing was created by the refused visits.
    let (status, html) = page(&app, &format!("token={}", token_for("john", "game_1", 600))).await;
    assert_eq!(status, 200);
    assert_eq!(list_items(&html, "member-list"), vec!["john"], "only the valid visit joined");
}

#[tokio::test]
async fn the_tokens_identity_wins_over_the_user_id_in_the_url_and_in_requests() {
    let app = signed_app().await;
    let john = token_for("john", "game_1", 600);
    let (status, html) = page(&app, &format!("user_id=mallory&channel_id=game_1&token={john}")).await;
    assert_eq!(status, 200);
    assert_eq!(list_items(&html, "member-list"), vec!["john"]);
    assert!(!html.contains("mallory"));

    // A no-JS send that claims to be someone else is stored as John's.
    let response = app
        .post_fn(
            "send_message",
            &[
                ("channel_id", "game_1"),
                ("user_id", "mallory"),
                ("client_msg_id", "m1"),
                ("body", "hi"),
                ("token", &john),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let (_, html) = page(&app, &format!("token={john}")).await;
    assert_eq!(list_items(&html, "messages"), vec!["john: hi"]);
}

#[tokio::test]
async fn server_functions_need_a_valid_token_and_change_nothing_without_one() {
    let app = signed_app().await;
    let ana = token_for("ana", "r", 600);
    assert_eq!(page(&app, &format!("token={ana}")).await.0, 200);
    let bob = token_for("bob", "r", 600);
    assert_eq!(page(&app, &format!("token={bob}")).await.0, 200);

    // Without a token, with a bad one, with another room's.
    let other_room = token_for("ana", "elsewhere", 600);
    for (token, status) in [(None, 401), (Some("nope.nope"), 401), (Some(other_room.as_str()), 403)] {
        let mut form = vec![("channel_id", "r"), ("user_id", "ana"), ("new_user", "mallory")];
        if let Some(token) = token {
            form.push(("token", token));
        }
        let response = app.post_fn("add_user", &form).await;
        assert_eq!(response.status(), status, "{token:?}");
    }
    // Leaving on behalf of another: only ever yourself.
    let response =
        app.post_fn("leave_room", &[("channel_id", "r"), ("user_id", "bob"), ("token", &ana)]).await;
    assert!(response.status().is_success() || response.status().is_redirection());
    let (_, html) = page(&app, &format!("token={bob}")).await;
    assert_eq!(list_items(&html, "member-list"), vec!["bob"], "ana left, bob stayed, mallory never came");
}

#[tokio::test]
async fn the_stream_needs_a_valid_token_and_binds_the_identity() {
    let app = signed_app().await;
    let ana = token_for("ana", "r", 600);
    assert_eq!(page(&app, &format!("token={ana}")).await.0, 200);

    for token in
        [None, Some("garbage".to_owned()), Some(token_for("ana", "r", -1)), Some(token_for("ana", "x", 60))]
    {
        let mut client = app.raw_stream().await;
        let hello = ClientFrame::Hello { channel_id: "r".into(), user_id: "ana".into(), after_seq: 0, token };
        client.send(&hello).await;
        assert!(matches!(client.next().await, ServerFrame::Error { code: ErrorCode::Unauthorized, .. }));
        assert_eq!(client.next_event().await, Event::Closed(Some(4401)));
    }

    // Claiming to be Mallory with Ana's token: the stream is Ana's.
    let mut client = app.raw_stream().await;
    let hello = ClientFrame::Hello {
        channel_id: "r".into(),
        user_id: "mallory".into(),
        after_seq: 0,
        token: Some(ana),
    };
    client.send(&hello).await;
    assert!(matches!(client.next().await, ServerFrame::Welcome { .. }));
    client.say("c1", "who am I").await;
    let stored = client.next_message().await;
    assert_eq!(stored.user_id, "ana");
}

#[tokio::test]
async fn a_member_who_left_cannot_act_with_a_still_valid_token() {
    let app = signed_app().await;
    let ana = token_for("ana", "r", 600);
    let bob = token_for("bob", "r", 600);
    assert_eq!(page(&app, &format!("token={ana}")).await.0, 200);
    assert_eq!(page(&app, &format!("token={bob}")).await.0, 200);
    let response = app.post_fn("leave_room", &[("channel_id", "r"), ("user_id", ""), ("token", &ana)]).await;
    assert!(response.status().is_success() || response.status().is_redirection());
    let response = app
        .post_fn("add_user", &[("channel_id", "r"), ("user_id", ""), ("new_user", "eve"), ("token", &ana)])
        .await;
    assert_eq!(response.status(), 403);
    let mut client = app.raw_stream().await;
    let hello =
        ClientFrame::Hello { channel_id: "r".into(), user_id: "".into(), after_seq: 0, token: Some(ana) };
    client.send(&hello).await;
    assert!(matches!(client.next().await, ServerFrame::Error { code: ErrorCode::NotMember, .. }));
    let (_, html) = page(&app, &format!("token={bob}")).await;
    assert_eq!(list_items(&html, "member-list"), vec!["bob"]);
}

#[tokio::test]
async fn events_of_one_room_never_reach_another() {
    let app = signed_app().await;
    let ana = token_for("ana", "one", 600);
    let bob = token_for("bob", "two", 600);
    assert_eq!(page(&app, &format!("token={ana}")).await.0, 200);
    assert_eq!(page(&app, &format!("token={bob}")).await.0, 200);
    let mut in_one = app.raw_stream().await;
    in_one
        .send(&ClientFrame::Hello {
            channel_id: "".into(),
            user_id: "".into(),
            after_seq: 0,
            token: Some(ana),
        })
        .await;
    in_one.next().await;
    let mut in_two = app.raw_stream().await;
    in_two
        .send(&ClientFrame::Hello {
            channel_id: "".into(),
            user_id: "".into(),
            after_seq: 0,
            token: Some(bob),
        })
        .await;
    in_two.next().await;
    in_one.send_and_ack("x", "only for room one").await;
    in_two.expect_silence(QUIET).await;
}

#[test]
fn the_token_command_mints_tokens_the_server_accepts() {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["token", "--user", "john", "--channel", "game_1", "--ttl-secs", "120"])
        .env_clear()
        .env("CHAT_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let identity = SigningKey::new(SECRET).unwrap().verify(token.trim(), unix_now()).unwrap();
    assert_eq!((identity.user_id.as_str(), identity.channel_id.as_str()), ("john", "game_1"));
    assert!(identity.expires > unix_now() + 100 && identity.expires <= unix_now() + 120);

    // Without the secret it says what is missing.
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["token", "--user", "john", "--channel", "game_1"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs the token secret"));
}

/// The role a page is told it has, on its welcome and in its page.
async fn welcome_role(app: &TestApp, room: &str, user: &str, token: Option<String>) -> Role {
    let mut client = app.raw_stream().await;
    client
        .send(&ClientFrame::Hello { channel_id: room.into(), user_id: user.into(), after_seq: 0, token })
        .await;
    match client.next().await {
        ServerFrame::Welcome { role, .. } => role,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn a_moderator_is_named_by_the_games_token_and_nobody_can_name_themselves_one() {
    let app = signed_app().await;
    let moderator = token_as("mia", "r", 600, Role::Moderator);
    let player = token_for("ana", "r", 600);
    let (status, html) = page(&app, &format!("token={moderator}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<span class="role-badge">moderator</span>"#), "{html}");
    assert_eq!(welcome_role(&app, "r", "", Some(moderator)).await, Role::Moderator);

    let (_, html) = page(&app, &format!("token={player}")).await;
    assert!(!html.contains("role-badge"));
    assert_eq!(welcome_role(&app, "r", "", Some(player.clone())).await, Role::Player);
    // A player's token with the claim written in: the signature no longer fits.
    let (_, signature) = player.split_once('.').unwrap();
    let raised = format!(r#"{{"u":"ana","c":"r","exp":{},"r":"moderator"}}"#, unix_now() + 600);
    let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(raised));
    assert_eq!(page(&app, &format!("token={forged}")).await.0, 401);
    // Nothing a page sends can ask for a role: the hello has no such field,
    // and one added by hand is not read.
    let mut client = app.raw_stream().await;
    let hello = format!(
        r#"{{"type":"hello","channel_id":"r","user_id":"","after_seq":0,"token":"{player}","role":"moderator"}}"#
    );
    client.send_raw(tokio_tungstenite::tungstenite::Message::text(hello)).await;
    match client.next().await {
        ServerFrame::Welcome { role, .. } => assert_eq!(role, Role::Player),
        ServerFrame::Error { .. } => {} // or refused outright: never a moderator
        other => panic!("unexpected {other:?}"),
    }
    // `server token --role moderator` mints what the game would.
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["token", "--user", "mia", "--channel", "r", "--role", "moderator"])
        .env("CHAT_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let minted = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(welcome_role(&app, "r", "", Some(minted)).await, Role::Moderator);
}

#[tokio::test]
async fn in_open_mode_the_listed_users_are_moderators_and_a_secret_forbids_the_list() {
    let app = spawn_app_with(|c| c.moderators = vec!["mia".into()]).await;
    app.open_room("mia", "r").await;
    app.open_room("ana", "r").await;
    let (_, html) = app.open_room("mia", "r").await;
    assert!(html.contains("role-badge"));
    assert_eq!(welcome_role(&app, "r", "mia", None).await, Role::Moderator);
    assert_eq!(welcome_role(&app, "r", "ana", None).await, Role::Player);

    let mut config = server::config::Config::for_tests("sqlite::memory:");
    config.token_secret = Some(Secret(SECRET.to_owned()));
    config.moderators = vec!["mia".into()];
    let problem = config.validate().unwrap_err();
    assert!(problem.contains("MODERATOR_IDS") && problem.contains("open mode"), "{problem}");
}

#[tokio::test]
async fn only_a_moderators_token_moderates_and_a_forged_claim_moderates_nothing() {
    use app::protocol::moderation::Request;
    let app = signed_app().await;
    let moderator = token_as("mia", "r", 600, Role::Moderator);
    let player = token_for("ana", "r", 600);
    assert_eq!(page(&app, &format!("token={moderator}")).await.0, 200);
    assert_eq!(page(&app, &format!("token={player}")).await.0, 200);
    let bob = token_for("bob", "r", 600);
    assert_eq!(page(&app, &format!("token={bob}")).await.0, 200);
    let mute = Request::Mute { user_id: "bob".into(), minutes: Some(5), reason: String::new() };
    let moderate = |token: String, user: &'static str| {
        let app = &app;
        let mute = mute.clone();
        async move {
            let body =
                serde_json::json!({ "channel_id": "r", "user_id": user, "token": token, "request": mute });
            let response = app
                .http
                .post(format!("{}/api/moderate", app.base))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    // A player's token, claiming to be the moderator in the request: refused.
    assert_eq!(moderate(player.clone(), "mia").await, 403);
    // A player's token with the claim written in: the signature no longer fits.
    let (_, signature) = player.split_once('.').unwrap();
    let claim = format!(r#"{{"u":"ana","c":"r","exp":{},"r":"moderator"}}"#, unix_now() + 600);
    let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(claim));
    assert_eq!(moderate(forged, "ana").await, 401);
    // Over the stream, the same player is refused too.
    let mut client = app.raw_stream().await;
    let hello = ClientFrame::Hello {
        channel_id: "r".into(),
        user_id: "mia".into(),
        after_seq: 0,
        token: Some(player),
    };
    client.send(&hello).await;
    assert!(matches!(client.next().await, ServerFrame::Welcome { role: Role::Player, .. }));
    client.send(&ClientFrame::Act { request_id: "x".into(), request: mute.clone() }).await;
    loop {
        match client.next().await {
            ServerFrame::Error { code, request_id, .. } => {
                assert_eq!((code, request_id.as_deref()), (ErrorCode::Forbidden, Some("x")));
                break;
            }
            ServerFrame::Done { .. } => panic!("a player muted someone"),
            _ => {}
        }
    }
    // The moderator's token does it.
    assert_eq!(moderate(moderator, "whoever").await, 200);
}
