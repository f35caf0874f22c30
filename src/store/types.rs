//! The store's types: what callers give it and get back. The store owns how they are laid
//! out on disk (`keys.rs`).

use serde::{Deserialize, Serialize};

pub type ConversationId = u64;
/// Milliseconds since the Unix epoch (UTC). Time is always an input: the store never reads a
/// clock.
pub type Millis = i64;

/// One running (or ended) conversation of a flow: what the script needs to take its next step.
/// `Default` is an open one with no state, parties, keys or incident, for literals to name
/// only what they set (`..Conversation::default()`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub flow: String,
    /// Content hash of the script version the conversation runs on (hex).
    pub flow_version: String,
    /// The script's `this`: a JSON object.
    pub state: serde_json::Value,
    /// MSISDNs whose MOs route to this conversation while it is open.
    pub parties: Vec<String>,
    pub status: ConversationStatus,
    /// The HTTP event's idempotency key, if it came from one.
    pub event_key: Option<String>,
    /// A digest of the event that started it, to tell a retry (same body) from a reused id
    /// (another body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_digest: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The short code its staff reply with (`OK 315`), for flows that declare
    /// `fn reply_codes()`; unique among the open conversations of its flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_code: Option<u32>,
    /// While it is open, events of its flow with this key (`fn join_key(event)`) join it
    /// instead of starting another conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_key: Option<String>,
    /// `notify` calls it made: the `n` of its next webhook's `Idempotency-Key: <id>-<n>`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notifications: u32,
    /// Digests of the last events that joined it, so a retried one is a duplicate, not a
    /// second join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<String>,
    /// Its incident as last recorded (`record_incident`), for flows that record one: what
    /// the open-calls list shows while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<serde_json::Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationStatus {
    #[default]
    Open,
    /// The script called `finish(outcome)`.
    Finished { outcome: String },
    /// A hook failed; the conversation stops rather than retrying a broken script forever.
    Errored { error: String },
}

impl ConversationStatus {
    pub fn is_open(&self) -> bool {
        matches!(self, ConversationStatus::Open)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// MO: from a party to us.
    In,
    /// MT: from us to a party.
    Out,
}

/// One message of a conversation, as the HTTP timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub direction: Direction,
    pub party: String,
    pub text: String,
    pub status: TimelineStatus,
    /// Outbox message id for Out entries.
    pub message_id: Option<u64>,
}

/// A CSI survey answer (`record_rating`), the unit of the CSI report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub conversation: ConversationId,
    pub flow: String,
    pub at: Millis,
    pub msisdn: String,
    pub score: u8,
    pub operator: String,
    pub channel: String,
    pub comment: String,
}

/// What an escalation recorded about one incident (`record_incident`), the unit of the
/// incident report. A conversation records its incident as it goes (pressed, taken,
/// closed): the latest record of a conversation is the incident, the earlier ones its past.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub conversation: ConversationId,
    /// When the call began: its conversation's creation (records written before incidents
    /// had a lifecycle hold the time they were recorded).
    pub at: Millis,
    /// When this state of it was recorded (0 in records from before, each its call's only).
    #[serde(default)]
    pub updated_at: Millis,
    /// What the script recorded (`record_incident(map)`).
    pub fields: serde_json::Value,
}

impl Incident {
    /// The record's `state`: `ringing` and `acknowledged` while the call is open, `closed`
    /// after; a record without one (an older flow, or one from before) is a closed call.
    pub fn state(&self) -> IncidentState {
        IncidentState::of(&self.fields)
    }

    /// Of records of possibly several calls, the latest of each (a call is its conversation
    /// and its start: a store restored from a backup hands conversation ids out again), in
    /// the order of their calls' start.
    pub fn latest(records: impl IntoIterator<Item = Incident>) -> Vec<Incident> {
        let mut latest: std::collections::BTreeMap<(Millis, ConversationId), Incident> =
            std::collections::BTreeMap::new();
        for record in records {
            match latest.entry((record.at, record.conversation)) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(record);
                }
                // Equal times: the later record (the input is in the order recorded).
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    if record.updated_at >= e.get().updated_at {
                        e.insert(record);
                    }
                }
            }
        }
        latest.into_values().collect()
    }
}

