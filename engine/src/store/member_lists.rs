//! The member lists of big rooms, kept between reads and brought up to
//! date by reading only who joined since.
//!
//! Why: every page that opens a room is sent its members in the order they
//! joined, and when a crowd joins a big room at once (a game's event
//! starting) reading the whole list for each arrival would be most of the
//! node's work. Kept here, a read is one statement that counts the room's
//! members and returns those who joined after the kept list's last one.
//!
//! The database stays the truth: the statement also returns a fingerprint
//! of the whole room as of the same moment (see [`Newcomers`]), and the kept
//! list is used only when it plus the newcomers has that fingerprint.
//! Anything else (someone left, or a join that committed late) reads the
//! room whole again. Nothing has to tell this cache about a change, so it
//! is right on every node of a cluster alike.
//!
//! Small rooms are read whole each time (cheap); at most `MOST_NAMES` names
//! are kept in all, the oldest-kept rooms making way. Access to a room is
//! never decided here (`Rooms::open` asks the member table).
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use sea_orm::{ConnectionTrait, DbErr};

use crate::metrics as m;

/// Rooms with fewer members are not kept.
const KEEP_FROM: usize = 64;
/// Names kept across all rooms (some 40 bytes each).
const MOST_NAMES: usize = 1_000_000;
/// Row ids (and their squares) are summed modulo this (sums that never
/// overflow: a square of a residue stays under 2^60).
const ID_SUM_MODULUS: i64 = 1_000_000_007;

/// A room's members as of one moment, with the fingerprint of that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    /// User ids, in the order they joined.
    pub names: Vec<String>,
    /// The last member's row id (0 for none).
    last_id: i64,
    /// The sums of the members' row ids and of their squares (modulo
    /// [`ID_SUM_MODULUS`]).
    id_sums: IdSums,
}

/// Sums of row ids and of their squares, modulo [`ID_SUM_MODULUS`]: two
/// sets of ids of one size with the same sum (two departures and two late
/// joins that add up alike) differ in the sum of squares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdSums {
    pub ids: i64,
    pub squares: i64,
}

impl IdSums {
    fn of<'a>(ids: impl IntoIterator<Item = &'a i64>) -> Self {
        ids.into_iter()
            .map(|id| id.rem_euclid(ID_SUM_MODULUS))
            .fold(IdSums::default(), |sums, r| sums.plus(&IdSums { ids: r, squares: r * r % ID_SUM_MODULUS }))
    }

    fn plus(&self, other: &IdSums) -> Self {
        IdSums {
            ids: (self.ids + other.ids) % ID_SUM_MODULUS,
            squares: (self.squares + other.squares) % ID_SUM_MODULUS,
        }
    }
}

/// What one read returned: the room's fingerprint and who joined after a
/// given row id (in no particular order), all as of one moment.
#[derive(Debug, Default)]
pub struct Newcomers {
    pub count: i64,
    /// `None` where the count is fingerprint enough (SQLite, see
    /// [`newcomers`]).
    pub id_sums: Option<IdSums>,
    /// `(row id, user id)`.
    pub joined: Vec<(i64, String)>,
}

impl MemberList {
    /// The whole list, from a read of everyone (`after_id` 0).
    fn whole(read: Newcomers) -> Self {
        MemberList { names: Vec::new(), last_id: 0, id_sums: IdSums::default() }.appended(read.joined)
    }

    /// Whether this list plus the newcomers is the room the read's
    /// fingerprint describes (not so if someone left, or if a join below
    /// `last_id` came in late).
    fn matches(&self, read: &Newcomers) -> bool {
        self.names.len() + read.joined.len() == read.count as usize
            && read.id_sums.is_none_or(|sums| {
                self.id_sums.plus(&IdSums::of(read.joined.iter().map(|(id, _)| id))) == sums
            })
    }

    /// This list with the newcomers added, if it [matches](Self::matches).
    fn extended(&self, read: Newcomers) -> Option<Self> {
        self.matches(&read).then(|| self.appended(read.joined))
    }

