//! The parts of a room page. `ChatRoom` owns the room's signals; the
//! others render a slice of them.
pub mod add_user_form;
pub mod chat_room;
pub mod composer;
pub mod local_time;
mod menus;
pub mod messages_list;
pub mod moderation_panel;
pub mod room_header;
pub mod typing_line;
pub mod user_online;
