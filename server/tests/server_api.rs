//! The server API (`/api/v1`) as a game's backend uses it, over real HTTP:
//! its keys and its refusal of browsers, every endpoint and its errors in
//! the one JSON shape, idempotent retries, the effect on open pages, and
//! the OpenAPI document against the routes the server really has.
mod common;

use std::time::Duration;

use app::protocol::moderation::{Action, Request};
use app::protocol::{ClientFrame, ErrorCode, Role, ServerFrame};
use common::{spawn_app_with, spawn_nodes, Client, Event, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use server::config::Secret;

const KEY: &str = "game-backend-key-0123456789abcdefghij";
const NEXT_KEY: &str = "rotated-backend-key-0123456789abcdefgh";
const SECRET: &str = "integration-test-secret-0123456789abcdef";
const QUIET: Duration = Duration::from_millis(300);

async fn api_app() -> TestApp {
    spawn_app_with(|c| c.api_keys = vec![Secret(KEY.into()), Secret(NEXT_KEY.into())]).await
}

/// Calls the API with `key`; the status and the JSON answer (`Null` for none).
async fn call_with(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_with(app, Some(KEY), method, path, body).await
}

/// The `code` of an error answer (panics if the answer is not one).
fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error answer: {answer}"))
}

#[tokio::test]
async fn a_page_keeps_the_moderator_its_identity_makes_whatever_role_the_game_gives() {
    let app = spawn_app_with(|c| {
        c.api_keys = vec![Secret(KEY.into())];
        c.moderators = vec!["mia".into()];
    })
    .await;
    assert_eq!(app.open_room("mia", "r").await.0, 200);
    let (_, welcome) = app.hello("mia", "r", 0).await;
    let ServerFrame::Welcome { role: Role::Moderator, now_ms, .. } = welcome else { panic!("{welcome:?}") };
    let here = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((now_ms - here).abs() < 5_000, "the welcome tells the server's clock: {now_ms} against {here}");
    let (mut mia, _) = app.connect("mia", "r", 0).await;
    let player = Some(json!({ "role": "player" }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/mia/role", player).await.0, 204);
    // Told the role she acts with, which the server keeps too.
    assert_eq!(mia.next().await, ServerFrame::RoleChanged { user_id: "mia".into(), role: Role::Moderator });
    let (_, room) = call(&app, Method::GET, "/api/v1/rooms/r", None).await;
    assert_eq!(room["members"][0]["role"], "player", "the game's role is stored as given");
}

#[tokio::test]
async fn only_a_server_with_a_key_gets_in_and_every_refusal_has_the_one_shape() {
    let app = api_app().await;
    let room = Some(json!({ "channel_id": "match_1" }));
    let (status, answer) = call_with(&app, None, Method::POST, "/api/v1/rooms", room.clone()).await;
    assert_eq!((status, code(&answer)), (401, "unauthorized"));
    assert!(answer["error"]["message"].as_str().unwrap().contains("Bearer"));
    let (status, answer) = call_with(
        &app,
        Some("wrong-key-0123456789abcdef0123456789"),
        Method::POST,
        "/api/v1/rooms",
        room.clone(),
    )
    .await;
    assert_eq!((status, code(&answer)), (401, "unauthorized"));
    // Both keys of a rotation work.
    assert_eq!(call_with(&app, Some(KEY), Method::POST, "/api/v1/rooms", room.clone()).await.0, 201);
    assert_eq!(call_with(&app, Some(NEXT_KEY), Method::POST, "/api/v1/rooms", room.clone()).await.0, 200);
    // A browser is refused, key or not, and gets no CORS header.
    let response = app
        .http
        .get(format!("{}/api/v1/rooms/match_1", app.base))
        .bearer_auth(KEY)
        .header("origin", "https://game.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let answer: Value = response.json().await.unwrap();
    assert_eq!(code(&answer), "browser_origin");
    // An endpoint that does not exist, a malformed body: the same shape.
    let (status, answer) = call(&app, Method::GET, "/api/v1/nothing/here", None).await;
    assert_eq!((status, code(&answer)), (404, "not_found"));
    let (status, answer) = call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "room": 1 }))).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    let (status, answer) =
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": " " }))).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));

    // Without keys configured the API is off.
    let off = spawn_app_with(|_| {}).await;
    let (status, answer) = call(&off, Method::GET, "/api/v1/rooms/x", None).await;
    assert_eq!(status, 401);
    assert!(answer["error"]["message"].as_str().unwrap().contains("API_KEYS"));
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_exactly_the_routes_that_answer() {
    let app = api_app().await;
    let (status, document) = call_with(&app, None, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200, "served without a key");
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{}", document["openapi"]);
    assert!(document["components"]["securitySchemes"]["api_key"].is_object());
    // Read back by another implementation (the `oas3` crate): a valid
    // OpenAPI 3.1 document whose every body and schema reference resolves.
    let spec = oas3::from_json(document.to_string()).expect("a valid OpenAPI 3.1 document");
    spec.validate_version().expect("a supported OpenAPI version");
    for (path, method, operation) in spec.operations() {
        operation.request_body(&spec).unwrap_or_else(|e| panic!("{method} {path}: request body: {e}"));
        operation.parameters(&spec).unwrap_or_else(|e| panic!("{method} {path}: parameters: {e}"));
        for (status, response) in operation.responses.iter().flatten() {
            let response =
                response.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
            for media in response.content.values() {
                if let Some(schema) = &media.schema {
                    schema.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: schema: {e}"));
                }
            }
        }
    }
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["responses"].is_object(), "{method} {path} documents its answers");
            assert_eq!(operation["security"][0]["api_key"], json!([]), "{method} {path} needs a key");
            let concrete = path
                .replace("{channel_id}", "no_such_room")
                .replace("{user_id}", "nobody")
                .replace("{blocked_user_id}", "somebody")
                .replace("{seq}", "1")
                .replace("{id}", "1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Without a key: the key check answers, so the route exists.
            let (status, answer) = call_with(&app, None, method.clone(), &concrete, None).await;
            assert_eq!((status, code(&answer)), (401, "unauthorized"), "{method} {concrete}");
            // With a key: the endpoint itself answers (never "no such endpoint").
            let (_, answer) = call(&app, method.clone(), &concrete, Some(json!({}))).await;
            let message = answer["error"]["message"].as_str().unwrap_or("");
            assert!(
                !message.contains("No such endpoint"),
                "{method} {concrete} is documented but not served"
            );
            operations += 1;
        }
    }
    assert!(operations >= 18, "{operations} operations");
}

