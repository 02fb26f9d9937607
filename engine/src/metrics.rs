//! Names of the metrics the chat records (exported by the server at
//! `/metrics`). Hot-path code takes a handle once per connection and
//! bumps it, rather than looking the name up per message.
pub const CONNECTIONS: &str = "chat_stream_connections";
pub const ROOMS: &str = "chat_rooms_active";
pub const MESSAGES_STORED: &str = "chat_messages_stored_total";
pub const MESSAGES_DELIVERED: &str = "chat_messages_delivered_total";
pub const FANOUT_SECONDS: &str = "chat_fanout_seconds";
pub const RESYNCS: &str = "chat_stream_resyncs_total";
pub const WRITE_TIMEOUTS: &str = "chat_stream_write_timeouts_total";
pub const DB_SECONDS: &str = "chat_db_seconds";
pub const BUILD_INFO: &str = "chat_build_info";
pub const REFUSED_CONNECTIONS: &str = "chat_stream_refused_total";
pub const BUS_DROPPED: &str = "chat_bus_dropped_total";
pub const BUS_RESYNCS: &str = "chat_bus_resyncs_total";
pub const MEMBER_LIST_READS: &str = "chat_member_list_reads_total";
pub const MODERATION: &str = "chat_moderation_total";
pub const BLOCKS: &str = "chat_blocks_total";
/// The kinds of [`MODERATION`] (its `what` label).
pub const MODERATION_KINDS: [&str; 9] =
    ["remove", "mute", "unmute", "kick", "ban", "unban", "slow_mode", "report", "close_report"];

/// Describes every metric (help text for the exposition format).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open room stream connections");
    describe_gauge!(ROOMS, "Rooms with at least one listener on this node");
    describe_counter!(MESSAGES_STORED, "Messages stored (retries not counted)");
    describe_counter!(MESSAGES_DELIVERED, "Messages written to stream connections");
    describe_histogram!(
        FANOUT_SECONDS,
        Unit::Seconds,
        "Time from publish to the write to a connection (sampled: the first message of one write in 16 per connection)"
    );
    describe_counter!(RESYNCS, "Connections told to resync (fell behind their room, or the bus lost events)");
    describe_counter!(WRITE_TIMEOUTS, "Connections dropped because a write stalled");
    describe_histogram!(DB_SECONDS, Unit::Seconds, "Database time of room operations");
    describe_gauge!(BUILD_INFO, "Build information (always 1)");
    describe_counter!(REFUSED_CONNECTIONS, "Stream connections refused (too many from one address)");
    describe_counter!(BUS_DROPPED, "Events the bus could not queue for other nodes (their rooms resync)");
    describe_counter!(BUS_RESYNCS, "Rooms told to resync because the bus may have lost their events");
    describe_counter!(
        MEMBER_LIST_READS,
        "Member lists read for pages: kept (unchanged), newcomers (kept plus who joined since), whole"
    );
    describe_counter!(BLOCKS, "Players blocked and unblocked by players (or the game for them), by what");
    describe_counter!(
        MODERATION,
        "Moderation requests done, by what: messages removed, members muted, reports filed, …"
    );
}
