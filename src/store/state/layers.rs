//! Reads and writes through the layers: the dirty layer, the frozen one, then sled.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::super::{StoreError, keys};
use super::{Slot, State};

impl State {
    pub(super) fn slot(&self, key: &[u8]) -> Option<&Slot> {
        self.dirty
            .kv
            .get(key)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.kv.get(key)))
    }

    /// A value of the state: the newest layer that has the key, else sled.
    pub fn lookup<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.slot(key) {
            Some(Slot { value: Some(v), .. }) => keys::decode(keys::STATE, key, v).map(Some),
            Some(Slot { value: None, .. }) => Ok(None),
            None => match self.cold.get(key)? {
                Some(v) => keys::decode(keys::STATE, key, &v).map(Some),
                None => Ok(None),
            },
        }
    }

    pub(super) fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        match self.slot(key) {
            Some(slot) => Ok(slot.value.is_some()),
            None => Ok(self.cold.contains_key(key)?),
        }
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: impl Into<Arc<[u8]>>, absent: bool) {
        let value = Some(value.into());
        match self.dirty.kv.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().value = value,
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value,
                    fresh: absent,
                });
            }
        }
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        match self.dirty.kv.entry(key) {
            Entry::Occupied(e) if e.get().fresh => {
                e.remove();
            }
            Entry::Occupied(mut e) => e.get_mut().value = None,
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value: None,
                    fresh: false,
                });
            }
        }
    }
}
