//! Every limit a flow script can hit, in one place: what one hook call may do and use, what one
//! step may write, what a conversation may keep and what a flow may log.
//!
//! A limit is an error naming it (the hook fails, its conversation is errored, nothing it asked
//! for happens), except the log limits, which drop lines and count them. docs/flows.md lists
//! each with its error text, from [`DOCUMENTED`]; a test keeps the two in step.

/// Rhai operations one hook call may run. An operation is a statement, an expression or a
/// call; a survey step takes a few hundred to a few thousand.
pub const MAX_OPERATIONS: u64 = 500_000;
/// CPU time one hook call may take on its thread (see `sandbox.rs`): the operation limit
/// counts statements, this bounds what they cost, so one hook's pause stays short. Debug
/// builds (the tests) run Rhai 150–300× slower (500 000 operations: 0.9 ms optimised,
/// ~150 ms not) and allow 2 s, so the other limits still stop their tests first.
pub const MAX_HOOK_CPU: std::time::Duration =
    std::time::Duration::from_millis(if cfg!(debug_assertions) { 2_000 } else { 5 });
/// How deep script functions may call each other.
pub const MAX_CALL_LEVELS: usize = 32;
/// Bytes of one string, and of the strings of one array or map together.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Items of one array or map.
pub const MAX_ITEMS: usize = 10_000;

/// `send` calls one hook call may make (an escalation level of many staff fits).
pub const MAX_SENDS: usize = 50;
/// SMS parts one message may take: 1530 GSM-7 or 670 UCS-2 characters (a longer text is
/// a bug, or a letter that does not belong in an SMS).
pub const MAX_PARTS_PER_MESSAGE: usize = 10;
/// SMS parts the messages of one hook call may take together: what one step can cost.
pub const MAX_PARTS_PER_HOOK: usize = 100;
/// Distinct timers one hook call may set.
pub const MAX_TIMERS: usize = 50;
/// `start_flow` calls one hook call may make.
pub const MAX_STARTS: usize = 10;
/// `record_rating` or `record_incident` calls one hook call may make.
pub const MAX_RECORDS: usize = 50;
/// `notify` calls one hook call may make: hand-offs, not a message bus.
pub const MAX_NOTIFIES: usize = 10;
/// Bytes of JSON one `notify` payload may take (an incident snapshot is about 1 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Bytes of a conversation's state (`this`) encoded as JSON, after each step.
pub const MAX_STATE_BYTES: usize = 64 * 1024;
/// Bytes one step may write to the store: the state plus every text, payload, record, event,
/// party and timer the hook asked for (each counted with [`RECORD_OVERHEAD`]).
pub const MAX_STEP_BYTES: usize = 256 * 1024;
/// What each thing a step writes costs on top of its text: its key and framing, so a million
/// tiny writes (`opt_out` in a loop) cost what they take.
pub const RECORD_OVERHEAD: usize = 32;

/// `log()`, `print()` and `debug()` lines one hook call may write; more are dropped.
pub const MAX_LOG_LINES: usize = 20;
/// Bytes of one log line; a longer one is cut to this.
pub const MAX_LOG_LINE_BYTES: usize = 1024;
/// Log lines one flow may write per minute, all its conversations together (a token bucket
/// that holds a minute's worth); more are dropped.
pub const LOG_LINES_PER_MINUTE: usize = 600;

/// A limit as docs/flows.md states it.
#[derive(Debug, Clone, Copy)]
pub struct Documented {
    /// The constant's name, for the test that keeps this table complete.
    pub constant: &'static str,
    /// How the docs write its value (`64 KiB`, `150 000`).
    pub value: &'static str,
    /// What its error (or log line) says, as the docs quote it.
    pub error: &'static str,
}

const fn d(constant: &'static str, value: &'static str, error: &'static str) -> Documented {
    Documented {
        constant,
        value,
        error,
    }
}

/// Every limit of this module with its value and error text as docs/flows.md writes them.
#[rustfmt::skip]
pub const DOCUMENTED: &[Documented] = &[
    d("MAX_OPERATIONS", "500 000", "stopped: more than 500000 operations in one hook call"),
    d("MAX_HOOK_CPU", "5 ms", "ms of CPU in one hook call (the time limit"),
    d("MAX_CALL_LEVELS", "32", "calls nested more than 32 deep"),
    d("MAX_STRING_BYTES", "64 KiB", "over 65536 bytes (the string size limit)"),
    d("MAX_ITEMS", "10 000", "over 10000 items (the"),
    d("MAX_SENDS", "50", "send: more than 50 messages in one hook call"),
    d("MAX_PARTS_PER_MESSAGE", "10", "at most 10 parts per message"),
    d("MAX_PARTS_PER_HOOK", "100", "at most 100 parts per hook call"),
    d("MAX_TIMERS", "50", "set_timer: more than 50 timers in one hook call"),
    d("MAX_STARTS", "10", "start_flow: more than 10 flows in one hook call"),
    d("MAX_RECORDS", "50", "more than 50 ratings in one hook call"),
    d("MAX_NOTIFIES", "10", "notify: more than 10 notifications in one hook call"),
    d("MAX_PAYLOAD", "64 KiB", "at most 65536 are sent"),
    d("MAX_STATE_BYTES", "64 KiB", "the state would be more than 65536 bytes of JSON"),
    d("MAX_STEP_BYTES", "256 KiB", "this step would write more than 262144 bytes"),
    d("RECORD_OVERHEAD", "32 bytes", ""),
    d("MAX_LOG_LINES", "20", "log lines dropped"),
    d("MAX_LOG_LINE_BYTES", "1 KiB", "bytes cut]"),
    d("LOG_LINES_PER_MINUTE", "600", "log lines dropped"),
];