#[tokio::test]
async fn rooms_and_members_are_made_read_and_removed_and_open_pages_follow() {
    let app = api_app().await;
    assert_eq!(
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": "match_1" }))).await.0,
        201
    );
    let member = |user: &str, role: &str| Some(json!({ "user_id": user, "role": role }));
    let (status, added) =
        call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("ana", "player")).await;
    assert_eq!((status, added["added"].as_bool()), (201, Some(true)));
    let (status, again) =
        call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("ana", "player")).await;
    assert_eq!((status, again["added"].as_bool()), (200, Some(false)), "idempotent");
    call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("mia", "moderator")).await;

    // A member put in by the game opens the room without joining it; the
    // role the game gave is hers on her page.
    let (mut ana, _) = app.connect("ana", "match_1", 0).await;
    let (status, room) = call(&app, Method::GET, "/api/v1/rooms/match_1", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        room["members"],
        json!([
            { "user_id": "ana", "role": "player", "online": true },
            { "user_id": "mia", "role": "moderator", "online": false },
        ])
    );
    assert_eq!(room["last_seq"], 0);
    let (_, welcome) = app.hello("mia", "match_1", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { role: Role::Moderator, .. }), "{welcome:?}");
    // Demoted while her page is open: it acts as a player at once.
    let (mut mia, _) = app.connect("mia", "match_1", 0).await;
    let demote = Some(json!({ "role": "player" }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/match_1/members/mia/role", demote).await.0, 204);
    assert_eq!(mia.next().await, ServerFrame::RoleChanged { user_id: "mia".into(), role: Role::Player });
    ana.expect_silence(QUIET).await; // news for mia's pages only
    let mute = Request::Mute { user_id: "ana".into(), minutes: None, reason: String::new() };
    mia.send(&ClientFrame::Act { request_id: "m".into(), request: mute }).await;
    assert!(matches!(mia.next().await, ServerFrame::Error { code: ErrorCode::Forbidden, .. }));
    let (_, welcome) = app.hello("mia", "match_1", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { role: Role::Player, .. }), "{welcome:?}");
    // Put in again with another role: her open page follows too; the same
    // role again changes nothing and says nothing.
    let (status, again) =
        call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("mia", "moderator")).await;
    assert_eq!((status, again["added"].as_bool()), (200, Some(false)));
    assert_eq!(mia.next().await, ServerFrame::RoleChanged { user_id: "mia".into(), role: Role::Moderator });
    call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("mia", "moderator")).await;
    mia.expect_silence(QUIET).await;
    // Nobody may be the game.
    let (status, answer) =
        call(&app, Method::POST, "/api/v1/rooms/match_1/members", member("Game", "player")).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    assert_eq!(app.open_room("game", "match_1").await.0, 400);
    let (status, answer) =
        call(&app, Method::PUT, "/api/v1/rooms/match_1/members/zed/role", Some(json!({ "role": "player" })))
            .await;
    assert_eq!((status, code(&answer)), (404, "not_found"));

    // Taking a member out closes her page.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/match_1/members/ana", None).await.0, 204);
    assert_eq!(ana.next().await, ServerFrame::MemberLeft { user_id: "ana".into() });
    assert_eq!(ana.next_event().await, Event::Closed(Some(4403)));
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/match_1/members/ana", None).await.0, 404);

    // Deleting the room closes every page in it and takes it all away.
    let (mut mia, _) = app.connect("mia", "match_1", 0).await;
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/match_1", None).await.0, 204);
    assert_eq!(mia.next().await, ServerFrame::MemberLeft { user_id: "mia".into() });
    assert_eq!(mia.next_event().await, Event::Closed(Some(4403)));
    let (status, answer) = call(&app, Method::GET, "/api/v1/rooms/match_1", None).await;
    assert_eq!((status, code(&answer)), (404, "not_found"));
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/match_1", None).await.0, 404);
    let (status, answer) = call(&app, Method::DELETE, "/api/v1/rooms/match_1/members/mia", None).await;
    assert_eq!((status, code(&answer)), (404, "not_found"));
    assert!(answer["error"]["message"].as_str().unwrap().contains("does not exist"), "{answer}");
}

