//! `/embed-demo[?user_id=U&channel_id=C&chat_origin=O]`: a host page that
//! embeds a room in an iframe the way a game does, and shows the events the
//! room posts to it (the unread count). The host side is a small script
//! file, `/embed-demo.js` (from `public/`), not inline code, so the demo
//! works under a strict Content Security Policy as a real host would.
//! `chat_origin` loads the room from another origin, to see cross-origin
//! embedding on one machine (e.g. this page on 127.0.0.1, the room on
//! localhost).
use leptos::prelude::*;
use leptos_meta::{Script, Title};
use leptos_router::hooks::use_query_map;

#[component]
pub fn EmbedDemoPage() -> impl IntoView {
    let query = use_query_map();
    let value = |key: &str, default: &str| {
        query
            .with_untracked(|q| q.get(key))
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let user_id = value("user_id", "player1");
    let channel_id = value("channel_id", "lobby");
    let chat_origin = value("chat_origin", "");

    view! {
        <Title text="Embedding demo · Embedded Chat"/>
        <Script src="/embed-demo.js" defer="defer"/>
        <main class="page demo">
            <h1>"Embedding demo"</h1>
            <p class="lead">
                "This page stands in for a game: it shows a chat room in an iframe and counts the
                unread messages the room reports. See "
                <code>"docs/embedding.md"</code> "."
            </p>
            <form class="card demo-form" method="get" action="/embed-demo">
                <label for="demo-user">"Player"</label>
                <input id="demo-user" name="user_id" value=user_id maxlength="64" required/>
                <label for="demo-room">"Room"</label>
                <input id="demo-room" name="channel_id" value=channel_id maxlength="64" required/>
                <label for="demo-origin">"Chat origin (empty: this site)"</label>
                <input id="demo-origin" name="chat_origin" value=chat_origin placeholder="http://localhost:8080"/>
                <button type="submit">"Embed"</button>
            </form>
            <div class="demo-stage">
                <iframe id="chat-frame" class="demo-frame" title="Chat room" allow="clipboard-write"></iframe>
                <section class="card demo-events" aria-labelledby="demo-events-heading">
                    <h2 id="demo-events-heading">"What the room told this page"</h2>
                    <p role="status" class="demo-unread">
                        "Unread messages: " <strong id="demo-unread">"0"</strong>
                    </p>
                    <ol id="demo-log" class="demo-log" aria-label="Events received"></ol>
                </section>
            </div>
        </main>
    }
}
