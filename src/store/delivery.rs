//! What became of sent messages: the outcome of each submit (accepted with the SMSC's ids,
//! or refused), and what the delivery receipts said of each part.
//!
//! A long MT goes out in parts, each with its own SMSC id, and most carriers send a receipt
//! per part (SPEC.md "SMPP behaviour"): a message is `delivered` once every part's receipt
//! says so, `undeliverable` as soon as one part's final receipt says otherwise, and a receipt
//! for any part is matched. A late receipt never undoes a final one.

use serde::{Deserialize, Serialize};

use super::SentPart;

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

    fn status(self) -> &'static str {
        match self {
            PartState::Sent => "sent",
            PartState::Enroute => "enroute",
            PartState::Delivered => "delivered",
            PartState::Undeliverable => "undeliverable",
        }
    }

    /// The message's status from its parts' states, as the timeline shows it.
    pub fn message_status(parts: &[PartState]) -> &'static str {
        if parts.contains(&PartState::Undeliverable) {
            "undeliverable"
        } else if !parts.is_empty() && parts.iter().all(|p| *p == PartState::Delivered) {
            "delivered"
        } else if parts.iter().any(|p| *p != PartState::Sent) {
            "enroute"
        } else {
            "sent"
        }
    }
}

/// A receipt matched to its message by [`Store::apply_receipt`](super::Store::apply_receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptApplied {
    /// The part the receipt named.
    pub part: SentPart,
    /// The message's new status when the receipt changed it ("enroute", "delivered",
    /// "undeliverable"); `None` when the message's status stays (another part still on its
    /// way, or the message was already final).
    pub changed: Option<&'static str>,
}

/// A sent message's status (the timeline shows it) and its parts' states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Delivery {
    /// "sent", "failed: ..." (the submit's outcome), then what the receipts made of it.
    pub status: String,
    /// Empty for a message recorded before part states were kept (store schema 1).
    #[serde(default)]
    pub parts: Vec<PartState>,
}

/// A status no receipt changes any more.
fn is_final_status(status: &str) -> bool {
    status == "delivered" || status == "undeliverable" || status.starts_with("failed")
}

/// What a receipt saying `state` of part `part` makes of a message's delivery: the value to
/// store (`None`: nothing changes) and the message's new status when it changed.
pub(super) fn receipt(
    delivery: Option<Delivery>,
    part: usize,
    state: PartState,
) -> (Option<Delivery>, Option<&'static str>) {
    let mut d = delivery.unwrap_or_else(|| Delivery {
        status: "sent".into(),
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
    let changed = (!is_final_status(&d.status) && d.status != new).then_some(new);
    if let Some(new) = changed {
        d.status = new.to_owned();
    }
    (Some(d), changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_delivered_when_every_part_is_and_failed_when_one_fails() {
        let sent = || {
            Some(Delivery {
                status: "sent".into(),
                parts: vec![PartState::Sent; 3],
            })
        };
        let (d, changed) = receipt(sent(), 2, PartState::Delivered);
        assert_eq!(changed, Some("enroute"));
        let (d, changed) = receipt(d, 0, PartState::Delivered);
        assert_eq!(changed, None);
        let (d, changed) = receipt(d, 1, PartState::Delivered);
        assert_eq!(changed, Some("delivered"));
        assert_eq!(receipt(d, 1, PartState::Undeliverable), (None, None));

        let (d, changed) = receipt(sent(), 1, PartState::Undeliverable);
        assert_eq!(changed, Some("undeliverable"));
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
            Some("delivered")
        );
        assert_eq!(
            receipt(legacy(), 2, PartState::Undeliverable).1,
            Some("undeliverable")
        );
    }
}