    /// This list and the newcomers, in the order they joined.
    fn appended(&self, mut joined: Vec<(i64, String)>) -> Self {
        joined.sort_unstable_by_key(|(id, _)| *id);
        let id_sums = self.id_sums.plus(&IdSums::of(joined.iter().map(|(id, _)| id)));
        let last_id = joined.last().map_or(self.last_id, |(id, _)| *id);
        let mut names = Vec::with_capacity(self.names.len() + joined.len());
        names.extend_from_slice(&self.names);
        names.extend(joined.into_iter().map(|(_, name)| name));
        MemberList { names, last_id, id_sums }
    }
}

/// The kept lists of one node's rooms (shared by its request handlers).
#[derive(Default)]
pub struct MemberLists {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    rooms: HashMap<i64, Arc<MemberList>>,
    /// Rooms in the order they were kept (the oldest gives way first).
    order: std::collections::VecDeque<i64>,
    names: usize,
}

impl MemberLists {
    /// The room's members in the order they joined.
    pub async fn read(&self, db: &impl ConnectionTrait, room_id: i64) -> Result<Vec<String>, DbErr> {
        let (names, how) = self.read_telling_how(db, room_id).await?;
        metrics::counter!(m::MEMBER_LIST_READS, "how" => how).increment(1);
        Ok(names)
    }

    /// The room's members and how the read came by them (the metric's
    /// label): `kept` (the kept list, unchanged), `newcomers` (the kept list
    /// and who joined since) or `whole` (the room read whole).
    async fn read_telling_how(
        &self,
        db: &impl ConnectionTrait,
        room_id: i64,
    ) -> Result<(Vec<String>, &'static str), DbErr> {
        let kept = self.kept.lock().rooms.get(&room_id).cloned();
        let mut extended = None;
        if let Some(kept) = kept {
            let read = newcomers(db, room_id, kept.last_id).await?;
            if read.joined.is_empty() && kept.matches(&read) {
                return Ok((kept.names.clone(), "kept"));
            }
            extended = kept.extended(read);
        }
        let (list, how) = match extended {
            Some(list) => (list, "newcomers"),
            None => (MemberList::whole(newcomers(db, room_id, 0).await?), "whole"),
        };
        let names = list.names.clone();
        if list.names.len() >= KEEP_FROM {
            self.keep(room_id, list);
        } else {
            self.forget(room_id);
        }
        Ok((names, how))
    }

    /// Drops a room's kept list (it became small).
    fn forget(&self, room_id: i64) {
        let mut kept = self.kept.lock();
        if let Some(gone) = kept.rooms.remove(&room_id) {
            kept.names -= gone.names.len();
            kept.order.retain(|&id| id != room_id);
        }
    }

    fn keep(&self, room_id: i64, list: MemberList) {
        let mut kept = self.kept.lock();
        let added = list.names.len();
        match kept.rooms.insert(room_id, Arc::new(list)) {
            Some(before) => kept.names -= before.names.len(),
            None => kept.order.push_back(room_id),
        }
        kept.names += added;
        while kept.names > MOST_NAMES {
            let Some(oldest) = kept.order.pop_front() else { break };
            if let Some(gone) = kept.rooms.remove(&oldest) {
                kept.names -= gone.names.len();
            }
        }
    }
}

