//! "Add user to room": a form to the `add_user` server function. The new
//! member appears through the room stream on every open page; an empty or
//! invalid name shows the server's sentence and changes nothing.
use leptos::prelude::*;

use super::chat_room::use_room;
use crate::api::AddUser;

#[component]
pub fn AddUserForm() -> impl IntoView {
    let room = use_room();
    let add = ServerAction::<AddUser>::new();
    let new_user = RwSignal::new(String::new());
    let result = add.value();
    // Clear the field after a successful add.
    Effect::new(move |_| {
        if matches!(result.get(), Some(Ok(()))) {
            new_user.set(String::new());
        }
    });
    let error = move || match result.get() {
        Some(Err(err)) => Some(err.to_string()),
        _ => None,
    };

    view! {
        <section class="add-user" aria-labelledby="add-user-heading">
            <h2 id="add-user-heading">"Add user to room"</h2>
            <ActionForm action=add>
                <input type="hidden" name="channel_id" value=room.channel_id.get_value()/>
                <input type="hidden" name="user_id" value=room.user_id.get_value()/>
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
            </ActionForm>
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}