/// Where a call is, by its latest record (see [`Incident::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Calling staff; nobody took it yet.
    Ringing,
    /// Taken, not resolved yet.
    Acknowledged,
    /// Over: resolved, unacknowledged, unresolved, cancelled, ... (its `outcome`).
    Closed,
}

impl IncidentState {
    /// The state `record_incident` fields say (see [`Incident::state`]).
    pub fn of(fields: &serde_json::Value) -> IncidentState {
        match fields.get("state").and_then(|s| s.as_str()) {
            Some("ringing") => IncidentState::Ringing,
            Some("acknowledged") => IncidentState::Acknowledged,
            _ => IncidentState::Closed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IncidentState::Ringing => "ringing",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Closed => "closed",
        }
    }
}

/// A named timer of a conversation; `(conversation, name)` is unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub conversation: ConversationId,
    pub name: String,
    pub due: Millis,
}

/// An MT message committed with the step that sent it, waiting for the service to submit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMessage {
    /// From [`super::Store::next_id`]: the outbox is drained in id order.
    pub id: u64,
    pub conversation: ConversationId,
    pub to: String,
    pub text: String,
    pub created_at: Millis,
    /// The flow of `conversation` (for metrics); empty in values written before it existed.
    #[serde(default)]
    pub flow: String,
    /// Sent by the hook that started the conversation (a survey's question): the first stage
    /// of the survey funnel.
    #[serde(default)]
    pub opening: bool,
}

/// A webhook POST a step queued (`notify`), waiting for the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCall {
    /// From [`super::Store::next_id`]: delivered in id order.
    pub id: u64,
    /// The `[[webhook]]` name.
    pub webhook: String,
    pub conversation: ConversationId,
    pub flow: String,
    /// The conversation's n-th `notify`: `Idempotency-Key: <conversation>-<n>`.
    pub seq: u32,
    pub created_at: Millis,
    /// The JSON body, fixed when the step ran: every attempt (after a restart too) sends, and
    /// signs, the same bytes.
    pub body: String,
}

impl WebhookCall {
    /// The `Idempotency-Key` header: the same on every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.conversation, self.seq)
    }
}

/// What became of a webhook call: it leaves the queue, and its conversation's timeline
/// says how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub call: u64,
    pub conversation: ConversationId,
    pub webhook: String,
    pub at: Millis,
    /// "delivered (HTTP 200, attempt 2)", "refused (HTTP 400)", "given up after 24h: ...".
    pub status: String,
}

/// Which outbox message an SMSC message id belongs to, so a delivery receipt (even one that
/// arrives after a restart) reaches its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPart {
    pub conversation: ConversationId,
    pub outbox_id: u64,
    pub to: String,
    pub flow: String,
    /// Which part of the message (0-based): a long text gets one receipt per part.
    #[serde(default)]
    pub part: usize,
    /// See [`OutMessage::opening`].
    #[serde(default)]
    pub opening: bool,
}

/// What became of a sent message: its submit's outcome (`Sent`, `Failed`), then what its
/// parts' receipts made of it (`Enroute`, `Delivered`, `Undeliverable`; see `delivery.rs`).
/// Stored, exported and shown as the words the timeline has always had (`"sent"`,
/// `"failed: ESME_RINVDSTADR"`), so older records read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum MessageStatus {
    /// The SMSC accepted every part; no receipt yet.
    Sent,
    /// A receipt that is not final (ENROUTE, ACCEPTD, ...).
    Enroute,
    /// Every part's receipt said DELIVRD.
    Delivered,
    /// A part's final receipt said otherwise (UNDELIV, EXPIRED, REJECTD, ...).
    Undeliverable,
    /// Refused for good at submit: the SMSC's error, or why smsflow gave up.
    Failed(String),
}

impl MessageStatus {
    /// No receipt changes it any more.
    pub fn is_final(&self) -> bool {
        !matches!(self, MessageStatus::Sent | MessageStatus::Enroute)
    }

    /// The word alone (`failed` without its reason), for metric labels and scripts.
    pub fn word(&self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Enroute => "enroute",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undeliverable => "undeliverable",
            MessageStatus::Failed(_) => "failed",
        }
    }
}