/// One statement, so one moment: the room's fingerprint, and who joined
/// after `after_id` (a seek along the room's arrival index) as one string
/// (`id name` lines; names never hold a line break), sorted by the caller
/// rather than by the database.
///
/// On SQLite the fingerprint is the count alone: one connection writes at
/// a time, so members commit in the order of their ids and a join can
/// never come in late below one already read; only a departure changes a
/// room other than by newcomers, and it lowers the count. (Summing the ids
/// would double the time of a read: a walk through the room's index.)
async fn newcomers(db: &impl ConnectionTrait, room_id: i64, after_id: i64) -> Result<Newcomers, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT count(*) AS count, \
                    CAST(coalesce(sum(id % 1000000007) % 1000000007, 0) AS BIGINT) AS id_sum, \
                    CAST(coalesce(sum((id % 1000000007) * (id % 1000000007) % 1000000007) % 1000000007, 0) \
                         AS BIGINT) AS id_square_sum, \
                    (SELECT string_agg(id::text || ' ' || user_id, E'\\n') FROM member \
                     WHERE room_id = $1 AND id > $2) AS joined \
             FROM member WHERE room_id = $1"
        }
        _ => {
            "SELECT count(*) AS count, NULL AS id_sum, NULL AS id_square_sum, \
                    (SELECT group_concat(id || ' ' || user_id, char(10)) FROM member \
                     WHERE room_id = ?1 AND id > ?2) AS joined \
             FROM member WHERE room_id = ?1"
        }
    };
    let values = [room_id.into(), after_id.into()];
    let Some(row) = db.query_one(sea_orm::Statement::from_sql_and_values(backend, sql, values)).await? else {
        return Ok(Newcomers::default());
    };
    let joined: Option<String> = row.try_get("", "joined")?;
    let joined = joined.as_deref().map_or_else(|| Ok(Vec::new()), parse_joined)?;
    let ids: Option<i64> = row.try_get("", "id_sum")?;
    let squares: Option<i64> = row.try_get("", "id_square_sum")?;
    let id_sums = ids.zip(squares).map(|(ids, squares)| IdSums { ids, squares });
    Ok(Newcomers { count: row.try_get("", "count")?, id_sums, joined })
}