#[tokio::test]
async fn the_game_lists_the_rooms_a_page_at_a_time_with_members_and_last_message() {
    let app = api_app().await;
    let (status, none) = call(&app, Method::GET, "/api/v1/rooms", None).await;
    assert_eq!((status, none), (200, json!({ "rooms": [], "has_more": false })));
    let start = chrono::Utc::now().timestamp_millis();
    for room in ["rc", "ra", "rb"] {
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": room }))).await;
    }
    for user in ["ana", "bob"] {
        call(&app, Method::POST, "/api/v1/rooms/rb/members", Some(json!({ "user_id": user }))).await;
    }
    let said = Some(json!({ "client_msg_id": "go", "body": "Round 1" }));
    assert_eq!(call(&app, Method::POST, "/api/v1/rooms/rb/messages", said).await.0, 201);
    let end = chrono::Utc::now().timestamp_millis();
    let ids = |list: &Value| -> Vec<String> {
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["channel_id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, first) = call(&app, Method::GET, "/api/v1/rooms?limit=2", None).await;
    assert_eq!(status, 200);
    assert_eq!((ids(&first), &first["has_more"]), (vec!["ra".to_owned(), "rb".to_owned()], &json!(true)));
    let [ra, rb] = [&first["rooms"][0], &first["rooms"][1]];
    assert_eq!(
        (&ra["members"], &ra["last_seq"], &ra["last_message_at_ms"]),
        (&json!(0), &json!(0), &Value::Null)
    );
    assert_eq!((&rb["members"], &rb["last_seq"]), (&json!(2), &json!(1)));
    for at in [&ra["created_at_ms"], &rb["created_at_ms"], &rb["last_message_at_ms"]] {
        let at = at.as_i64().unwrap_or_else(|| panic!("a time: {first}"));
        assert!((start - 1000..=end + 1000).contains(&at), "{at} not within {start}..={end}");
    }
    let (_, rest) = call(&app, Method::GET, "/api/v1/rooms?after=rb&limit=2", None).await;
    assert_eq!((ids(&rest), &rest["has_more"]), (vec!["rc".to_owned()], &json!(false)));
    // The limit is kept within 1..=500; a deleted room is gone from the list.
    let (_, one) = call(&app, Method::GET, "/api/v1/rooms?limit=0", None).await;
    assert_eq!(ids(&one), vec!["ra".to_owned()]);
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/ra", None).await.0, 204);
    let (_, all) = call(&app, Method::GET, "/api/v1/rooms", None).await;
    assert_eq!((ids(&all), &all["has_more"]), (vec!["rb".to_owned(), "rc".to_owned()], &json!(false)));
    let (status, answer) = call(&app, Method::GET, "/api/v1/rooms?limit=many", None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

#[tokio::test]
async fn the_game_lists_a_users_rooms_and_takes_them_out_of_all_of_them() {
    let app = api_app().await;
    for room in ["r2", "r1", "r3"] {
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": room }))).await;
    }
    let add = |user: &str, role: &str| Some(json!({ "user_id": user, "role": role }));
    call(&app, Method::POST, "/api/v1/rooms/r1/members", add("ana", "player")).await;
    call(&app, Method::POST, "/api/v1/rooms/r2/members", add("ana", "moderator")).await;
    call(&app, Method::POST, "/api/v1/rooms/r1/members", add("bob", "player")).await;
    call(&app, Method::POST, "/api/v1/rooms/r3/members", add("bob", "player")).await;

    let (status, rooms) = call(&app, Method::GET, "/api/v1/users/ana/rooms", None).await;
    assert_eq!(status, 200);
    let both = json!([{ "channel_id": "r1", "role": "player" }, { "channel_id": "r2", "role": "moderator" }]);
    assert_eq!(rooms, json!({ "rooms": both, "has_more": false }));
    let (_, first) = call(&app, Method::GET, "/api/v1/users/ana/rooms?limit=1", None).await;
    assert_eq!((&first["rooms"][0]["channel_id"], &first["has_more"]), (&json!("r1"), &json!(true)));
    let (_, rest) = call(&app, Method::GET, "/api/v1/users/ana/rooms?after=r1", None).await;
    assert_eq!(rest["rooms"], json!([{ "channel_id": "r2", "role": "moderator" }]));
    let (_, nobody) = call(&app, Method::GET, "/api/v1/users/zed/rooms", None).await;
    assert_eq!(nobody, json!({ "rooms": [], "has_more": false }));

    // Out of both: her pages close, the rooms see her leave, bob stays.
    let (mut ana_1, _) = app.connect("ana", "r1", 0).await;
    let (mut ana_2, _) = app.connect("ana", "r2", 0).await;
    let (mut bob, _) = app.connect("bob", "r1", 0).await;
    let (status, left) = call(&app, Method::DELETE, "/api/v1/users/ana/rooms", None).await;
    assert_eq!((status, left), (200, json!({ "left": ["r1", "r2"] })));
    for page in [&mut ana_1, &mut ana_2] {
        assert_eq!(page.next().await, ServerFrame::MemberLeft { user_id: "ana".into() });
        assert_eq!(page.next_event().await, Event::Closed(Some(4403)));
    }
    assert_eq!(bob.next().await, ServerFrame::MemberLeft { user_id: "ana".into() });
    let (_, after) = call(&app, Method::GET, "/api/v1/users/ana/rooms", None).await;
    assert_eq!(after["rooms"], json!([]));
    let (_, bobs) = call(&app, Method::GET, "/api/v1/users/bob/rooms", None).await;
    assert_eq!(bobs["rooms"].as_array().unwrap().len(), 2);
    let (status, again) = call(&app, Method::DELETE, "/api/v1/users/ana/rooms", None).await;
    assert_eq!((status, again), (200, json!({ "left": [] })));
    let too_long = format!("/api/v1/users/{}/rooms", "x".repeat(200));
    let (status, answer) = call(&app, Method::DELETE, &too_long, None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

#[tokio::test]
async fn the_game_removes_everything_a_user_wrote_in_every_room_at_once() {
    let app = api_app().await;
    for room in ["r2", "r1", "r3", "r4"] {
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": room }))).await;
    }
    let add = |user: &str| Some(json!({ "user_id": user }));
    for (room, user) in [("r1", "ana"), ("r2", "ana"), ("r4", "ana"), ("r1", "bob"), ("r3", "bob")] {
        call(&app, Method::POST, &format!("/api/v1/rooms/{room}/members"), add(user)).await;
    }
    let post = |room: &'static str, user: &'static str, id: &'static str| {
        let body = Some(json!({ "client_msg_id": id, "body": format!("{user} says {id}"), "user_id": user }));
        let app = &app;
        async move {
            let (status, _) = call(app, Method::POST, &format!("/api/v1/rooms/{room}/messages"), body).await;
            assert_eq!(status, 201, "{user} posts in {room}");
        }
    };
    post("r1", "ana", "a1").await;
    post("r1", "bob", "b1").await;
    post("r1", "ana", "a2").await;
    post("r2", "ana", "a3").await;
    post("r3", "bob", "b2").await;
    // Her report of bob's line, with her words: they go with hers.
    let (mut reporter, _) = app.connect("ana", "r1", 3).await;
    let report = Request::Report { seq: 2, reason: "rude; call me on 555-0100".into() };
    reporter.send(&ClientFrame::Act { request_id: "rep".into(), request: report }).await;
    assert_eq!(reporter.next().await, ServerFrame::Done { request_id: "rep".into() });
    drop(reporter);
    // Gone from r2 since, her line there is still hers to remove; r4 has
    // nothing of hers.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r2/members/ana", None).await.0, 204);
    let (mut bob, _) = app.connect("bob", "r1", 3).await;

    let (status, purged) = call(&app, Method::DELETE, "/api/v1/users/ana/messages", None).await;
    assert_eq!((status, purged), (200, json!({ "purged": ["r1", "r2"] })));
    let event = bob.next_message().await;
    assert_eq!(event.action, Some(Action::Purge { user_id: "ana".into() }), "the open page is told at once");
    let lines = |history: &Value| -> Vec<(String, String, bool)> {
        let lines = history["messages"].as_array().unwrap().iter();
        lines
            .filter(|m| m.get("action").is_none())
            .map(|m| {
                let text = m["body"].as_str().unwrap().to_owned();
                (m["user_id"].as_str().unwrap().to_owned(), text, m.get("removed").is_some())
            })
            .collect()
    };
    let (_, r1) = call(&app, Method::GET, "/api/v1/rooms/r1/messages", None).await;
    let expected = [("ana", "", true), ("bob", "bob says b1", false), ("ana", "", true)];
    let expected: Vec<_> = expected.iter().map(|(u, t, r)| (u.to_string(), t.to_string(), *r)).collect();
    assert_eq!(lines(&r1), expected);
    let (_, r2) = call(&app, Method::GET, "/api/v1/rooms/r2/messages", None).await;
    assert_eq!(lines(&r2), vec![("ana".to_owned(), String::new(), true)]);
    let (_, r3) = call(&app, Method::GET, "/api/v1/rooms/r3/messages", None).await;
    assert_eq!(lines(&r3), vec![("bob".to_owned(), "bob says b2".to_owned(), false)]);
    let (_, r4) = call(&app, Method::GET, "/api/v1/rooms/r4/messages", None).await;
    assert_eq!(r4["messages"], json!([]), "no purge recorded where she wrote nothing");
    let (_, reports) = call(&app, Method::GET, "/api/v1/rooms/r1/reports", None).await;
    let report = &reports.as_array().unwrap()[0];
    assert_eq!(
        (&report["reporter"], &report["reason"], &report["body"]),
        (&json!("ana"), &json!(""), &json!("bob says b1"))
    );

    // Nothing left: no room listed, nothing recorded. What she writes
    // after it stays until the next call.
    let (status, again) = call(&app, Method::DELETE, "/api/v1/users/ana/messages", None).await;
    assert_eq!((status, again), (200, json!({ "purged": [] })));
    bob.expect_silence(QUIET).await;
    post("r1", "ana", "a4").await;
    assert_eq!(bob.next_message().await.body, "ana says a4");
    let (_, purged) = call(&app, Method::DELETE, "/api/v1/users/ana/messages", None).await;
    assert_eq!(purged, json!({ "purged": ["r1"] }));

    let too_long = format!("/api/v1/users/{}/messages", "x".repeat(200));
    let (status, answer) = call(&app, Method::DELETE, &too_long, None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    // The game's own messages are not a user's to erase.
    call(
        &app,
        Method::POST,
        "/api/v1/rooms/r3/messages",
        Some(json!({ "client_msg_id": "g", "body": "gg" })),
    )
    .await;
    let (status, answer) = call(&app, Method::DELETE, "/api/v1/users/game/messages", None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

#[tokio::test]
async fn the_game_exports_what_a_user_wrote_everywhere_a_page_at_a_time() {
    let app = api_app().await;
    for room in ["c", "a", "b"] {
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": room }))).await;
        for user in ["ana", "bob"] {
            let member = Some(json!({ "user_id": user }));
            call(&app, Method::POST, &format!("/api/v1/rooms/{room}/members"), member).await;
        }
    }
    let lines = [
        ("c", "ana", "c1"),
        ("a", "ana", "a1"),
        ("a", "bob", "a2"),
        ("a", "ana", "a3"),
        ("b", "bob", "b1"),
        ("c", "ana", "c2"),
        ("a", "ana", "a4"),
    ];
    for (room, user, id) in lines {
        let message = json!({ "client_msg_id": id, "body": format!("{user} in {room}"), "user_id": user });
        call(&app, Method::POST, &format!("/api/v1/rooms/{room}/messages"), Some(message)).await;
    }
    // Removed lines and moderation events are not hers to export.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/c/messages/1", None).await.0, 200);
    let mute = Some(json!({ "minutes": 10 }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/a/members/ana/mute", mute).await.0, 200);

    let mut pages = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (status, page) =
            call(&app, Method::GET, &format!("/api/v1/users/ana/messages?{query}"), None).await;
        assert_eq!(status, 200, "{page}");
        let lines: Vec<String> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!("{}:{}:{}", m["channel_id"].as_str().unwrap(), m["seq"], m["body"].as_str().unwrap())
            })
            .collect();
        pages.push(lines);
        let Some(next) = page["next"].as_object() else { break };
        query = format!(
            "limit=2&after_room={}&after_seq={}",
            next["after_room"].as_str().unwrap(),
            next["after_seq"]
        );
    }
    assert_eq!(
        pages,
        [vec!["a:1:ana in a", "a:3:ana in a"], vec!["a:4:ana in a", "c:2:ana in c"]],
        "rooms by name, each oldest first, nothing of bob's"
    );
    let (_, all) = call(&app, Method::GET, "/api/v1/users/ana/messages", None).await;
    assert_eq!((all["messages"].as_array().unwrap().len(), &all["next"]), (4, &Value::Null));
    let (_, none) = call(&app, Method::GET, "/api/v1/users/zoe/messages", None).await;
    assert_eq!(none, json!({ "messages": [], "next": null }));
    let too_long = format!("/api/v1/users/ana/messages?after_room={}", "x".repeat(200));
    for bad in ["/api/v1/users/ana/messages?after_seq=x", &too_long] {
        let (status, answer) = call(&app, Method::GET, bad, None).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{bad}");
    }
}

#[tokio::test]
async fn the_game_lists_who_is_muted_or_banned_in_a_room() {
    let app = api_app().await;
    let _ana = room_with_ana(&app).await;
    for user in ["bob", "cy"] {
        call(&app, Method::POST, "/api/v1/rooms/r/members", Some(json!({ "user_id": user }))).await;
    }
    let (_, none) = call(&app, Method::GET, "/api/v1/rooms/r/sanctions", None).await;
    assert_eq!(none, json!([]));
    let before = chrono::Utc::now().timestamp_millis();
    let mute = |minutes: u32, reason: &str| Some(json!({ "minutes": minutes, "reason": reason }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/cy/mute", mute(10, "spam")).await.0, 200);
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/ana/mute", mute(60, "")).await.0, 200);
    let ban = Some(json!({ "reason": "cheating" }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/bans/bob", ban.clone()).await.0, 200);
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/bans/ana", ban).await.0, 200);
    // Lifted: not listed any more.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/members/cy/mute", None).await.0, 200);
    let after = chrono::Utc::now().timestamp_millis();

    let (status, listed) = call(&app, Method::GET, "/api/v1/rooms/r/sanctions", None).await;
    assert_eq!(status, 200);
    let rows = listed.as_array().unwrap();
    let seen: Vec<_> = rows
        .iter()
        .map(|s| (s["user_id"].as_str().unwrap(), s["kind"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("ana", "ban", "cheating"), ("ana", "mute", ""), ("bob", "ban", "cheating")]);
    for row in rows {
        assert_eq!(row["by"], "game");
        let at = row["at_ms"].as_i64().unwrap();
        assert!((before..=after).contains(&at), "{row}");
    }
    assert_eq!(rows[0]["until_ms"], Value::Null, "a ban for good");
    let until = rows[1]["until_ms"].as_i64().unwrap();
    let hour = 60 * 60 * 1000;
    assert!((before + hour..=after + hour).contains(&until), "an hour's mute: {until}");

    // Where ana is sanctioned, room by room.
    call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": "q" }))).await;
    call(&app, Method::POST, "/api/v1/rooms/q/members", Some(json!({ "user_id": "ana" }))).await;
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/q/members/ana/mute", mute(10, "flood")).await.0, 200);
    let (status, hers) = call(&app, Method::GET, "/api/v1/users/ana/sanctions", None).await;
    assert_eq!(status, 200);
    let seen: Vec<_> = hers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["channel_id"].as_str().unwrap(), s["kind"].as_str().unwrap(), s["reason"].as_str().unwrap())
        })
        .collect();
    assert_eq!(seen, [("q", "mute", "flood"), ("r", "ban", "cheating"), ("r", "mute", "")]);
    assert_eq!(hers[0]["user_id"], "ana");
    let (_, cys) = call(&app, Method::GET, "/api/v1/users/cy/sanctions", None).await;
    assert_eq!(cys, json!([]), "lifted");

    assert_eq!(call(&app, Method::GET, "/api/v1/rooms/nowhere/sanctions", None).await.0, 404);
    let bad = format!("/api/v1/rooms/{}/sanctions", "x".repeat(200));
    let (status, answer) = call(&app, Method::GET, &bad, None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

/// A room `r` with ana in it (a page open), made through the API.
async fn room_with_ana(app: &TestApp) -> Client {
    call(app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": "r" }))).await;
    call(app, Method::POST, "/api/v1/rooms/r/members", Some(json!({ "user_id": "ana" }))).await;
    app.connect("ana", "r", 0).await.0
}

#[tokio::test]
async fn the_game_posts_as_itself_or_as_a_member_once_per_id_and_reads_history_in_pages() {
    let app = api_app().await;
    let mut ana = room_with_ana(&app).await;
    let announce = Some(json!({ "client_msg_id": "round-2", "body": "Round 2 starts" }));
    let (status, posted) = call(&app, Method::POST, "/api/v1/rooms/r/messages", announce.clone()).await;
    assert_eq!(status, 201);
    assert_eq!((posted["seq"].as_i64(), posted["system"].as_bool()), (Some(1), Some(true)));
    let live = ana.next_message().await;
    assert!(live.system, "pages get it marked as the game's");
    assert_eq!(live.body, "Round 2 starts");
    // A retry: the stored message again, nothing new.
    let (status, again) = call(&app, Method::POST, "/api/v1/rooms/r/messages", announce).await;
    assert_eq!((status, again["seq"].as_i64()), (201, Some(1)));
    ana.expect_silence(QUIET).await;
    // As a member; not as a stranger; not empty, not without an id.
    let as_ana = Some(json!({ "client_msg_id": "a1", "body": "gg", "user_id": "ana" }));
    let (_, posted) = call(&app, Method::POST, "/api/v1/rooms/r/messages", as_ana).await;
    assert_eq!((posted["user_id"].as_str(), posted.get("system")), (Some("ana"), None));
    let stranger = Some(json!({ "client_msg_id": "z1", "body": "hi", "user_id": "zed" }));
    assert_eq!(call(&app, Method::POST, "/api/v1/rooms/r/messages", stranger).await.0, 404);
    for bad in [
        json!({ "client_msg_id": "e", "body": "  " }),
        json!({ "client_msg_id": "", "body": "x" }),
        json!({ "body": "x" }),
    ] {
        let (status, answer) = call(&app, Method::POST, "/api/v1/rooms/r/messages", Some(bad.clone())).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{bad}");
    }
    for i in 3..=7 {
        let body = Some(json!({ "client_msg_id": format!("m{i}"), "body": format!("message {i}") }));
        call(&app, Method::POST, "/api/v1/rooms/r/messages", body).await;
    }
    // History by seq, a page at a time.
    let (_, page) = call(&app, Method::GET, "/api/v1/rooms/r/messages?after_seq=0&limit=3", None).await;
    let seqs = |page: &Value| {
        page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!((seqs(&page), page["has_more"].as_bool()), (vec![1, 2, 3], Some(true)));
    let (_, page) = call(&app, Method::GET, "/api/v1/rooms/r/messages?after_seq=3&limit=3", None).await;
    assert_eq!(seqs(&page), [4, 5, 6]);
    let (_, page) = call(&app, Method::GET, "/api/v1/rooms/r/messages?after_seq=6", None).await;
    assert_eq!((seqs(&page), page["has_more"].as_bool()), (vec![7], Some(false)));
    let (status, answer) = call(&app, Method::GET, "/api/v1/rooms/r/messages?after_seq=abc", None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    assert_eq!(call(&app, Method::GET, "/api/v1/rooms/nowhere/messages", None).await.0, 404);
}

#[tokio::test]
async fn the_game_moderates_and_open_pages_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "darn\n").unwrap();
    let app = spawn_app_with(|c| {
        c.api_keys = vec![Secret(KEY.into())];
        c.word_filter_file = Some(words.clone());
    })
    .await;
    let mut ana = room_with_ana(&app).await;
    let seq = ana.send_and_ack("a1", "a message to remove").await;
    ana.next_message().await;

    let (status, done) = call(&app, Method::DELETE, &format!("/api/v1/rooms/r/messages/{seq}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(done["event"]["action"], json!({ "remove": { "seq": seq } }));
    assert!(matches!(ana.next_message().await.action, Some(Action::Remove { .. })));
    let (status, answer) = call(&app, Method::DELETE, &format!("/api/v1/rooms/r/messages/{seq}"), None).await;
    assert_eq!((status, code(&answer)), (409, "conflict"));
    // Everything she wrote, at once.
    ana.send_and_ack("a1b", "one more line").await;
    ana.next_message().await;
    let (status, purged) = call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/messages", None).await;
    assert_eq!(status, 200);
    assert_eq!(purged["event"]["action"], json!({ "purge": { "user_id": "ana" } }));
    assert!(matches!(ana.next_message().await.action, Some(Action::Purge { .. })));
    let (status, answer) = call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/messages", None).await;
    assert_eq!((status, code(&answer)), (409, "conflict"));

    let mute = Some(json!({ "minutes": 10, "reason": "spam" }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/ana/mute", mute).await.0, 200);
    ana.next_message().await;
    ana.say("a2", "can I talk?").await;
    assert!(matches!(ana.next().await, ServerFrame::Error { code: ErrorCode::Muted, .. }));
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/mute", None).await.0, 200);
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/mute", None).await.0, 409);
    let bad = Some(json!({ "minutes": 0 }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/ana/mute", bad).await.0, 400);
    assert_eq!(
        call(&app, Method::PUT, "/api/v1/rooms/r/slow_mode", Some(json!({ "seconds": 30 }))).await.0,
        200
    );
    assert_eq!(
        call(&app, Method::PUT, "/api/v1/rooms/r/slow_mode", Some(json!({ "seconds": 30 }))).await.0,
        409
    );

    // A report filed on a page is in the game's list, and closed from there.
    call(&app, Method::POST, "/api/v1/rooms/r/members", Some(json!({ "user_id": "bob" }))).await;
    let (_, posted) = call(
        &app,
        Method::POST,
        "/api/v1/rooms/r/messages",
        Some(json!({ "client_msg_id": "b1", "body": "rude", "user_id": "bob" })),
    )
    .await;
    let report = json!({ "channel_id": "r", "user_id": "ana", "request": { "report": { "seq": posted["seq"], "reason": "rude" } } });
    let response = app.http.post(format!("{}/api/moderate", app.base)).json(&report).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, reports) = call(&app, Method::GET, "/api/v1/rooms/r/reports", None).await;
    assert_eq!(reports[0]["reporter"], "ana");
    let id = reports[0]["id"].as_i64().unwrap();
    let close = Some(json!({ "outcome": "resolved" }));
    assert_eq!(
        call(&app, Method::POST, &format!("/api/v1/rooms/r/reports/{id}/close"), close.clone()).await.0,
        204
    );
    assert_eq!(call(&app, Method::POST, &format!("/api/v1/rooms/r/reports/{id}/close"), close).await.0, 404);
    assert_eq!(call(&app, Method::GET, "/api/v1/rooms/r/reports", None).await.1, json!([]));

    // Kick closes her page; a ban keeps her out until lifted.
    let kick = Some(json!({ "reason": "cool off" }));
    assert_eq!(call(&app, Method::POST, "/api/v1/rooms/r/members/ana/kick", kick).await.0, 200);
    loop {
        match ana.next_event().await {
            Event::Closed(code) => break assert_eq!(code, Some(4410)),
            Event::Frame(_) => continue,
        }
    }
    let ban = Some(json!({ "reason": "cheating" }));
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/bans/ana", ban).await.0, 200);
    assert_eq!(app.open_room("ana", "r").await.0, 403);
    let (status, answer) =
        call(&app, Method::POST, "/api/v1/rooms/r/members", Some(json!({ "user_id": "ana" }))).await;
    assert_eq!((status, code(&answer)), (409, "banned"));
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/bans/ana", None).await.0, 200);
    assert_eq!(app.open_room("ana", "r").await.0, 200);
    // Every field of a mute, a ban or a kick may be left out, the body too.
    assert_eq!(call(&app, Method::PUT, "/api/v1/rooms/r/members/ana/mute", None).await.0, 200);
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/mute", None).await.0, 200);
    let mute = format!("{}/api/v1/rooms/r/members/ana/mute", app.base);
    let empty_json = app.http.put(&mute).bearer_auth(KEY).header("content-type", "application/json");
    assert_eq!(empty_json.send().await.unwrap().status(), 200, "an empty body, whatever its type");
    assert_eq!(call(&app, Method::DELETE, "/api/v1/rooms/r/members/ana/mute", None).await.0, 200);
    let untyped = app.http.put(&mute).bearer_auth(KEY).body(r#"{"minutes":5}"#);
    assert_eq!(untyped.send().await.unwrap().status(), 400, "a body that does not say it is JSON");
    assert_eq!(call(&app, Method::POST, "/api/v1/rooms/r/members/ana/kick", None).await.0, 200);
    assert_eq!(app.open_room("ana", "r").await.0, 200);

    // Words added through the API are in force at once, and in the file.
    let (status, added) =
        call(&app, Method::POST, "/api/v1/word_filter", Some(json!({ "words": ["heck", "drat"] }))).await;
    assert_eq!((status, added["entries"].as_u64()), (200, Some(3)));
    assert!(std::fs::read_to_string(&words).unwrap().contains("heck\ndrat"));
    let (_, posted) = call(
        &app,
        Method::POST,
        "/api/v1/rooms/r/messages",
        Some(json!({ "client_msg_id": "w1", "body": "oh heck" })),
    )
    .await;
    assert_eq!(posted["body"], "oh ****");
    let (status, _) = call(&app, Method::POST, "/api/v1/word_filter", Some(json!({ "words": [""] }))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_game_reads_the_open_reports_a_page_at_a_time() {
    let app = api_app().await;
    let _ana = room_with_ana(&app).await;
    call(&app, Method::POST, "/api/v1/rooms/r/members", Some(json!({ "user_id": "bob" }))).await;
    for n in 1..=3 {
        let line = json!({ "client_msg_id": format!("b{n}"), "body": format!("rude {n}"), "user_id": "bob" });
        let (_, posted) = call(&app, Method::POST, "/api/v1/rooms/r/messages", Some(line)).await;
        let report = json!({ "channel_id": "r", "user_id": "ana", "request": { "report": { "seq": posted["seq"], "reason": "rude" } } });
        let filed = app.http.post(format!("{}/api/moderate", app.base)).json(&report).send().await.unwrap();
        assert_eq!(filed.status(), 200);
    }
    let bodies = |page: &Value| -> Vec<String> {
        page.as_array().unwrap().iter().map(|r| r["body"].as_str().unwrap().to_owned()).collect()
    };
    let (status, first) = call(&app, Method::GET, "/api/v1/rooms/r/reports?limit=2", None).await;
    assert_eq!(status, 200);
    assert_eq!(bodies(&first), ["rude 1", "rude 2"]);
    let last = first[1]["id"].as_i64().unwrap();
    let (_, rest) =
        call(&app, Method::GET, &format!("/api/v1/rooms/r/reports?limit=2&after_id={last}"), None).await;
    assert_eq!(bodies(&rest), ["rude 3"]);
    let (_, all) = call(&app, Method::GET, "/api/v1/rooms/r/reports", None).await;
    assert_eq!(bodies(&all), ["rude 1", "rude 2", "rude 3"]);

    // A closed report leaves the pages; a cursor that is not a number is refused.
    let closing = Some(json!({ "outcome": "dismissed" }));
    let id = first[0]["id"].as_i64().unwrap();
    assert_eq!(
        call(&app, Method::POST, &format!("/api/v1/rooms/r/reports/{id}/close"), closing).await.0,
        204
    );
    let (_, first) = call(&app, Method::GET, "/api/v1/rooms/r/reports?limit=2", None).await;
    assert_eq!(bodies(&first), ["rude 2", "rude 3"]);
    let (status, answer) = call(&app, Method::GET, "/api/v1/rooms/r/reports?after_id=last", None).await;
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

#[tokio::test]
async fn the_game_lists_the_word_filter_and_takes_an_entry_out_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "# ours\ndarn\nkill\nDARN\n").unwrap();
    let app = spawn_app_with(|c| {
        c.api_keys = vec![Secret(KEY.into())];
        c.word_filter_file = Some(words.clone());
    })
    .await;
    call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": "r" }))).await;
    let say = |id: &'static str, text: &'static str| {
        let app = &app;
        async move {
            let body = Some(json!({ "client_msg_id": id, "body": text }));
            call(app, Method::POST, "/api/v1/rooms/r/messages", body).await.1["body"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (status, listed) = call(&app, Method::GET, "/api/v1/word_filter", None).await;
    assert_eq!((status, listed), (200, json!({ "entries": ["darn", "kill"] })));
    assert_eq!(say("m1", "kill the boss").await, "**** the boss");

    // A shooter's "kill" caught what it should not: out, at once.
    let (status, left) = call(&app, Method::DELETE, "/api/v1/word_filter/KILL", None).await;
    assert_eq!((status, left), (200, json!({ "entries": 1 })));
    assert_eq!(say("m2", "kill the boss").await, "kill the boss");
    assert_eq!(std::fs::read_to_string(&words).unwrap(), "# ours\ndarn\nDARN\n", "the rest as it was");
    // Every line that reads as the entry goes; a phrase by its path.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/word_filter/darn", None).await.1, json!({ "entries": 0 }));
    assert_eq!(std::fs::read_to_string(&words).unwrap(), "# ours\n");
    call(&app, Method::POST, "/api/v1/word_filter", Some(json!({ "words": ["get lost"] }))).await;
    assert_eq!(call(&app, Method::DELETE, "/api/v1/word_filter/Get%20Lost", None).await.0, 200);
    let (status, answer) = call(&app, Method::DELETE, "/api/v1/word_filter/darn", None).await;
    assert_eq!((status, code(&answer)), (404, "not_found"));
    assert_eq!(std::fs::read_to_string(&words).unwrap(), "# ours\n", "nothing changed");

    // Without a list there is nothing to list or change.
    let bare = api_app().await;
    let (status, answer) = call(&bare, Method::GET, "/api/v1/word_filter", None).await;
    assert_eq!((status, code(&answer)), (409, "not_configured"));
    assert_eq!(call(&bare, Method::DELETE, "/api/v1/word_filter/darn", None).await.0, 409);
}

#[tokio::test]
async fn the_game_mints_tokens_that_pages_accept_and_open_mode_has_none() {
    let app = spawn_app_with(|c| {
        c.api_keys = vec![Secret(KEY.into())];
        c.token_secret = Some(Secret(SECRET.into()));
    })
    .await;
    let request = Some(json!({ "user_id": "ana", "channel_id": "r", "role": "moderator", "ttl_secs": 600 }));
    let (status, minted) = call(&app, Method::POST, "/api/v1/tokens", request).await;
    assert_eq!(status, 201);
    let token = minted["token"].as_str().unwrap();
    assert!(minted["expires"].as_i64().unwrap() > engine::identity::unix_now());
    let (status, html) = app.get(&format!("{}/chat_room?token={token}", app.base)).await;
    assert_eq!(status, 200);
    assert!(html.contains("role-badge"), "a moderator's page");
    for bad in [
        json!({ "user_id": "ana", "channel_id": "r", "ttl_secs": 0 }),
        json!({ "user_id": " ", "channel_id": "r" }),
    ] {
        assert_eq!(call(&app, Method::POST, "/api/v1/tokens", Some(bad)).await.0, 400);
    }
    let open = api_app().await;
    let (status, answer) =
        call(&open, Method::POST, "/api/v1/tokens", Some(json!({ "user_id": "a", "channel_id": "r" }))).await;
    assert_eq!((status, code(&answer)), (409, "not_configured"));
}

#[tokio::test]
async fn on_several_nodes_any_node_says_who_is_online() {
    let nodes = spawn_nodes(3, |c| c.api_keys = vec![Secret(KEY.into())]).await;
    let _ana = nodes[0].join("ana", "r").await;
    drop(nodes[1].join("bob", "r").await);
    // The third node has never had a page of the room.
    let (status, room) = call(&nodes[2], Method::GET, "/api/v1/rooms/r", None).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(
        room["members"],
        json!([
            { "user_id": "ana", "role": "player", "online": true },
            { "user_id": "bob", "role": "player", "online": false },
        ])
    );
}

#[tokio::test]
async fn the_game_keeps_a_players_block_list_and_their_open_pages_follow_it() {
    let app = api_app().await;
    let mut ana = app.join("ana", "lobby").await;
    let mut bob = app.join("bob", "lobby").await;
    ana.next().await; // bob joined

    let (status, _) = call(&app, Method::PUT, "/api/v1/users/ana/blocks/bob", None).await;
    assert_eq!(status, 201);
    assert_eq!(ana.next().await, ServerFrame::Blocked { user_id: "ana".into(), target: "bob".into() });
    bob.expect_silence(QUIET).await;
    // Idempotent: the same block again changes nothing and tells nobody.
    let (status, _) = call(&app, Method::PUT, "/api/v1/users/ana/blocks/bob", None).await;
    assert_eq!(status, 200);
    ana.expect_silence(QUIET).await;
    // A block may come before the player does.
    assert_eq!(call(&app, Method::PUT, "/api/v1/users/ana/blocks/zed", None).await.0, 201);
    assert_eq!(ana.next().await, ServerFrame::Blocked { user_id: "ana".into(), target: "zed".into() });
    let (status, list) = call(&app, Method::GET, "/api/v1/users/ana/blocks", None).await;
    assert_eq!((status, list), (200, json!({ "blocked": ["bob", "zed"] })));
    assert_eq!(
        call(&app, Method::GET, "/api/v1/users/nobody/blocks", None).await.1,
        json!({ "blocked": [] })
    );

    let too_long = format!("/api/v1/users/ana/blocks/{}", "x".repeat(65));
    for path in ["/api/v1/users/ana/blocks/ana", "/api/v1/users/ana/blocks/game", too_long.as_str()] {
        let (status, answer) = call(&app, Method::PUT, path, None).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{path}");
    }

    let (status, _) = call(&app, Method::DELETE, "/api/v1/users/ana/blocks/bob", None).await;
    assert_eq!(status, 204);
    assert_eq!(ana.next().await, ServerFrame::Unblocked { user_id: "ana".into(), target: "bob".into() });
    let (status, answer) = call(&app, Method::DELETE, "/api/v1/users/ana/blocks/bob", None).await;
    assert_eq!((status, code(&answer)), (404, "not_found"));
    assert_eq!(
        call(&app, Method::GET, "/api/v1/users/ana/blocks", None).await.1,
        json!({ "blocked": ["zed"] })
    );

    // An account closed: the whole list lifted at once, the pages told.
    assert_eq!(call(&app, Method::PUT, "/api/v1/users/ana/blocks/bob", None).await.0, 201);
    assert_eq!(ana.next().await, ServerFrame::Blocked { user_id: "ana".into(), target: "bob".into() });
    let (status, lifted) = call(&app, Method::DELETE, "/api/v1/users/ana/blocks", None).await;
    assert_eq!((status, lifted), (200, json!({ "unblocked": ["zed", "bob"] })));
    assert_eq!(ana.next().await, ServerFrame::Unblocked { user_id: "ana".into(), target: "zed".into() });
    assert_eq!(ana.next().await, ServerFrame::Unblocked { user_id: "ana".into(), target: "bob".into() });
    assert_eq!(call(&app, Method::GET, "/api/v1/users/ana/blocks", None).await.1, json!({ "blocked": [] }));
    let (_, again) = call(&app, Method::DELETE, "/api/v1/users/ana/blocks", None).await;
    assert_eq!(again, json!({ "unblocked": [] }));
}

#[tokio::test]
async fn a_full_block_list_refuses_one_more_and_keeps_what_it_has() {
    let app = api_app().await;
    let max = app::protocol::moderation::MAX_BLOCKED;
    for i in 1..max {
        let (status, _) = call(&app, Method::PUT, &format!("/api/v1/users/ana/blocks/p{i}"), None).await;
        assert_eq!(status, 201, "block {i}");
    }
    assert_eq!(call(&app, Method::PUT, "/api/v1/users/ana/blocks/last", None).await.0, 201);
    let (status, answer) = call(&app, Method::PUT, "/api/v1/users/ana/blocks/one_more", None).await;
    assert_eq!((status, code(&answer)), (409, "conflict"));
    assert!(answer["error"]["message"].as_str().unwrap().contains("full"), "{answer}");
    // Blocking someone already on the list is still fine.
    assert_eq!(call(&app, Method::PUT, "/api/v1/users/ana/blocks/last", None).await.0, 200);
    let (_, list) = call(&app, Method::GET, "/api/v1/users/ana/blocks", None).await;
    let list = list["blocked"].as_array().unwrap();
    assert_eq!(list.len() as u64, max);
    assert_eq!(list.last().unwrap(), "last");
}
