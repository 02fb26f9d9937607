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
            "SELECT json_agg(json_build_array(seq, user_id, body, client_msg_id, created_at))::text AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at FROM message \
                   WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) AS m"
        }
        (DbBackend::Postgres, Side::Before) => {
            "SELECT json_agg(json_build_array(seq, user_id, body, client_msg_id, created_at))::text AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at FROM message \
                   WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) AS m"
        }
        (_, Side::After) => {
            "SELECT json_group_array(json_array(seq, user_id, body, client_msg_id, created_at)) AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at FROM message \
                   WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3)"
        }
        (_, Side::Before) => {
            "SELECT json_group_array(json_array(seq, user_id, body, client_msg_id, created_at)) AS run \
             FROM (SELECT seq, user_id, body, client_msg_id, created_at FROM message \
                   WHERE room_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)"
        }
    }
}

/// Takes a run apart: `[[seq, user, body, client id, created at], …]`,
/// in any order (sorted here by seq).
fn parse(run: &str) -> Result<Vec<ChatMessage>, DbErr> {
    type Row = (i64, String, String, String, String);
    let rows: Vec<Row> =
        serde_json::from_str(run).map_err(|e| DbErr::Custom(format!("unreadable run of messages: {e}")))?;
    let mut messages = rows
        .into_iter()
        .map(|(seq, user_id, body, client_msg_id, created_at)| {
            let at = chrono::DateTime::parse_from_rfc3339(&created_at).map_err(|e| {
                DbErr::Custom(format!("unreadable time {created_at:?} of message {seq}: {e}"))
            })?;
            Ok(ChatMessage { seq, user_id, body, client_msg_id, at_ms: at.timestamp_millis() })
        })
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
        let run = r#"[[3,"bob","hi \"there\"\nyou","c3","2026-11-26T17:36:50.047688530+00:00"],
                      [2,"ana","ünïcode ✓","c2","2026-11-26T17:36:49.999+00:00"]]"#;
        let messages = parse(run).unwrap();
        assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(messages[1].body, "hi \"there\"\nyou");
        assert_eq!(messages[0].body, "ünïcode ✓");
        assert_eq!(messages[1].at_ms, 1_795_714_610_047);
        assert_eq!(messages[0].at_ms, 1_795_714_609_999);
        assert!(parse("[]").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_run_is_an_error_not_a_panic() {
        assert!(parse("[[1,\"ana\"]]").is_err());
        assert!(parse("[[1,\"ana\",\"b\",\"c\",\"yesterday\"]]").is_err());
        assert!(parse("not json").is_err());
    }
}