fn parse_joined(lines: &str) -> Result<Vec<(i64, String)>, DbErr> {
    lines
        .split('\n')
        .map(|line| {
            let parsed =
                line.split_once(' ').and_then(|(id, name)| Some((id.parse().ok()?, name.to_owned())));
            parsed.ok_or_else(|| DbErr::Custom(format!("unexpected member line {line:?}")))
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The room's members read whole, uncached: what the kept lists must
    /// agree with.
    pub(in crate::store) async fn read_whole(
        db: &impl ConnectionTrait,
        room_id: i64,
    ) -> Result<Vec<String>, DbErr> {
        Ok(MemberList::whole(newcomers(db, room_id, 0).await?).names)
    }

    fn read(count: i64, ids: &[i64], joined: &[(i64, &str)]) -> Newcomers {
        Newcomers {
            count,
            id_sums: Some(IdSums::of(ids)),
            joined: joined.iter().map(|(id, name)| (*id, (*name).to_owned())).collect(),
        }
    }

    #[test]
    fn newcomers_are_added_in_the_order_they_joined() {
        let list = MemberList::whole(read(2, &[4, 2], &[(4, "bob"), (2, "ana")]));
        assert_eq!(list.names, ["ana", "bob"]);
        let list = list.extended(read(4, &[2, 4, 9, 7], &[(9, "dan"), (7, "cy")])).unwrap();
        assert_eq!(list.names, ["ana", "bob", "cy", "dan"]);
        assert_eq!(list.last_id, 9);
    }

    #[test]
    fn a_departure_or_a_late_join_below_the_last_id_is_noticed() {
        let list = MemberList::whole(read(3, &[1, 2, 3], &[(1, "a"), (2, "b"), (3, "c")]));
        assert!(list.extended(read(2, &[1, 3], &[])).is_none(), "b left");
        assert!(list.extended(read(3, &[1, 3, 4], &[(4, "d")])).is_none(), "b left, d came");
        // Row 4 committed after row 5 was read: the count says so.
        let list = list.extended(read(4, &[1, 2, 3, 5], &[(5, "e")])).unwrap();
        assert!(list.extended(read(5, &[1, 2, 3, 4, 5], &[])).is_none());
        // One left and one came in late below the last id: the sum says so.
        assert!(list.extended(read(4, &[1, 3, 4, 5], &[])).is_none());
    }

    #[test]
    fn where_members_commit_in_id_order_the_count_notices_a_departure() {
        let list = MemberList::whole(read(3, &[1, 2, 3], &[(1, "a"), (2, "b"), (3, "c")]));
        let counted = |count, joined: &[(i64, &str)]| Newcomers { id_sums: None, ..read(count, &[], joined) };
        assert!(list.extended(counted(3, &[(4, "d")])).is_none(), "b left, d came");
        assert_eq!(list.extended(counted(4, &[(4, "d")])).unwrap().names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn two_departures_and_two_late_joins_with_the_same_sum_are_noticed() {
        // Kept up to 105 while 103 and 104 had not committed; then 102 and
        // 105 left and 103 and 104 came in: same count, same sum of ids.
        let list = MemberList::whole(read(3, &[101, 102, 105], &[(101, "a"), (102, "b"), (105, "e")]));
        assert!(list.extended(read(3, &[101, 103, 104], &[])).is_none());
    }

    #[test]
    fn huge_row_ids_do_not_overflow_the_fingerprint() {
        let ids = [i64::MAX - 1, i64::MAX];
        let list = MemberList::whole(read(2, &ids, &[(i64::MAX - 1, "a"), (i64::MAX, "b")]));
        assert_eq!(list.names, ["a", "b"]);
    }

    #[test]
    fn a_malformed_line_is_an_error_not_a_panic() {
        assert!(parse_joined("12 ana\n13 bob smith").is_ok());
        assert_eq!(parse_joined("13 bob smith").unwrap()[0].1, "bob smith");
        assert!(parse_joined("x ana").is_err());
        assert!(parse_joined("12").is_err());
    }

    mod on_sqlite {
        use super::super::*;
        use super::read_whole;
        use crate::store::{add_member, ensure_room, ensure_user, remove_member, PoolSettings};
        use std::time::Duration;

        async fn room_of(n: usize) -> (sea_orm::DatabaseConnection, i64) {
            use migration::MigratorTrait;
            let pool = PoolSettings { max_connections: 1, timeout: Duration::from_secs(5) };
            let db = crate::store::connect("sqlite::memory:", pool).await.unwrap();
            migration::Migrator::up(&db, None).await.unwrap();
            let room = ensure_room(&db, "big").await.unwrap().id;
            for i in 0..n {
                join(&db, room, &format!("p{i:03}")).await;
            }
            (db, room)
        }

        async fn join(db: &sea_orm::DatabaseConnection, room: i64, name: &str) {
            ensure_user(db, name).await.unwrap();
            assert!(add_member(db, room, name).await.unwrap());
        }

        #[tokio::test]
        async fn a_big_room_is_kept_and_follows_joins_and_departures() {
            let (db, room) = room_of(KEEP_FROM).await;
            let lists = MemberLists::default();
            let (first, how) = lists.read_telling_how(&db, room).await.unwrap();
            assert_eq!((first.len(), how), (KEEP_FROM, "whole"));
            assert!(lists.kept.lock().rooms.contains_key(&room));
            // Joined in an order their names do not sort in.
            join(&db, room, "zed").await;
            join(&db, room, "amy").await;
            let (after, how) = lists.read_telling_how(&db, room).await.unwrap();
            assert_eq!((&after[KEEP_FROM..], how), (&["zed".to_owned(), "amy".to_owned()][..], "newcomers"));
            assert_eq!(lists.read_telling_how(&db, room).await.unwrap(), (after, "kept"));
            assert!(remove_member(&db, room, "p010").await.unwrap());
            join(&db, room, "bea").await;
            let expected = read_whole(&db, room).await.unwrap();
            assert!(!expected.contains(&"p010".to_owned()));
            assert_eq!(expected.last().unwrap(), "bea");
            assert_eq!(lists.read_telling_how(&db, room).await.unwrap(), (expected.clone(), "whole"));
            assert_eq!(lists.read_telling_how(&db, room).await.unwrap(), (expected, "kept"));
        }

        #[tokio::test]
        async fn a_small_room_is_read_whole_and_not_kept() {
            let (db, room) = room_of(3).await;
            let lists = MemberLists::default();
            assert_eq!(lists.read(&db, room).await.unwrap(), ["p000", "p001", "p002"]);
            assert!(!lists.kept.lock().rooms.contains_key(&room));
            let (db2, empty) = (db.clone(), ensure_room(&db, "empty").await.unwrap().id);
            assert!(lists.read(&db2, empty).await.unwrap().is_empty());
        }
    }
}
