//! `LocalTime`: a time in the reader's zone. The server cannot know the
//! zone, so it renders the element empty with the UTC time in attributes
//! (the stylesheet shows that without JavaScript); the browser then writes
//! the local time, outside of hydration, so the two never disagree.
use leptos::prelude::*;

use crate::timestamps::{iso_utc, utc_hm};

#[component]
pub fn LocalTime(at_ms: i64, #[prop(into)] class: String) -> impl IntoView {
    let node = NodeRef::<leptos::html::Time>::new();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(el) = node.get() {
            el.set_text_content(Some(&crate::timestamps::local::short(at_ms)));
            el.set_title(&crate::timestamps::local::full(at_ms));
        }
    });
    view! { <time class=class datetime=iso_utc(at_ms) data-utc=utc_hm(at_ms) node_ref=node></time> }
}
