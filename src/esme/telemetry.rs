//! The SMPP metrics one session records (SPEC.md's `smsflow_pdus_total`,
//! `smsflow_sessions_bound`, `smsflow_window_in_flight`, `smsflow_submit_latency_seconds`,
//! `smsflow_throttled_total`), with handles looked up once per session rather than per PDU.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::BindKind;
use crate::metrics as names;
use crate::smpp::pdu::CommandId;

/// Registers at zero the series of one `[[smsc]]` before its first session connects: the
/// gauges (so "no session bound" is a 0, not a missing series), the counters, and the PDUs an
/// ESME bound as `bind` exchanges (SMPP 3.4 §2.3, §4).
pub fn register(smsc: &str, bind: BindKind) {
    use CommandId::*;
    let label = || smsc.to_owned();
    gauge!(names::SESSIONS_BOUND, "smsc" => label()).increment(0.0);
    gauge!(names::WINDOW_IN_FLIGHT, "smsc" => label()).increment(0.0);
    let _ = histogram!(names::SUBMIT_LATENCY, "smsc" => label());
    counter!(names::THROTTLED, "smsc" => label()).increment(0);
    counter!(names::MO_REDELIVERED, "smsc" => label()).increment(0);
    let binds: &[CommandId] = match bind {
        BindKind::Transceiver => &[BindTransceiver],
        BindKind::Pair => &[BindTransmitter, BindReceiver],
    };
    let both_ways = [
        EnquireLink,
        EnquireLinkResp,
        Unbind,
        UnbindResp,
        GenericNack,
    ];
    let out = [SubmitSm, DeliverSmResp]
        .into_iter()
        .chain(binds.iter().copied());
    let answers = binds
        .iter()
        .map(|b| CommandId::from(b.value() | 0x8000_0000));
    let inbound = [SubmitSmResp, DeliverSm].into_iter().chain(answers);
    let directions = (out.chain(both_ways).map(|c| ("out", c)))
        .chain(inbound.chain(both_ways).map(|c| ("in", c)));
    for (direction, command) in directions {
        counter!(names::PDUS, "smsc" => label(), "direction" => direction, "command" => command.name())
            .increment(0);
    }
}

pub struct SessionMetrics {
    smsc: Arc<str>,
    pdus: HashMap<(bool, u32), Counter>,
    bound: Gauge,
    is_bound: bool,
    in_flight: Gauge,
    /// What this session last added to the SMSC's `window_in_flight`.
    in_flight_share: usize,
    submit_latency: Histogram,
    throttled: Counter,
}

impl SessionMetrics {
    pub fn new(smsc: &Arc<str>) -> SessionMetrics {
        let label = smsc.to_string();
        SessionMetrics {
            smsc: smsc.clone(),
            pdus: HashMap::new(),
            bound: gauge!(names::SESSIONS_BOUND, "smsc" => label.clone()),
            is_bound: false,
            in_flight: gauge!(names::WINDOW_IN_FLIGHT, "smsc" => label.clone()),
            in_flight_share: 0,
            submit_latency: histogram!(names::SUBMIT_LATENCY, "smsc" => label.clone()),
            throttled: counter!(names::THROTTLED, "smsc" => label),
        }
    }

    /// One PDU read from the SMSC (`frame` is the whole PDU).
    pub fn pdu_in(&mut self, frame: &[u8]) {
        if let Some(id) = command_id(frame) {
            self.pdu(false, id);
        }
    }

    /// Bytes written to the SMSC: one or more whole PDUs.
    pub fn pdus_out(&mut self, mut bytes: &[u8]) {
        while let Some(id) = command_id(bytes) {
            self.pdu(true, id);
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if len < 16 || len > bytes.len() {
                break;
            }
            bytes = &bytes[len..];
        }
    }

    fn pdu(&mut self, out: bool, id: u32) {
        let smsc = &self.smsc;
        self.pdus
            .entry((out, id))
            .or_insert_with(|| {
                counter!(names::PDUS,
                    "smsc" => smsc.to_string(),
                    "direction" => if out { "out" } else { "in" },
                    "command" => CommandId::from(id).name())
            })
            .increment(1);
    }

    pub fn set_bound(&mut self, bound: bool) {
        if bound != self.is_bound {
            self.is_bound = bound;
            if bound {
                self.bound.increment(1.0);
            } else {
                self.bound.decrement(1.0);
            }
        }
    }

    pub fn set_in_flight(&mut self, in_flight: usize) {
        if in_flight != self.in_flight_share {
            self.in_flight
                .increment(in_flight as f64 - self.in_flight_share as f64);
            self.in_flight_share = in_flight;
        }
    }

    pub fn submitted(&self, latency: Duration) {
        self.submit_latency.record(latency.as_secs_f64());
    }

    pub fn throttled(&self) {
        self.throttled.increment(1);
    }
}

impl Drop for SessionMetrics {
    /// A closed session is neither bound nor waiting for anything.
    fn drop(&mut self) {
        self.set_bound(false);
        self.set_in_flight(0);
    }
}

fn command_id(frame: &[u8]) -> Option<u32> {
    let id = frame.get(4..8)?;
    Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
}
