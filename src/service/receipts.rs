//! Delivery receipts, without I/O: what a receipt says of its part, and the receipts that
//! came before their submit's outcome was recorded.
//!
//! An SMSC may send the receipt within milliseconds of the submit_sm_resp, before the driver
//! recorded which message that SMSC id belongs to. Such a receipt is kept (by canonical id)
//! and applied once the outcome is recorded; a receipt for a message that is not ours (sent
//! before the store was new) is forgotten after [`EARLY_TTL`] once the map is full.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::smpp::receipt::{DeliveryReceipt, canonical_id};
use crate::store::PartState;

/// Receipts kept while their submit's outcome is being recorded, at most ...
pub const MAX_EARLY: usize = 10_000;
/// ... and how long each is kept once the map is full.
pub const EARLY_TTL: Duration = Duration::from_secs(60);

/// What a receipt says of its part.
pub fn part_state(receipt: &DeliveryReceipt) -> PartState {
    if receipt.state.is_success() {
        PartState::Delivered
    } else if receipt.state.is_final() {
        PartState::Undeliverable
    } else {
        PartState::Enroute
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct EarlyReceipts {
    kept: HashMap<String, (Instant, DeliveryReceipt)>,
}

impl EarlyReceipts {
    /// Keeps a receipt no recorded message claims (yet). A full map first drops what is older
    /// than [`EARLY_TTL`]; still full, the receipt is not kept.
    pub fn keep(&mut self, now: Instant, receipt: &DeliveryReceipt) {
        if self.kept.len() >= MAX_EARLY {
            self.kept
                .retain(|_, (at, _)| now.duration_since(*at) < EARLY_TTL);
            if self.kept.len() >= MAX_EARLY {
                return;
            }
        }
        self.kept
            .insert(canonical_id(&receipt.message_id), (now, receipt.clone()));
    }

    /// The kept receipts for these (canonical) SMSC ids, taken out.
    pub fn take<'a>(
        &mut self,
        smsc_ids: impl IntoIterator<Item = &'a String>,
    ) -> Vec<DeliveryReceipt> {
        if self.kept.is_empty() {
            return Vec::new();
        }
        smsc_ids
            .into_iter()
            .filter_map(|id| self.kept.remove(id).map(|(_, r)| r))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::receipt::MessageState;

    fn receipt(id: &str, state: MessageState) -> DeliveryReceipt {
        DeliveryReceipt {
            message_id: id.into(),
            state,
            error: None,
            done_at: None,
        }
    }

    #[test]
    fn early_receipts_wait_for_their_outcome_and_a_full_map_forgets_old_ones() {
        let t0 = Instant::now();
        let mut early = EarlyReceipts::default();
        early.keep(t0, &receipt("00AB", MessageState::Delivered));
        assert!(early.take(&["cd".to_owned()]).is_empty());
        let taken = early.take(&["ab".to_owned()]);
        assert_eq!(taken.len(), 1, "found under its canonical id");
        assert_eq!(part_state(&taken[0]), PartState::Delivered);
        assert!(early.is_empty());

        for i in 0..MAX_EARLY {
            early.keep(t0, &receipt(&format!("{i:x}"), MessageState::Enroute));
        }
        // Full: a new one is dropped until the old ones are past their TTL.
        early.keep(
            t0 + Duration::from_secs(1),
            &receipt("fresh", MessageState::Undeliverable),
        );
        assert_eq!(early.len(), MAX_EARLY);
        assert!(early.take(&["fresh".to_owned()]).is_empty());
        early.keep(
            t0 + EARLY_TTL,
            &receipt("fresh", MessageState::Undeliverable),
        );
        assert_eq!(early.len(), 1);
        assert_eq!(
            part_state(&early.take(&["fresh".to_owned()])[0]),
            PartState::Undeliverable
        );
    }
}
