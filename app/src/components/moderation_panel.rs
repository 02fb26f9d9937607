//! `ModerationPanel`: a moderator's tools in the sidebar (players never see
//! it): the room's slow mode, lifting a ban, and the report queue, each
//! report with the message as it was reported and buttons to resolve
//! (acted upon) or dismiss it. The queue comes with the page, is read
//! again after each welcome of the room stream (and when the user becomes
//! a moderator) and kept live by its report frames. Its forms work
//! without JavaScript too (see `menus`, which writes them; the queue is
//! drawn anew as it changes, and the keyboard kept on the button it was on).
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
    // The queue is drawn anew as it changes. A keyboard on one of its
    // buttons stays on that button, or goes to the heading when its report
    // left (closed here or elsewhere): the button it was on, if any.
    #[cfg(feature = "hydrate")]
    let kept = StoredValue::new(None::<String>);
    let reports = move || {
        #[cfg(feature = "hydrate")]
        kept.set_value(focused_in(".report-list"));
        room.reports.with(|q| identity.with_value(|identity| reports_html(identity, q.iter())))
    };
    // Once drawn (an effect runs after the render effect that wrote the
    // list): the reports' times in the reader's zone, and the keyboard back.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        room.reports.track();
        room.role.track();
        if let Ok(Some(list)) = document().query_selector(".report-list") {
            super::menus::localize_times(&list);
        }
        if let Some(id) = kept.try_update_value(Option::take).flatten() {
            match document().get_element_by_id(&id) {
                Some(button) => super::menus::focus_element(&button),
                None => super::menus::focus("#reports-heading"),
            }
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

/// The id of the focused element if it is inside `selector` ("" if it has
/// none).
#[cfg(feature = "hydrate")]
fn focused_in(selector: &str) -> Option<String> {
    let active = document().active_element()?;
    active.closest(selector).ok()??;
    Some(active.id())
}
