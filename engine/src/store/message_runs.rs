//! Runs of a room's messages (a page of history, a replay), read as one
//! row: the database puts the run together as a JSON array and the node
//! takes it apart.
//!
//! Why: the SQLite driver hands each row of a result over from its own
//! thread, a wake-up of each side per row, and a crowd opening a room (or
//! catching up) at once reads hundreds of messages each (see the join
//! storm in `bench/README.md`). One row is one hand-over. PostgreSQL builds
//! the same array.
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::protocol::moderation::Removed;
use crate::protocol::ChatMessage;

/// Which side of a seq the run lies on.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    /// The first `limit` messages with a greater seq.
    After,
    /// The last `limit` messages with a smaller seq, read backwards along
    /// the (room, seq) index: a page costs the same in a room of ten
    /// messages or of millions.
    Before,
}

/// Up to `limit` of the room's messages on one side of `seq`, oldest first.
pub async fn read(
    db: &impl ConnectionTrait,
    room_id: i64,
    side: Side,
    seq: i64,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    let backend = db.get_database_backend();
    let sql = sql(backend, side);
    // SQL's LIMIT is a signed 64-bit number.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = Statement::from_sql_and_values(backend, sql, [room_id.into(), seq.into(), limit.into()]);
    let Some(row) = db.query_one(statement).await? else { return Ok(Vec::new()) };
    let run: Option<String> = row.try_get("", "run")?;
    run.map_or_else(|| Ok(Vec::new()), |run| parse(&run))
}

fn sql(backend: DbBackend, side: Side) -> &'static str {
    match (backend, side) {
        (DbBackend::Postgres, Side::After) => {
            "SELECT json_agg(json_build_array(seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system))::text AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system FROM message \
                   WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) AS m"
        }
        (DbBackend::Postgres, Side::Before) => {
            "SELECT json_agg(json_build_array(seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system))::text AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system FROM message \
                   WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) AS m"
        }
        (_, Side::After) => {
            "SELECT json_group_array(json_array(seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system)) AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system FROM message \
                   WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3)"
        }
        (_, Side::Before) => {
            "SELECT json_group_array(json_array(seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system)) AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at, action, removed_by, removed_at, system FROM message \
                   WHERE room_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)"
        }
    }
}

/// Takes a run apart: `[[seq, user, body, client id, created at, action,
/// removed by, removed at, system], …]`, in any order (sorted here by seq). A
/// removed message's text is left out, whatever the row holds.
fn parse(run: &str) -> Result<Vec<ChatMessage>, DbErr> {
    /// A boolean column: `true`/`false` from PostgreSQL, 1/0 from SQLite.
    struct Flag(bool);
    impl<'de> serde::Deserialize<'de> for Flag {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum Either {
                Bool(bool),
                Int(i64),
            }
            Ok(Flag(match Either::deserialize(d)? {
                Either::Bool(b) => b,
                Either::Int(n) => n != 0,
            }))
        }
    }
    type Row = (i64, String, String, String, String, Option<String>, Option<String>, Option<String>, Flag);
    let rows: Vec<Row> =
        serde_json::from_str(run).map_err(|e| DbErr::Custom(format!("unreadable run of messages: {e}")))?;
    let time = |seq: i64, text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.timestamp_millis())
            .map_err(|e| DbErr::Custom(format!("unreadable time {text:?} of message {seq}: {e}")))
    };
    let mut messages = rows
        .into_iter()
        .map(
            |(
                seq,
                user_id,
                body,
                client_msg_id,
                created_at,
                action,
                removed_by,
                removed_at,
                Flag(system),
            )| {
                let removed = match removed_by.zip(removed_at) {
                    Some((by, at)) => Some(Removed { by, at_ms: time(seq, &at)? }),
                    None => None,
                };
                Ok(ChatMessage {
                    seq,
                    user_id,
                    body: if removed.is_some() { String::new() } else { body },
                    client_msg_id,
                    at_ms: time(seq, &created_at)?,
                    action: action.as_deref().and_then(super::entities::read_action),
                    removed,
                    system,
                })
            },
        )
        .collect::<Result<Vec<_>, DbErr>>()?;
    if !messages.is_sorted_by_key(|m| m.seq) {
        messages.sort_unstable_by_key(|m| m.seq);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_taken_apart_oldest_first_with_its_times_in_milliseconds() {
        let run = r#"[[3,"bob","hi \"there\"\nyou","c3","2026-11-26T17:36:50.047688530+00:00",null,null,null,1],
                      [2,"ana","ünïcode ✓","c2","2026-11-26T17:36:49.999+00:00",null,null,null,false]]"#;
        let messages = parse(run).unwrap();
        assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(messages[1].body, "hi \"there\"\nyou");
        assert_eq!(messages[0].body, "ünïcode ✓");
        assert_eq!(messages[1].at_ms, 1_795_714_610_047);
        assert_eq!(messages[0].at_ms, 1_795_714_609_999);
        assert!(messages[1].system && !messages[0].system, "SQLite's 1, PostgreSQL's false");
        assert!(parse("[]").unwrap().is_empty());
    }

    #[test]
    fn a_removed_message_comes_without_its_text_and_an_action_with_what_was_done() {
        let run = r#"[[4,"mod","","action-4","2026-11-26T17:36:51Z","{\"remove\":{\"seq\":3}}",null,null,0],
                      [3,"bob","kept text","c3","2026-11-26T17:36:50Z",null,"mod","2026-11-26T17:36:51Z",0]]"#;
        let messages = parse(run).unwrap();
        assert_eq!(messages[0].body, "", "never the text of a removed message");
        assert_eq!(messages[0].removed, Some(Removed { by: "mod".into(), at_ms: 1_795_714_611_000 }));
        assert_eq!(messages[1].action, Some(crate::protocol::moderation::Action::Remove { seq: 3 }));
        assert_eq!(messages[1].removed, None);
    }

    #[test]
    fn a_malformed_run_is_an_error_not_a_panic() {
        assert!(parse("[[1,\"ana\"]]").is_err());
        assert!(parse("[[1,\"ana\",\"b\",\"c\",\"yesterday\",null,null,null,0]]").is_err());
        let bad_removal = r#"[[1,"ana","b","c","2026-11-26T17:36:49Z",null,"mod","soon",0]]"#;
        assert!(parse(bad_removal).is_err());
        assert!(parse("not json").is_err());
    }
}