impl std::fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageStatus::Failed(why) if !why.is_empty() => write!(f, "failed: {why}"),
            other => f.write_str(other.word()),
        }
    }
}

impl From<MessageStatus> for String {
    fn from(status: MessageStatus) -> String {
        status.to_string()
    }
}

impl From<&str> for MessageStatus {
    fn from(s: &str) -> MessageStatus {
        match s {
            "sent" => MessageStatus::Sent,
            "enroute" => MessageStatus::Enroute,
            "delivered" => MessageStatus::Delivered,
            "undeliverable" => MessageStatus::Undeliverable,
            "failed" => MessageStatus::Failed(String::new()),
            _ => MessageStatus::Failed(s.strip_prefix("failed: ").unwrap_or(s).to_owned()),
        }
    }
}

impl From<String> for MessageStatus {
    fn from(s: String) -> MessageStatus {
        MessageStatus::from(s.as_str())
    }
}

/// Where a timeline entry stands. Stored and shown as the words the timeline has always had
/// (`"received"`, `"queued"`, `"suppressed (opted out)"`, a [`MessageStatus`], a webhook's
/// outcome), so older records read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum TimelineStatus {
    /// An MO or an event as it came in.
    Received,
    /// An event that joined the open conversation (`fn join_key`).
    Joined,
    /// The conversation's own event id posted again, with another body.
    Updated,
    /// An MT in the outbox, not yet accepted by the SMSC.
    Queued,
    /// An MT not sent: its recipient opted out.
    OptedOut,
    /// An MT the SMSC was given, and what became of it.
    Message(MessageStatus),
    /// A webhook call's outcome (`delivered (HTTP 200, attempt 2)`), or any other text an
    /// older store holds.
    Note(String),
}

impl std::fmt::Display for TimelineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimelineStatus::Received => f.write_str("received"),
            TimelineStatus::Joined => f.write_str("joined"),
            TimelineStatus::Updated => f.write_str("updated"),
            TimelineStatus::Queued => f.write_str("queued"),
            TimelineStatus::OptedOut => f.write_str("suppressed (opted out)"),
            TimelineStatus::Message(status) => status.fmt(f),
            TimelineStatus::Note(text) => f.write_str(text),
        }
    }
}

impl From<TimelineStatus> for String {
    fn from(status: TimelineStatus) -> String {
        status.to_string()
    }
}

impl From<&str> for TimelineStatus {
    fn from(s: &str) -> TimelineStatus {
        match s {
            "received" => TimelineStatus::Received,
            "joined" => TimelineStatus::Joined,
            "updated" => TimelineStatus::Updated,
            "queued" => TimelineStatus::Queued,
            "suppressed (opted out)" => TimelineStatus::OptedOut,
            "sent" | "enroute" | "delivered" | "undeliverable" | "failed" => {
                TimelineStatus::Message(s.into())
            }
            _ if s.starts_with("failed: ") => TimelineStatus::Message(s.into()),
            _ => TimelineStatus::Note(s.to_owned()),
        }
    }
}

impl From<String> for TimelineStatus {
    fn from(s: String) -> TimelineStatus {
        TimelineStatus::from(s.as_str())
    }
}

/// What an outbox message came to, recorded by [`super::Store::outbox_finished`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxOutcome {
    pub message: OutMessage,
    /// `Sent` (the SMSC accepted every part) or `Failed` (refused for good).
    pub status: MessageStatus,
    /// The SMSC's id of each accepted part.
    pub smsc_ids: Vec<String>,
    /// When the outcome was known (0 in records written before it was kept).
    #[serde(default)]
    pub at: Millis,
}

/// The MO a step answers, stored with the step (see [`Commit::mo`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoRecord {
    /// The deliver_sms this step answers: marked seen with the step, so a redelivery is
    /// recognised (kept an hour while the response is pending, then as long as
    /// [`super::Store::mo_acknowledged`] says).
    pub pending_ack: Vec<MoMark>,
    /// Stored parts the step consumed: removed with it.
    pub parts: Vec<PartKey>,
    /// When the MO came (0: unknown, the step's time counts).
    #[serde(default)]
    pub received_at: Millis,
}

