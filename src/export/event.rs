//! The events on the wire: one JSON object per message, its `kind` also the subject's last
//! token, times as RFC 3339 in UTC with milliseconds. This module owns the JSON (the store
//! owns [`ExportEvent`]); `docs/export.md` documents it for consumers.
//!
//! Every event carries `id` (also its `Nats-Msg-Id`), `node`, `short_code`, `seq` (1, 2, 3 …
//! per store) and `at`; then what its kind holds.
//!
//! The id names the event by what it is, not by its place in the queue:
//! `<node>:<kind>:<conversation>:<at ms>:<CRC-32 of its fields>`. So the same event has the
//! same id however it comes to be published again (a replay after a crash, or a standby
//! restored from a backup that still queued it), and a new event never takes an old one's id
//! (a restored store hands out seqs the lost node had already used).

use serde::{Deserialize, Serialize};

use crate::store::export::{ExportEvent, FinishedConversation, MtStatus, QueuedEvent, SurveyKey};
use crate::store::{ConversationId, Incident, Millis, Rating};

/// What every event carries, and its kind's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub node: String,
    pub short_code: String,
    pub seq: u64,
    #[serde(flatten)]
    pub body: Body,
}

/// The fields of each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Body {
    Rating {
        #[serde(with = "rfc3339")]
        at: Millis,
        conversation: ConversationId,
        flow: String,
        msisdn: String,
        score: u8,
        operator: String,
        channel: String,
        comment: String,
    },
    Incident {
        /// When the call began (every state of one call has the same).
        #[serde(with = "rfc3339")]
        at: Millis,
        /// When this state of it was recorded; absent in events from before.
        #[serde(default, with = "rfc3339", skip_serializing_if = "is_zero")]
        updated_at: Millis,
        conversation: ConversationId,
        fields: serde_json::Value,
    },
    Conversation {
        /// When it ended.
        #[serde(with = "rfc3339")]
        at: Millis,
        conversation: ConversationId,
        flow: String,
        #[serde(with = "rfc3339")]
        created_at: Millis,
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        parties: Vec<String>,
        state: serde_json::Value,
    },
    Mt {
        #[serde(with = "rfc3339")]
        at: Millis,
        message: u64,
        conversation: ConversationId,
        flow: String,
        to: String,
        status: String,
        opening: bool,
        /// For an opening message: its conversation's creation time, operator and channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        survey: Option<Survey>,
    },
}

/// See [`Body::Mt`]'s `survey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    pub operator: String,
    pub channel: String,
}

/// The `Nats-Msg-Id` of `body` on `node` (see the module documentation).
pub fn message_id(node: &str, body: &Body) -> String {
    // A Body is plain data: it always serializes.
    let fields = serde_json::to_vec(body).unwrap_or_default();
    format!(
        "{node}:{}:{}:{}:{:08x}",
        body.kind(),
        body.conversation(),
        body.at(),
        crc32fast::hash(&fields)
    )
}

impl Envelope {
    /// The wire form of a queued event of `node`, whose short code is `short_code`.
    pub fn of(node: &str, short_code: &str, queued: &QueuedEvent) -> Envelope {
        let body = match queued.event.clone() {
            ExportEvent::Rating(r) => Body::Rating {
                at: r.at,
                conversation: r.conversation,
                flow: r.flow,
                msisdn: r.msisdn,
                score: r.score,
                operator: r.operator,
                channel: r.channel,
                comment: r.comment,
            },
            ExportEvent::Incident(i) => Body::Incident {
                at: i.at,
                updated_at: i.updated_at,
                conversation: i.conversation,
                fields: i.fields,
            },
            ExportEvent::Conversation(c) => Body::Conversation {
                at: c.finished_at,
                conversation: c.id,
                flow: c.flow,
                created_at: c.created_at,
                outcome: c.outcome,
                error: c.error,
                parties: c.parties,
                state: c.state,
            },
            ExportEvent::Mt(m) => Body::Mt {
                at: m.at,
                message: m.message,
                conversation: m.conversation,
                flow: m.flow,
                to: m.to,
                status: m.status.to_string(),
                opening: m.opening,
                survey: m.survey.map(|s| Survey {
                    created_at: s.created_at,
                    operator: s.operator,
                    channel: s.channel,
                }),
            },
        };
        Envelope {
            id: message_id(node, &body),
            node: node.to_owned(),
            short_code: short_code.to_owned(),
            seq: queued.seq,
            body,
        }
    }

