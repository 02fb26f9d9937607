//! sea-orm entities, one module per table of the `migration` crate.

pub mod room {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "room")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub channel_id: String,
        pub last_seq: i64,
        pub created_at: DateTimeUtc,
        pub slow_mode_secs: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod app_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "app_user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub room_id: i64,
        pub user_id: String,
        pub joined_at: DateTimeUtc,
        /// `player` or `moderator` (set by the game's server API).
        pub role: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub room_id: i64,
        pub seq: i64,
        pub user_id: String,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        pub client_msg_id: String,
        pub created_at: DateTimeUtc,
        /// A moderation event's JSON (`protocol::moderation::Action`).
        #[sea_orm(column_type = "Text", nullable)]
        pub action: Option<String>,
        pub removed_by: Option<String>,
        pub removed_at: Option<DateTimeUtc>,
        /// Posted by the game itself.
        pub system: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl From<Model> for crate::protocol::ChatMessage {
        fn from(m: Model) -> Self {
            let removed = m
                .removed_by
                .zip(m.removed_at)
                .map(|(by, at)| crate::protocol::moderation::Removed { by, at_ms: at.timestamp_millis() });
            crate::protocol::ChatMessage {
                seq: m.seq,
                user_id: m.user_id,
                // A removed message's text is never sent again.
                body: if removed.is_some() { String::new() } else { m.body },
                client_msg_id: m.client_msg_id,
                at_ms: m.created_at.timestamp_millis(),
                action: m.action.as_deref().and_then(super::read_action),
                removed,
                system: m.system,
            }
        }
    }
}

/// An action as stored; an unreadable one (written by a newer version, or
/// by hand) is logged and read as none.
pub fn read_action(json: &str) -> Option<crate::protocol::moderation::Action> {
    serde_json::from_str(json).inspect_err(|e| tracing::warn!(%e, json, "unreadable action")).ok()
}

pub mod sanction {
    use sea_orm::entity::prelude::*;

    /// A member muted or banned (`kind`) in a room, until `until` (none:
    /// until lifted).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sanction")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub room_id: i64,
        pub user_id: String,
        pub kind: String,
        pub until: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        pub by_user: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod report {
    use sea_orm::entity::prelude::*;

    /// A message reported by a member; `status` is `open`, `resolved` or
    /// `dismissed`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "report")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub room_id: i64,
        pub seq: i64,
        pub reporter: String,
        pub author: String,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        pub created_at: DateTimeUtc,
        pub status: String,
        pub handled_by: Option<String>,
        pub handled_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl From<Model> for crate::protocol::moderation::Report {
        fn from(r: Model) -> Self {
            crate::protocol::moderation::Report {
                id: r.id,
                seq: r.seq,
                author: r.author,
                body: r.body,
                reporter: r.reporter,
                reason: r.reason,
                at_ms: r.created_at.timestamp_millis(),
            }
        }
    }
}

pub mod block {
    use sea_orm::entity::prelude::*;

    /// `user_id` has blocked `blocked_user_id` (in every room).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "block")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: String,
        pub blocked_user_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
