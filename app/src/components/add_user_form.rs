//! "Add user to room": a form to the `add_user` server function. The new
//! member appears through the room stream on every open page. The page
//! checks the name first (an empty name shows "Please enter a user name."
//! without a request); the server checks again and its refusal is shown the
//! same way. Without JavaScript the form posts to the server function.
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::chat_room::{use_room, RoomIdentityFields};
use crate::api::AddUser;
use crate::validate::normalize_id;

#[component]
pub fn AddUserForm() -> impl IntoView {
    let room = use_room();
    let add = ServerAction::<AddUser>::new();
    let new_user = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let result = add.value();
    // Clear the field after a successful add.
    Effect::new(move |_| {
        if matches!(result.get(), Some(Ok(()))) {
            new_user.set(String::new());
        }
    });
    let error = move || {
        local_error.get().or_else(|| match result.get() {
            Some(Err(err)) => Some(err.to_string()),
            _ => None,
        })
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match normalize_id(&new_user.get_untracked(), "user name") {
            Err(err) => {
                result.set(None);
                local_error.set(Some(err.to_string()));
            }
            Ok(name) => {
                local_error.set(None);
                add.dispatch(AddUser {
                    channel_id: room.channel_id.get_value(),
                    user_id: room.user_id.get_value(),
                    new_user: name,
                    token: room.token.get_value(),
                });
            }
        }
    };

    view! {
        <section class="add-user" aria-labelledby="add-user-heading">
            <h2 id="add-user-heading">"Add user to room"</h2>
            <form method="post" action="/api/add_user" on:submit=on_submit>
                <RoomIdentityFields/>
                <label for="new-user">"User to add"</label>
                <div class="row">
                    <input
                        id="new-user"
                        name="new_user"
                        autocomplete="off"
                        maxlength="64"
                        prop:value=move || new_user.get()
                        on:input=move |ev| new_user.set(event_target_value(&ev))
                    />
                    <button type="submit" disabled=move || add.pending().get()>"Add user"</button>
                </div>
            </form>
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}