    /// The subject's last token.
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    /// Back into the store's event (what the cross-node reports count), with `conversation`
    /// in place of the node's own id: ids of different nodes collide.
    pub fn into_event(self, conversation: ConversationId) -> ExportEvent {
        match self.body {
            Body::Rating {
                at,
                flow,
                msisdn,
                score,
                operator,
                channel,
                comment,
                ..
            } => ExportEvent::Rating(Rating {
                conversation,
                flow,
                at,
                msisdn,
                score,
                operator,
                channel,
                comment,
            }),
            Body::Incident {
                at,
                updated_at,
                fields,
                ..
            } => ExportEvent::Incident(Incident {
                conversation,
                at,
                updated_at,
                fields,
            }),
            Body::Conversation {
                at,
                flow,
                created_at,
                outcome,
                error,
                parties,
                state,
                ..
            } => ExportEvent::Conversation(FinishedConversation {
                id: conversation,
                flow,
                created_at,
                finished_at: at,
                outcome,
                error,
                parties,
                state,
            }),
            Body::Mt {
                at,
                message,
                flow,
                to,
                status,
                opening,
                survey,
                ..
            } => ExportEvent::Mt(MtStatus {
                message,
                conversation,
                flow,
                to,
                status: status.into(),
                at,
                opening,
                survey: survey.map(|s| SurveyKey {
                    created_at: s.created_at,
                    operator: s.operator,
                    channel: s.channel,
                }),
            }),
        }
    }

    /// The node's own conversation id.
    pub fn conversation(&self) -> ConversationId {
        self.body.conversation()
    }
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Rating { .. } => "rating",
            Body::Incident { .. } => "incident",
            Body::Conversation { .. } => "conversation",
            Body::Mt { .. } => "mt",
        }
    }

    pub fn conversation(&self) -> ConversationId {
        match self {
            Body::Rating { conversation, .. }
            | Body::Incident { conversation, .. }
            | Body::Conversation { conversation, .. }
            | Body::Mt { conversation, .. } => *conversation,
        }
    }

    pub fn at(&self) -> Millis {
        match self {
            Body::Rating { at, .. }
            | Body::Incident { at, .. }
            | Body::Conversation { at, .. }
            | Body::Mt { at, .. } => *at,
        }
    }
}

/// [`Millis`] as RFC 3339 in UTC (`2026-12-01T09:30:00.125Z`).
fn is_zero(at: &Millis) -> bool {
    *at == 0
}

mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::store::Millis;

    pub fn serialize<S: Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
        match jiff::Timestamp::from_millisecond(*at) {
            Ok(ts) => s.collect_str(&format_args!("{ts:.3}")),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let ts: jiff::Timestamp = text.parse().map_err(de::Error::custom)?;
        Ok(ts.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rating_round_trips_with_its_node_and_id() {
        let queued = QueuedEvent {
            seq: 42,
            event: ExportEvent::Rating(Rating {
                conversation: 7,
                flow: "survey".into(),
                at: 1_764_581_400_125,
                msisdn: "998901234567".into(),
                score: 4,
                operator: "op-17".into(),
                channel: "call".into(),
                comment: "вежливо".into(),
            }),
        };
        let e = Envelope::of("tash-1", "5700", &queued);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "rating");
        assert_eq!(json["id"], e.id);
        assert!(
            e.id.starts_with("tash-1:rating:7:1764581400125:"),
            "{}",
            e.id
        );
        // The same event is the same id whatever its seq; another is another.
        let again = QueuedEvent {
            seq: 43,
            ..queued.clone()
        };
        assert_eq!(Envelope::of("tash-1", "5700", &again).id, e.id);
        let mut other = queued.clone();
        if let ExportEvent::Rating(r) = &mut other.event {
            r.score = 5;
        }
        assert_ne!(Envelope::of("tash-1", "5700", &other).id, e.id);
        assert_eq!(json["at"], "2025-12-01T09:30:00.125Z");
        assert_eq!(json["short_code"], "5700");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.into_event(7), queued.event);
    }
}
