//! The room's menus and moderation forms: on each stored message, what the
//! reader may do with it (delete it, report it, block its author, and a
//! moderator's actions on its author); on each member in the sidebar, a
//! moderator's actions (and "Unblock" on a member the reader blocked);
//! and the moderator's panel (slow mode, lifting a ban, the report queue).
//! Only what the user may do is offered (`moderation::MessageActions`, by
//! the rules the server applies again).
//!
//! A menu is a `<details>` disclosure: it opens with a click, Enter or
//! Space, and without JavaScript; Escape or a click elsewhere closes it.
//! Every action is a form posting to a server function, so it works
//! without JavaScript. With it, the room catches the forms' submits (see
//! `submitted`) and sends their requests up the room stream instead; a
//! refusal shows as the room's notice.
//!
//! The markup is written here as text (escaped), set as the menus'
//! `inner_html`: a room shows a menu per message, and the forms are many
//! and static, which as `view!`s would cost the WASM every player
//! downloads several times what the text does.
use std::fmt::Write;

use leptos::prelude::*;

use super::chat_room::use_room;
use crate::moderation::{because, MessageActions, Sanction, SLOW_MODE_CHOICES};
use crate::protocol::moderation::{Report, MAX_REASON_CHARS};
use crate::timestamps::{iso_utc, utc_hm};
use crate::validate::MAX_ID_CHARS;

/// The "⋯" menu of a stored message (none when the reader may do nothing
/// with it). Made for the role the page has when the line is drawn: the
/// conversation draws its lines anew when the role changes.
#[component]
pub fn MessageMenu(seq: i64, author: String, preview: String) -> impl IntoView {
    let room = use_room();
    let me = room.user_id.get_value();
    let actions = MessageActions::of(&me, room.role.get_untracked(), &author, seq);
    let html = message_menu_html(&identity_html(room), &me, &author, seq, &preview, actions);
    actions.any().then(|| view! { <details class="menu message-menu" inner_html=html></details> })
}

/// A moderator's "⋯" menu of a member in the sidebar.
#[component]
pub fn MemberMenu(member: String) -> impl IntoView {
    let html = member_menu_html(&identity_html(use_room()), &member);
    view! { <details class="menu member-menu" inner_html=html></details> }
}

/// The hidden fields that say who acts in which room (what
/// `RoomIdentityFields` renders), as markup.
pub fn identity_html(room: super::chat_room::RoomSignals) -> String {
    let mut html = String::new();
    hidden(&mut html, "channel_id", &room.channel_id.get_value());
    hidden(&mut html, "user_id", &room.user_id.get_value());
    if let Some(token) = room.token.get_value() {
        hidden(&mut html, "token", &token);
    }
    html
}

/// Text made safe to put in markup, between tags or in a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hidden(html: &mut String, name: &str, value: &str) {
    let _ = write!(html, r#"<input type="hidden" name="{name}" value="{}">"#, escape(value));
}

/// A menu's button: "⋯", named for screen readers by `label`.
fn summary(html: &mut String, label: &str, title: &str) {
    let _ = write!(
        html,
        r#"<summary aria-label="{}" title="{title}"><span aria-hidden="true">⋯</span></summary>"#,
        escape(label)
    );
}

/// An optional one-line reason, as a labelled field.
fn reason_field(html: &mut String, label: &str) {
    let _ = write!(
        html,
        r#"<label class="menu-field">{label}<input name="reason" autocomplete="off" maxlength="{MAX_REASON_CHARS}"></label>"#
    );
}

