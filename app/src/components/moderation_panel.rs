//! `ModerationPanel`: a moderator's tools in the sidebar (players never see
//! it): the room's slow mode, lifting a ban, and the report queue, each
//! report with the message as it was reported and buttons to resolve
//! (acted upon) or dismiss it. The queue comes with the page, is read
//! again after each welcome of the room stream (and when the user becomes
//! a moderator) and kept live by its report frames. Its forms work
//! without JavaScript too (see `menus`, which writes them; the queue is
//! drawn anew as it changes).
use leptos::prelude::*;

use super::chat_room::use_room;
use super::menus::{identity_html, reports_html, room_settings_html};
use crate::protocol::Role;

#[component]
pub fn ModerationPanel() -> impl IntoView {
    let room = use_room();
    let identity = StoredValue::new(identity_html(room));
    let settings = move || {
        let slow_mode_secs = room.standing.with(|s| s.slow_mode_secs);
        identity.with_value(|identity| room_settings_html(identity, slow_mode_secs))
    };
    let count = move || room.reports.with(|q| q.len());
    let none = move || room.reports.with(|q| q.is_empty());
    let reports =
        move || room.reports.with(|q| identity.with_value(|identity| reports_html(identity, q.iter())));
    // The reports' times, in the reader's zone once drawn.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        room.reports.track();
        room.role.track();
        if let Ok(Some(list)) = document().query_selector(".report-list") {
            super::menus::localize_times(&list);
        }
    });
    move || {
        (room.role.get() == Role::Moderator).then(|| {
            view! {
                <section class="moderation-panel" aria-labelledby="moderation-heading">
                    <h2 id="moderation-heading">"Moderation"</h2>
                    <div class="room-settings" inner_html=settings></div>
                    <h3 id="reports-heading" tabindex="-1">
                        "Reports " <span class="count">"(" {count} ")"</span>
                    </h3>
                    {move || none().then(|| view! { <p class="no-reports">"No open reports."</p> })}
                    <ul class="report-list" aria-labelledby="reports-heading" inner_html=reports></ul>
                </section>
            }
        })
    }
}
