//! What became of sent messages: the outcome of each submit (accepted with the SMSC's ids,
//! or refused), and what the delivery receipts said of each part.
//!
//! A long MT goes out in parts, each with its own SMSC id, and most carriers send a receipt
//! per part (SPEC.md "SMPP behaviour"): a message is `delivered` once every part's receipt
//! says so, `undeliverable` as soon as one part's final receipt says otherwise, and a receipt
//! for any part is matched. A late receipt never undoes a final one.

use serde::{Deserialize, Serialize};

use super::{MessageStatus, SentPart};

/// What the receipts said of one part of a sent message, so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartState {
    /// Accepted by the SMSC; no receipt yet.
    Sent,
    /// A receipt that is not final (ENROUTE, ACCEPTD, ...).
    Enroute,
    Delivered,
    /// A final receipt that is not DELIVRD (UNDELIV, EXPIRED, REJECTD, DELETED, ...).
    Undeliverable,
}

impl PartState {
    pub(super) fn is_final(self) -> bool {
        matches!(self, PartState::Delivered | PartState::Undeliverable)
    }

    fn status(self) -> MessageStatus {
        match self {
            PartState::Sent => MessageStatus::Sent,
            PartState::Enroute => MessageStatus::Enroute,
            PartState::Delivered => MessageStatus::Delivered,
            PartState::Undeliverable => MessageStatus::Undeliverable,
        }
    }

    /// The message's status from its parts' states.
    pub fn message_status(parts: &[PartState]) -> MessageStatus {
        if parts.contains(&PartState::Undeliverable) {
            MessageStatus::Undeliverable
        } else if !parts.is_empty() && parts.iter().all(|p| *p == PartState::Delivered) {
            MessageStatus::Delivered
        } else if parts.iter().any(|p| *p != PartState::Sent) {
            MessageStatus::Enroute
        } else {
            MessageStatus::Sent
        }
    }
}

/// A receipt matched to its message by [`Store::apply_receipt`](super::Store::apply_receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptApplied {
    /// The part the receipt named.
    pub part: SentPart,
    /// The message's new status when the receipt changed it (`Enroute`, `Delivered`,
    /// `Undeliverable`); `None` when the message's status stays (another part still on its
    /// way, or the message was already final).
    pub changed: Option<MessageStatus>,
}

/// A sent message's status (the timeline shows it) and its parts' states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Delivery {
    /// The submit's outcome, then what the receipts made of it.
    pub status: MessageStatus,
    /// Empty for a message recorded before part states were kept (store schema 1).
    #[serde(default)]
    pub parts: Vec<PartState>,
}

/// What a receipt saying `state` of part `part` makes of a message's delivery: the value to
/// store (`None`: nothing changes) and the message's new status when it changed.
pub(super) fn receipt(
    delivery: Option<Delivery>,
    part: usize,
    state: PartState,
) -> (Option<Delivery>, Option<MessageStatus>) {
    let mut d = delivery.unwrap_or_else(|| Delivery {
        status: MessageStatus::Sent,
        parts: Vec::new(),
    });
    let new = if d.parts.is_empty() {
        // Recorded before part states were kept: the first part speaks for the message, a
        // later one only when it failed (as then).
        if part != 0 && state != PartState::Undeliverable {
            return (None, None);
        }
        state.status()
    } else {
        match d.parts.get_mut(part) {
            Some(p) if !p.is_final() => *p = state,
            _ => return (None, None),
        }
        PartState::message_status(&d.parts)
    };
    let changed = (!d.status.is_final() && d.status != new).then_some(new);
    if let Some(new) = &changed {
        d.status = new.clone();
    }
    (Some(d), changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_as_the_words_they_always_were() {
        let failed = MessageStatus::Failed("ESME_RINVDSTADR".into());
        for (status, word) in [
            (MessageStatus::Sent, "sent"),
            (MessageStatus::Enroute, "enroute"),
            (MessageStatus::Delivered, "delivered"),
            (MessageStatus::Undeliverable, "undeliverable"),
            (failed, "failed: ESME_RINVDSTADR"),
        ] {
            assert_eq!(serde_json::to_value(&status).unwrap(), word);
            let packed = rmp_serde::to_vec(&status).unwrap();
            assert_eq!(rmp_serde::from_slice::<String>(&packed).unwrap(), word);
            // What older records hold reads back as the same status.
            let old = rmp_serde::to_vec(word).unwrap();
            assert_eq!(
                rmp_serde::from_slice::<MessageStatus>(&old).unwrap(),
                status
            );
            assert_eq!(status.is_final(), !matches!(word, "sent" | "enroute"));
        }
    }

    #[test]
    fn timeline_statuses_are_stored_as_the_words_they_always_were() {
        use crate::store::TimelineStatus as T;
        let webhook = "delivered (HTTP 200, attempt 2)";
        for (status, word) in [
            (T::Received, "received"),
            (T::Joined, "joined"),
            (T::Updated, "updated"),
            (T::Queued, "queued"),
            (T::OptedOut, "suppressed (opted out)"),
            (T::Message(MessageStatus::Delivered), "delivered"),
            (
                T::Message(MessageStatus::Failed("ESME_RTHROTTLED".into())),
                "failed: ESME_RTHROTTLED",
            ),
            (T::Note(webhook.into()), webhook),
        ] {
            assert_eq!(serde_json::to_value(&status).unwrap(), word);
            let old = rmp_serde::to_vec(word).unwrap();
            assert_eq!(rmp_serde::from_slice::<T>(&old).unwrap(), status);
        }
    }

    #[test]
    fn a_message_is_delivered_when_every_part_is_and_failed_when_one_fails() {
        let sent = || {
            Some(Delivery {
                status: "sent".into(),
                parts: vec![PartState::Sent; 3],
            })
        };
        let (d, changed) = receipt(sent(), 2, PartState::Delivered);
        assert_eq!(changed, Some(MessageStatus::Enroute));
        let (d, changed) = receipt(d, 0, PartState::Delivered);
        assert_eq!(changed, None);
        let (d, changed) = receipt(d, 1, PartState::Delivered);
        assert_eq!(changed, Some(MessageStatus::Delivered));
        assert_eq!(receipt(d, 1, PartState::Undeliverable), (None, None));

        let (d, changed) = receipt(sent(), 1, PartState::Undeliverable);
        assert_eq!(changed, Some(MessageStatus::Undeliverable));
        let (_, changed) = receipt(d, 0, PartState::Delivered);
        assert_eq!(changed, None, "a failed message stays failed");

        let refused = Delivery {
            status: "failed: ESME_RINVDSTADR".into(),
            parts: vec![PartState::Sent],
        };
        assert_eq!(receipt(Some(refused), 0, PartState::Delivered).1, None);
        let legacy = || {
            Some(Delivery {
                status: "sent".into(),
                parts: Vec::new(),
            })
        };
        assert_eq!(receipt(legacy(), 1, PartState::Delivered), (None, None));
        assert_eq!(
            receipt(legacy(), 0, PartState::Delivered).1,
            Some(MessageStatus::Delivered)
        );
        assert_eq!(
            receipt(legacy(), 2, PartState::Undeliverable).1,
            Some(MessageStatus::Undeliverable)
        );
    }
}