/// An MO as the store recognises a redelivery by: the deliver_sm fields a redelivery
/// repeats (it comes with a new sequence number), the SMSC's `user_message_reference` among
/// them when it gave one. The store owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MoMark(pub(super) Vec<u8>);

impl MoMark {
    /// `concat` is `(reference, total, seq)` for a part of a concatenated message (which
    /// identifies it better than the SMSC's reference, left out then); `reference` the
    /// SMSC's message reference, if any.
    pub fn new(
        source: &str,
        destination: &str,
        data_coding: u8,
        concat: Option<(u16, u8, u8)>,
        reference: Option<u16>,
        payload: &[u8],
    ) -> MoMark {
        MoMark(super::keys::mo(
            source,
            destination,
            data_coding,
            concat,
            reference,
            payload,
        ))
    }

    /// Whether a reference (the SMSC's, or a part's concatenation) identifies the MO, so a
    /// repeat is surely a redelivery; else only its content does.
    pub fn has_reference(&self) -> bool {
        self.0.get(1).is_some_and(|kind| *kind != 0)
    }
}

/// A part of a concatenated MO kept until its message is complete: the store's copy of
/// what the SMPP layer reassembles (same fields, so it needs nothing of `smpp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoPart {
    pub source: String,
    pub destination: String,
    pub concat: MoConcat,
    pub data_coding: u8,
    /// The part's user data, UDH removed.
    pub payload: Vec<u8>,
}

/// Where a part belongs: the sender's reference, the number of parts, this one's (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoConcat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// Which stored part ([`MoPart`]); the store owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartKey(pub(super) Vec<u8>);

impl PartKey {
    /// Part `seq` of the message `reference` (of `total` parts) from `source` to
    /// `destination`.
    pub fn new(source: &str, destination: &str, reference: u16, total: u8, seq: u8) -> PartKey {
        PartKey(super::keys::part(
            source,
            destination,
            reference,
            total,
            seq,
        ))
    }

    pub fn of(part: &MoPart) -> PartKey {
        let c = part.concat;
        PartKey::new(&part.source, &part.destination, c.reference, c.total, c.seq)
    }
}

/// Everything one step of a conversation changes, applied atomically by [`super::Store::commit`].
///
/// The party index is derived from `conversation`: after the commit a conversation's parties
/// are indexed exactly while its status is Open, so there are no separate fields for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Inserted or replaced. When its status is not Open, all its parties leave the party
    /// index. Its timers stay until cancelled (list them with [`super::Store::timers_of`]).
    pub conversation: Option<Conversation>,
    /// Same `(conversation, name)` replaces the old due time. Cancels apply before sets, so a
    /// name in both lists ends up set. Timers belong to stored conversations (this commit's
    /// or an earlier one's); those of an unknown conversation are ignored.
    pub timers_set: Vec<Timer>,
    pub timers_cancelled: Vec<(ConversationId, String)>,
    /// Appended; each entry gets its own sequence number, in this order.
    pub timeline: Vec<(ConversationId, TimelineEntry)>,
    pub outbox: Vec<OutMessage>,
    pub ratings: Vec<Rating>,
    pub incidents: Vec<Incident>,
    /// Applied after `opt_ins`, so an MSISDN in both ends opted out.
    pub opt_outs: Vec<String>,
    pub opt_ins: Vec<String>,
    /// (flow, key, conversation): the idempotency key of an HTTP event. If the key already
    /// names another conversation the whole commit fails with
    /// [`StoreError::EventKeyTaken`](super::StoreError::EventKeyTaken).
    pub event_key: Option<(String, String, ConversationId)>,
    /// (flow, version, source): keeps a script version's source so a conversation started on
    /// it can finish on it after a restart. A version already stored is left as it is.
    pub script: Option<(String, String, String)>,
    /// The MO the step answers, when it came over SMPP.
    pub mo: Option<MoRecord>,
    /// Webhook POSTs the step queued (`notify`): in the same record, so a step and its
    /// hand-offs are durable together.
    #[serde(default)]
    pub webhooks: Vec<WebhookCall>,
}
