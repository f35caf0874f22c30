//! Reports across nodes (`smsflow report csi|incidents|audit --source nats://…`): the events every
//! node exported to one JetStream stream, read back and counted as the local report counts a
//! store, so two nodes' report is the sum of theirs.
//!
//! What counts, as in the store's tallies: a rating of the flow by its time; a survey sent
//! when its opening message has an `mt` event (delivered when one says `delivered`), and an
//! outcome per ended conversation, both by the conversation's creation time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;

use super::query::{Kind, Query, range_ms};
use super::scale::Scale;
use super::{CsiData, CsiOptions, Report, SurveyEnd, SurveySend, csi, incidents};
use crate::export::event::Envelope;
use crate::export::replay::{self, Source};
use crate::store::export::ExportEvent;
use crate::store::{ConversationId, Millis};

/// A report from the stream, and what was read to make it.
#[derive(Debug)]
pub struct StreamReport {
    pub report: Report,
    /// The nodes whose events counted.
    pub nodes: BTreeSet<String>,
    pub events: usize,
    /// Events seen twice (a republish after the stream's duplicate window), counted once.
    pub duplicates: u64,
    /// Messages on the subjects that are not smsflow events, skipped.
    pub unreadable: u64,
}

/// The kinds a report reads.
fn kinds(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Csi => &["rating", "conversation", "mt"],
        Kind::Incidents | Kind::Audit => &["incident"],
    }
}

/// The times `query` needs events of (the CSI report's trend reaches back before `from`).
fn window(query: &Query, zone: &TimeZone) -> (Millis, Millis) {
    match query.kind {
        Kind::Csi => range_ms(zone, csi::history_start(query), query.to),
        Kind::Incidents | Kind::Audit => range_ms(zone, query.from, query.to),
    }
}

/// Reads the stream and builds the report `query` asks for (a CSI report on `scale`).
pub async fn build(
    source: &Source,
    query: &Query,
    zone: &TimeZone,
    scale: Scale,
) -> Result<StreamReport, String> {
    let (since, _) = window(query, zone);
    let replay = replay::read(source, kinds(query.kind), since).await?;
    let nodes = replay.events.iter().map(|e| e.node.clone()).collect();
    let events = replay.events.len();
    Ok(StreamReport {
        report: compute(query, zone, scale, replay.events),
        nodes,
        events,
        duplicates: replay.duplicates,
        unreadable: replay.unreadable,
    })
}

/// The report of `events` (each once), with no I/O.
pub fn compute(query: &Query, zone: &TimeZone, scale: Scale, events: Vec<Envelope>) -> Report {
    let (from, to) = window(query, zone);
    let in_range = |at: Millis| from <= at && at < to;
    // Conversation ids are each node's own: numbered anew per (node, id).
    let mut ids: HashMap<(String, ConversationId), ConversationId> = HashMap::new();
    let mut data = CsiData::default();
    let mut list = Vec::new();
    // By conversation and creation: a node restored from a backup hands out ids again.
    let mut sends: BTreeMap<(ConversationId, Millis), SurveySend> = BTreeMap::new();
    for envelope in events {
        let key = (envelope.node.clone(), envelope.conversation());
        let next = ids.len() as ConversationId + 1;
        let id = *ids.entry(key).or_insert(next);
        match envelope.into_event(id) {
            ExportEvent::Rating(r) if r.flow == query.flow && in_range(r.at) => {
                data.ratings.push(r)
            }
            ExportEvent::Incident(i) if in_range(i.at) => list.push(i),
            ExportEvent::Conversation(c) if c.flow == query.flow && in_range(c.created_at) => {
                data.ends.push(SurveyEnd {
                    at: c.created_at,
                    outcome: c.outcome,
                });
            }
            ExportEvent::Mt(m) if m.opening && m.flow == query.flow => {
                let Some(key) = m.survey.filter(|s| in_range(s.created_at)) else {
                    continue;
                };
                let send = sends.entry((id, key.created_at)).or_insert(SurveySend {
                    at: key.created_at,
                    operator: key.operator,
                    channel: key.channel,
                    delivered: false,
                });
                send.delivered |= m.status == crate::store::MessageStatus::Delivered;
            }
            _ => {}
        }
    }
    data.sends = sends.into_values().collect();
    data.ratings.sort_by_key(|r| (r.at, r.conversation));
    match query.kind {
        Kind::Csi => {
            let options = CsiOptions {
                scale,
                ..CsiOptions::default()
            };
            Report::Csi(Box::new(csi::compute(query, zone, &data, &options)))
        }
        Kind::Incidents => {
            list.sort_by_key(|i| (i.at, i.conversation));
            Report::Incidents(Box::new(incidents::compute(query, zone, &list)))
        }
        Kind::Audit => {
            let data = super::audit::AuditData::from_incidents(&list);
            Report::Audit(Box::new(super::audit::compute(query, zone, &data)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Rating;
    use crate::store::export::{MtStatus, QueuedEvent, SurveyKey};

    /// 2026-11-10 12:00 in Tashkent.
    const AT: Millis = 1_794_294_000_000;

    fn on(node: &str, seq: u64, event: ExportEvent) -> Envelope {
        Envelope::of(node, "5700", &QueuedEvent { seq, event })
    }

    fn question(status: &str) -> ExportEvent {
        ExportEvent::Mt(MtStatus {
            message: 2,
            conversation: 1,
            flow: "nps".into(),
            to: "998901234567".into(),
            status: status.into(),
            at: AT + 1_000,
            opening: true,
            survey: Some(SurveyKey {
                created_at: AT,
                operator: "op-1".into(),
                channel: "call".into(),
            }),
        })
    }

    fn rating(score: u8) -> ExportEvent {
        ExportEvent::Rating(Rating {
            conversation: 1,
            flow: "nps".into(),
            at: AT + 60_000,
            msisdn: "998901234567".into(),
            score,
            operator: "op-1".into(),
            channel: "call".into(),
            comment: String::new(),
        })
    }

    /// Conversation 1 of two nodes is two surveys; a question's statuses are one send; a
    /// survey flow not named `survey` counts its sends too.
    #[test]
    fn each_nodes_conversations_count_apart_and_a_send_once() {
        let zone = TimeZone::get("Asia/Tashkent").unwrap();
        let today = jiff::civil::date(2026, 11, 30);
        let query = Query::parse(Kind::Csi, Some("2026-11-01"), None, None, today)
            .and_then(|q| q.for_flow(Some("nps")))
            .unwrap();
        let events = vec![
            on("a", 1, question("sent")),
            on("b", 1, question("sent")),
            on("a", 2, question("delivered")),
            on("a", 3, rating(5)),
            on("b", 2, rating(2)),
        ];
        let Report::Csi(report) = compute(&query, &zone, Scale::default(), events) else {
            panic!("a CSI report")
        };
        let t = &report.total;
        assert_eq!((t.surveys_sent, t.delivered, t.responses), (2, 1, 2));
    }
}
