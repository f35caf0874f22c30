//! What became of sent messages: the outcome of each submit (accepted with the SMSC's ids,
//! or refused), and what the delivery receipts said of each part.
//!
//! A long MT goes out in parts, each with its own SMSC id, and most carriers send a receipt
//! per part (SPEC.md "SMPP behaviour"): a message is `delivered` once every part's receipt
//! says so, `undeliverable` as soon as one part's final receipt says otherwise, and a receipt
//! for any part is matched. Each receipt is applied in one transaction over the message's
//! part states, so receipts for the same message racing each other cannot lose one.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{OutboxOutcome, SentPart, Store, StoreError, get, keys};

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
    fn is_final(self) -> bool {
        matches!(self, PartState::Delivered | PartState::Undeliverable)
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

/// A receipt matched to its message by [`Store::apply_receipt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptApplied {
    /// The part the receipt named.
    pub part: SentPart,
    /// The message's new status when the receipt changed it ("enroute", "delivered",
    /// "undeliverable"); `None` when the message's status stays (another part still on its
    /// way, or the message was already final).
    pub changed: Option<&'static str>,
}

/// A status no receipt changes any more.
fn is_final_status(status: &str) -> bool {
    status == "delivered" || status == "undeliverable" || status.starts_with("failed")
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn tx_get<T: serde::de::DeserializeOwned>(
    tree: &TransactionalTree,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(v) => keys::decode(keys::DELIVERY, key, &v)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
        None => Ok(None),
    }
}

impl Store {
    /// Takes messages out of the outbox with what became of them, atomically: the status each
    /// message's timeline entry shows and, for accepted parts, which message a receipt for
    /// that SMSC id belongs to and the part's state.
    pub fn outbox_finished(&self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for o in outcomes {
            let m = &o.message;
            let status_key = keys::message_status(m.id);
            writes.push((
                status_key.to_vec(),
                keys::encode(keys::DELIVERY, &status_key, &o.status)?,
            ));
            if !o.smsc_ids.is_empty() {
                let parts_key = keys::message_parts(m.id);
                let parts = vec![PartState::Sent; o.smsc_ids.len()];
                writes.push((
                    parts_key.to_vec(),
                    keys::encode(keys::DELIVERY, &parts_key, &parts)?,
                ));
            }
            for (part, id) in o.smsc_ids.iter().enumerate() {
                let sent = SentPart {
                    conversation: m.conversation,
                    outbox_id: m.id,
                    to: m.to.clone(),
                    flow: m.flow.clone(),
                    part,
                    opening: m.opening,
                };
                let key = keys::sent_part(id);
                let value = keys::encode(keys::DELIVERY, &key, &sent)?;
                writes.push((key, value));
            }
        }
        let i = &*self.inner;
        (&i.outbox, &i.delivery)
            .transaction(|(outbox, delivery)| {
                for o in outcomes {
                    outbox.remove(&keys::outbox(o.message.id)[..])?;
                }
                for (key, value) in &writes {
                    delivery.insert(&key[..], &value[..])?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)
    }

    /// The message an SMSC id was given to (see [`Store::outbox_finished`]).
    pub fn sent_part(&self, smsc_message_id: &str) -> Result<Option<SentPart>, StoreError> {
        get(
            &self.inner.delivery,
            keys::DELIVERY,
            &keys::sent_part(smsc_message_id),
        )
    }

    /// Applies a receipt saying `state` of the part the SMSC gave one of `id_forms` (the same
    /// id written the ways carriers write it): the part's state, the message's status, and,
    /// for a final receipt, forgetting the SMSC id no further receipt will name. `None` when
    /// no form is known (yet): the caller may keep the receipt for a submit still being
    /// recorded.
    pub fn apply_receipt(
        &self,
        id_forms: &[String],
        state: PartState,
    ) -> Result<Option<ReceiptApplied>, StoreError> {
        self.inner
            .delivery
            .transaction(|delivery| {
                let mut found = None;
                for id in id_forms {
                    let key = keys::sent_part(id);
                    if let Some(part) = tx_get::<SentPart>(delivery, &key)? {
                        found = Some((key, part));
                        break;
                    }
                }
                let Some((sent_key, part)) = found else {
                    return Ok(None);
                };
                if state.is_final() {
                    delivery.remove(sent_key)?;
                }
                let unchanged = |part| {
                    Ok(Some(ReceiptApplied {
                        part,
                        changed: None,
                    }))
                };
                let parts_key = keys::message_parts(part.outbox_id);
                let (mut parts, index) = match tx_get::<Vec<PartState>>(delivery, &parts_key)? {
                    Some(parts) => (parts, part.part),
                    // Sent before part states were kept: the first part speaks for the
                    // message, a later one only when it failed (as then).
                    None if part.part == 0 || state == PartState::Undeliverable => {
                        (vec![PartState::Sent], 0)
                    }
                    None => return unchanged(part),
                };
                // A late or repeated receipt does not undo a final one.
                if parts.get(index).is_none_or(|p| p.is_final()) {
                    return unchanged(part);
                }
                parts[index] = state;
                let encoded = keys::encode(keys::DELIVERY, &parts_key, &parts)
                    .map_err(ConflictableTransactionError::Abort)?;
                delivery.insert(&parts_key[..], encoded)?;
                let status_key = keys::message_status(part.outbox_id);
                let old: Option<String> = tx_get(delivery, &status_key)?;
                let new = PartState::message_status(&parts);
                let changed = match old.as_deref() {
                    Some(old) if is_final_status(old) || old == new => None,
                    _ => Some(new),
                };
                if let Some(new) = changed {
                    let encoded = keys::encode(keys::DELIVERY, &status_key, new)
                        .map_err(ConflictableTransactionError::Abort)?;
                    delivery.insert(&status_key[..], encoded)?;
                }
                Ok(Some(ReceiptApplied { part, changed }))
            })
            .map_err(StoreError::from)
    }

    pub(super) fn message_status(&self, outbox_id: u64) -> Result<Option<String>, StoreError> {
        get(
            &self.inner.delivery,
            keys::DELIVERY,
            &keys::message_status(outbox_id),
        )
    }
}