/// The inside of a message's menu: its button, then a form per action.
pub fn message_menu_html(
    identity: &str,
    me: &str,
    author: &str,
    seq: i64,
    preview: &str,
    actions: MessageActions,
) -> String {
    let mut html = String::new();
    let whose = if author == me { "your message".to_owned() } else { format!("{author}'s message") };
    summary(&mut html, &format!("Options for {whose}: {preview}"), "Options");
    html.push_str(r#"<div class="menu-panel">"#);
    if actions.delete {
        let _ = write!(
            html,
            r#"<form method="post" action="/api/remove_message" class="menu-form">{identity}<input type="hidden" name="seq" value="{seq}"><button type="submit" class="menu-item danger">Delete message</button></form>"#
        );
    }
    if actions.report {
        let _ = write!(
            html,
            r#"<form method="post" action="/api/report_message" class="menu-form">{identity}<input type="hidden" name="seq" value="{seq}">"#
        );
        reason_field(&mut html, "Why? (optional)");
        html.push_str(r#"<button type="submit" class="menu-item">Report to moderators</button></form>"#);
    }
    if actions.sanction {
        member_actions(&mut html, identity, author);
    }
    if actions.block {
        block_form(&mut html, identity, author, true);
    }
    html.push_str("</div>");
    html
}

/// A form that blocks `member` (or, `blocked` false, lifts the block).
pub fn block_form(html: &mut String, identity: &str, member: &str, blocked: bool) {
    let (verb, class) = if blocked { ("Block", "menu-item danger") } else { ("Unblock", "secondary") };
    let _ = write!(
        html,
        r#"<form method="post" action="/api/block_user" class="menu-form">{identity}<input type="hidden" name="member" value="{0}"><input type="hidden" name="blocked" value="{blocked}"><button type="submit" class="{class}">{verb} {0}</button></form>"#,
        escape(member)
    );
}

/// The inside of a member's menu in the sidebar.
pub fn member_menu_html(identity: &str, member: &str) -> String {
    let mut html = String::new();
    summary(&mut html, &format!("Moderate {member}"), "Moderate");
    html.push_str(r#"<div class="menu-panel">"#);
    member_actions(&mut html, identity, member);
    html.push_str("</div>");
    html
}

/// A moderator's actions on a member: a reason everyone will read, and a
/// button per action (the pressed one's value is what the form posts).
fn member_actions(html: &mut String, identity: &str, member: &str) {
    let _ = write!(
        html,
        r#"<form method="post" action="/api/moderate_member" class="menu-form">{identity}<input type="hidden" name="member" value="{0}"><fieldset><legend>Moderate {0}</legend>"#,
        escape(member)
    );
    // Enter in the reason field presses a form's first button: this one,
    // which does nothing, rather than a mute.
    html.push_str(r#"<button type="submit" disabled hidden></button>"#);
    reason_field(html, "Reason (optional, everyone sees it)");
    html.push_str(r#"<div class="menu-buttons">"#);
    for sanction in Sanction::MENU {
        let danger = if sanction.removes() { " danger" } else { "" };
        let _ = write!(
            html,
            r#"<button type="submit" name="sanction" value="{}" class="menu-item{danger}">{}</button>"#,
            sanction.value(),
            sanction.label()
        );
    }
    html.push_str("</div></fieldset></form>");
}

/// The moderator's room settings: slow mode (the room's setting chosen),
/// and lifting a ban by name (a banned member is not in the room's list).
pub fn room_settings_html(identity: &str, slow_mode_secs: u32) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<form method="post" action="/api/set_slow_mode">{identity}<label for="slow-mode">Slow mode</label><div class="row"><select id="slow-mode" name="seconds">"#
    );
    let mut choices: Vec<(u32, String)> =
        SLOW_MODE_CHOICES.iter().map(|(s, l)| (*s, (*l).to_owned())).collect();
    if !choices.iter().any(|(s, _)| *s == slow_mode_secs) {
        choices.push((slow_mode_secs, format!("{slow_mode_secs} seconds")));
    }
    for (seconds, label) in choices {
        let selected = if seconds == slow_mode_secs { " selected" } else { "" };
        let _ = write!(html, r#"<option value="{seconds}"{selected}>{label}</option>"#);
    }
    let _ = write!(
        html,
        r#"</select><button type="submit" class="secondary">Set</button></div></form><form method="post" action="/api/moderate_member">{identity}<input type="hidden" name="sanction" value="{}"><label for="lift-ban">Lift a ban</label><div class="row"><input id="lift-ban" name="member" autocomplete="off" placeholder="User name" maxlength="{MAX_ID_CHARS}"><button type="submit" class="secondary">Lift ban</button></div></form>"#,
        Sanction::Unban.value()
    );
    html
}

/// The open reports, an item each (see [`report_html`]).
pub fn reports_html<'a>(identity: &str, reports: impl Iterator<Item = &'a Report>) -> String {
    reports.map(|report| format!(r#"<li class="report">{}</li>"#, report_html(identity, report))).collect()
}

/// One open report: the message as it was reported, who reported it, when
/// (UTC until the page writes the local time) and why, and the buttons
/// that close it.
pub fn report_html(identity: &str, report: &Report) -> String {
    let Report { id, author, body, reporter, reason, at_ms, .. } = report;
    let about = escape(&format!("{author}'s message: {}", crate::conversation::preview(body)));
    let text = if body.is_empty() { "(no text)".to_owned() } else { escape(body) };
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<p class="report-text"><span class="author">{}</span><span class="sep">: </span><span class="body">{text}</span></p><p class="report-meta">Reported by {} at <time datetime="{}" data-utc="{}"></time>{}</p>"#,
        escape(author),
        escape(reporter),
        iso_utc(*at_ms),
        utc_hm(*at_ms),
        escape(&because(reason)),
    );
    let _ = write!(
        html,
        r#"<form method="post" action="/api/close_report" class="report-actions">{identity}<input type="hidden" name="id" value="{id}"><button type="submit" name="resolved" value="true" class="secondary" id="report-{id}-resolve" aria-label="Resolve report on {about}">Resolve</button><button type="submit" name="resolved" value="false" class="secondary" id="report-{id}-dismiss" aria-label="Dismiss report on {about}">Dismiss</button></form>"#
    );
    html
}

/// With JavaScript, a room form's submit: a moderation form's request goes
/// up the room stream (the form is not posted); how it went shows as the
/// room's notice, or for a report a word of thanks. Once done, the menu
/// around the form closes. Other forms are left to their own handlers.
#[cfg(feature = "hydrate")]
pub fn submitted(
    ev: &leptos::ev::SubmitEvent,
    room: super::chat_room::RoomSignals,
    stream: StoredValue<Option<crate::stream_client::RoomStream>, LocalStorage>,
) {
    use crate::protocol::moderation::Request;
    use wasm_bindgen::JsCast;
    let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok()) else { return };
    let submitter = ev.submitter();
    let action = form.get_attribute("action").unwrap_or_default();
    let field = |name: &str| -> Option<String> {
        if let Some(button) = submitter.as_ref().filter(|b| b.get_attribute("name").as_deref() == Some(name))
        {
            return button.get_attribute("value");
        }
        let input = form.query_selector(&format!("[name={name}]")).ok()??;
        js_sys::Reflect::get(&input, &wasm_bindgen::JsValue::from_str("value")).ok()?.as_string()
    };
    let Some(request) = crate::moderation::form_request(&action, field) else { return };
    ev.prevent_default();
    let thanks = match request {
        Request::Report { .. } => Some("Thank you. The moderators will look at this message."),
        Request::Block { .. } => Some("Blocked. You will not see their messages any more."),
        _ => None,
    };
    // Where the keyboard goes once done, if the form goes away: a removed
    // message loses its menu, a closed report leaves the queue.
    let refocus = match request {
        Request::Remove { .. } => Some(".scroller"),
        Request::CloseReport { .. } => Some("#reports-heading"),
        // The line (or the member's button) goes away.
        Request::Block { .. } | Request::Unblock { .. } => Some(".scroller"),
        _ => None,
    };
    // One request at a time per form (the button keeps the keyboard: a
    // disabled one would lose it).
    if form.has_attribute("data-busy") {
        return;
    }
    let _ = form.set_attribute("data-busy", "");
    let answer = Box::new(move |result: Result<(), String>| {
        let _ = form.remove_attribute("data-busy");
        let done = result.is_ok();
        room.acted(result, thanks);
        if !done {
            return;
        }
        form.reset();
        if let Some(menu) = form.closest("details").ok().flatten() {
            close(&menu);
        }
        if let Some(selector) = refocus {
            focus(selector);
        }
    });
    stream.with_value(|s| {
        if let Some(s) = s {
            s.act(request, answer);
        }
    });
}

/// Escape closes the open menu the keyboard is in.
#[cfg(feature = "hydrate")]
pub fn key_pressed(ev: &leptos::ev::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    if ev.key() != "Escape" {
        return;
    }
    let target = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok());
    if let Some(menu) = target.and_then(|t| t.closest("details.menu[open]").ok().flatten()) {
        ev.stop_propagation();
        close(&menu);
    }
}

/// Closes every open menu the click `ev` was not in.
#[cfg(feature = "hydrate")]
pub fn close_menus_outside(ev: &leptos::ev::MouseEvent) {
    use wasm_bindgen::JsCast;
    let target = ev.target().and_then(|t| t.dyn_into::<web_sys::Node>().ok());
    let Ok(open) = document().query_selector_all("details.menu[open]") else { return };
    for i in 0..open.length() {
        let Some(menu) = open.item(i).and_then(|n| n.dyn_into::<web_sys::Element>().ok()) else { continue };
        if !menu.contains(target.as_ref()) {
            let _ = menu.remove_attribute("open");
        }
    }
}

/// Writes the reader's local time into the empty `<time>`s under `root`
/// (markup written as text has them in UTC).
#[cfg(feature = "hydrate")]
pub fn localize_times(root: &web_sys::Element) {
    let Ok(times) = root.query_selector_all("time[datetime]:empty") else { return };
    for i in 0..times.length() {
        let Some(time) = times.item(i) else { continue };
        let Some(at_ms) = wasm_bindgen::JsCast::dyn_ref::<web_sys::Element>(&time)
            .and_then(|t| t.get_attribute("datetime"))
            .map(|iso| js_sys::Date::parse(&iso))
            .filter(|ms| ms.is_finite())
        else {
            continue;
        };
        time.set_text_content(Some(&crate::timestamps::local::short(at_ms as i64)));
    }
}

/// Closes a menu and gives the keyboard back to its button.
#[cfg(feature = "hydrate")]
fn close(menu: &web_sys::Element) {
    let _ = menu.remove_attribute("open");
    if let Ok(Some(summary)) = menu.query_selector("summary") {
        focus_element(&summary);
    }
}

#[cfg(feature = "hydrate")]
pub fn focus(selector: &str) {
    if let Ok(Some(el)) = document().query_selector(selector) {
        focus_element(&el);
    }
}

#[cfg(feature = "hydrate")]
pub fn focus_element(el: &web_sys::Element) {
    if let Some(el) = wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlElement>(el) {
        let _ = el.focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str = r#"<input type="hidden" name="channel_id" value="g">"#;

    fn actions(delete: bool, report: bool, sanction: bool) -> MessageActions {
        MessageActions { delete, report, sanction, block: false }
    }

    #[test]
    fn markup_text_is_escaped() {
        assert_eq!(
            escape(r#"<b>"Tom" & 'Jerry'</b>"#),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
        let html = message_menu_html(IDENTITY, "ana", "<x>", 3, "\"><script>", actions(false, true, true));
        assert!(!html.contains("<script>") && !html.contains("<x>"), "{html}");
        assert!(
            html.contains(r#"aria-label="Options for &lt;x&gt;&#39;s message: &quot;&gt;&lt;script&gt;""#),
            "{html}"
        );
    }

    #[test]
    fn a_message_menu_has_a_form_per_action_the_reader_may_take() {
        let own = message_menu_html(IDENTITY, "ana", "ana", 3, "hi", actions(true, false, false));
        assert!(own.contains(r#"aria-label="Options for your message: hi""#));
        assert!(own.contains(r#"action="/api/remove_message""#) && own.contains(r#"name="seq" value="3""#));
        assert!(!own.contains("report_message") && !own.contains("moderate_member"));
        assert!(own.contains(IDENTITY));

        let others = message_menu_html(IDENTITY, "ana", "bob", 4, "yo", actions(false, true, false));
        assert!(others.contains(r#"action="/api/report_message""#) && others.contains("Why? (optional)"));
        assert!(!others.contains("remove_message"));

        let moderators = message_menu_html(IDENTITY, "mod", "bob", 4, "yo", actions(true, false, true));
        assert!(moderators.contains(r#"action="/api/moderate_member""#));
        assert!(moderators.contains("<legend>Moderate bob</legend>"));
        for sanction in Sanction::MENU {
            assert!(moderators.contains(&format!(r#"value="{}""#, sanction.value())), "{sanction:?}");
        }
        assert!(!moderators.contains(Sanction::Unban.value()));
    }

    #[test]
    fn a_block_form_posts_who_and_which_way() {
        let menu = message_menu_html(
            IDENTITY,
            "ana",
            "<b>",
            4,
            "yo",
            MessageActions { block: true, ..actions(false, true, false) },
        );
        assert!(menu.contains(r#"action="/api/block_user""#), "{menu}");
        assert!(
            menu.contains(r#"name="member" value="&lt;b&gt;""#)
                && menu.contains(r#"name="blocked" value="true""#)
        );
        assert!(menu.contains(">Block &lt;b&gt;</button>"), "{menu}");
        let mut unblock = String::new();
        block_form(&mut unblock, IDENTITY, "bob", false);
        assert!(
            unblock.contains(r#"name="blocked" value="false""#) && unblock.contains(">Unblock bob</button>")
        );
        assert!(unblock.contains(IDENTITY));
    }

    #[test]
    fn enter_in_a_reason_field_presses_no_sanction() {
        let html = member_menu_html(IDENTITY, "bob");
        let first_button = html.find("<button").unwrap();
        assert!(html[first_button..].starts_with(r#"<button type="submit" disabled hidden>"#), "{html}");
        assert!(html.contains(r#"aria-label="Moderate bob""#));
    }

    #[test]
    fn the_room_settings_show_the_slow_mode_in_force() {
        let html = room_settings_html(IDENTITY, 30);
        assert!(html.contains(r#"<option value="30" selected>30 seconds</option>"#));
        assert!(html.contains(r#"<option value="0">Off</option>"#));
        let odd = room_settings_html(IDENTITY, 45);
        assert!(odd.contains(r#"<option value="45" selected>45 seconds</option>"#));
        assert!(html.contains(r#"name="sanction" value="unban""#));
    }

    #[test]
    fn a_report_shows_the_message_who_reported_it_and_why() {
        let report = Report {
            id: 9,
            seq: 4,
            author: "bob".into(),
            body: "you <all> stink".into(),
            reporter: "ana".into(),
            reason: "rude".into(),
            at_ms: 1_764_086_645_123,
        };
        let html = report_html(IDENTITY, &report);
        assert!(html.contains(r#"<span class="body">you &lt;all&gt; stink</span>"#));
        assert!(html.contains(r#"Reported by ana at <time datetime="2025-11-25T16:04:05.123Z" data-utc="16:04 UTC"></time> (reason: rude)"#));
        assert!(html.contains(r#"name="id" value="9""#));
        assert!(html.contains(r#"aria-label="Resolve report on bob&#39;s message: you &lt;all&gt; stink""#));
    }
}
