//! What the session does with a frame from the SMSC (a response to one of its requests, or a
//! request of the SMSC's own), with throttling, a deadline passing, and the end of the session.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::super::encode;
use super::super::pdu::{Command, CommandId, CommandStatus, Pdu};
use super::{CloseReason, Event, Inbound, Outcome, RequestKind, Session, State};

impl Session {
    pub(super) fn handle_response(&mut self, now: Instant, command: &Command<'_>) {
        let seq = command.sequence_number();
        let status = command.command_status();
        let Some(outstanding) = self.outstanding.remove(&seq) else {
            self.events.push_back(Event::UnexpectedResponse {
                command_id: command.command_id(),
                sequence_number: seq,
            });
            return;
        };
        self.prune_deadlines();
        match outstanding {
            RequestKind::Bind(mode) => {
                if status.is_ok() {
                    let system_id = match &command.pdu {
                        Pdu::BindTransmitterResp(r)
                        | Pdu::BindReceiverResp(r)
                        | Pdu::BindTransceiverResp(r) => r.system_id.to_str_lossy().into_owned(),
                        _ => String::new(),
                    };
                    self.state = State::Bound(mode);
                    self.last_bound = Some(mode);
                    self.events.push_back(Event::Bound { system_id });
                } else {
                    self.close(CloseReason::BindRejected { status });
                }
            }
            RequestKind::EnquireLink => self.enquire_link_outstanding = false,
            RequestKind::Unbind => self.close(CloseReason::Unbound),
            RequestKind::Submit {
                token,
                frame,
                throttled,
            } => {
                self.submits_in_flight -= 1;
                if status.is_throttling() && throttled < self.config.throttle_retries {
                    self.throttle(now, status);
                    self.deferred.push_back((token, frame, throttled + 1));
                    return;
                }
                let outcome = if status.is_ok() {
                    self.consecutive_throttles = 0;
                    let message_id = match &command.pdu {
                        Pdu::SubmitSmResp(r) | Pdu::DataSmResp(r) => {
                            r.message_id.to_str_lossy().into_owned()
                        }
                        Pdu::SubmitMultiResp(r) => r.message_id.to_str_lossy().into_owned(),
                        _ => String::new(),
                    };
                    Outcome::Accepted { message_id }
                } else if status.is_throttling() {
                    Outcome::Throttled { status }
                } else {
                    Outcome::Rejected { status }
                };
                self.events.push_back(Event::Completed {
                    token,
                    sequence_number: seq,
                    outcome,
                });
            }
        }
    }

    /// Drops deadlines of answered requests from the front of the queue, so finding the next
    /// live deadline stays O(1) while responses arrive roughly in order.
    fn prune_deadlines(&mut self) {
        while let Some(&(_, seq)) = self.deadlines.front() {
            if self.outstanding.contains_key(&seq) {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    /// Pauses submitting: the pause doubles with each consecutive throttling response.
    fn throttle(&mut self, now: Instant, status: CommandStatus) {
        self.stats.throttled += 1;
        let pause = self
            .config
            .throttle_initial
            .saturating_mul(1 << self.consecutive_throttles.min(16))
            .min(self.config.throttle_max);
        self.consecutive_throttles = self.consecutive_throttles.saturating_add(1);
        let until = now + pause;
        // Several responses of one burst extend the same pause rather than stacking.
        if self.throttled_until.is_none_or(|current| until > current) {
            self.throttled_until = Some(until);
        }
        self.events.push_back(Event::Throttled { status, pause });
    }

    /// Re-sends throttled submits, with new sequence numbers, as far as the window allows.
    pub(super) fn resend_deferred(&mut self, now: Instant) {
        while self.submits_in_flight < self.config.window {
            let Some((token, frame, throttled)) = self.deferred.pop_front() else {
                break;
            };
            let seq = self.next_sequence();
            let mut patched = BytesMut::from(&frame[..]);
            // Octets 12..16 are the sequence number (the frame is our own encoding).
            patched[12..16].copy_from_slice(&seq.to_be_bytes());
            let frame = patched.freeze();
            self.send_frame(&frame);
            self.submits_in_flight += 1;
            self.expect(
                now,
                seq,
                RequestKind::Submit {
                    token,
                    frame,
                    throttled,
                },
            );
        }
    }

    pub(super) fn handle_request(&mut self, frame: &Bytes, command: Command<'_>) {
        let seq = command.sequence_number();
        match command.pdu {
            Pdu::EnquireLink => self.send(&encode::enquire_link_resp(seq)),
            Pdu::Unbind => {
                self.send(&encode::unbind_resp(seq));
                self.close(CloseReason::Unbound);
            }
            Pdu::DeliverSm(sm) => {
                let receipt = sm
                    .esm_class
                    .is_receipt()
                    .then(|| sm.tlvs.delivery_receipt(sm.short_message));
                self.unacked.insert(seq, CommandId::DeliverSm);
                self.events.push_back(Event::Inbound(Inbound {
                    sequence_number: seq,
                    command_id: CommandId::DeliverSm,
                    source_addr: sm.source_addr.to_str_lossy().into_owned(),
                    destination_addr: sm.destination_addr.to_str_lossy().into_owned(),
                    esm_class: sm.esm_class,
                    data_coding: sm.data_coding,
                    concat: sm.concat(),
                    payload: frame.slice_ref(sm.payload()),
                    receipt,
                    reference: sm.tlvs.user_message_reference(),
                }));
            }
            Pdu::DataSm(d) => {
                let payload = d.tlvs.message_payload().unwrap_or_default();
                let receipt = d
                    .esm_class
                    .is_receipt()
                    .then(|| d.tlvs.delivery_receipt(payload));
                self.unacked.insert(seq, CommandId::DataSm);
                self.events.push_back(Event::Inbound(Inbound {
                    sequence_number: seq,
                    command_id: CommandId::DataSm,
                    source_addr: d.source_addr.to_str_lossy().into_owned(),
                    destination_addr: d.destination_addr.to_str_lossy().into_owned(),
                    esm_class: d.esm_class,
                    data_coding: d.data_coding,
                    concat: d.tlvs.sar(),
                    payload: if payload.is_empty() {
                        Bytes::new()
                    } else {
                        frame.slice_ref(payload)
                    },
                    receipt,
                    reference: d.tlvs.user_message_reference(),
                }));
            }
            // alert_notification has no response; nothing to do with it yet.
            Pdu::AlertNotification(_) => {}
            _ => {
                let status = CommandStatus::ESME_RINVCMDID;
                self.send(&encode::generic_nack(seq, status));
                self.events.push_back(Event::Refused {
                    command_id: command.command_id(),
                    status,
                });
            }
        }
    }

    pub(super) fn timed_out(&mut self, seq: u32, outstanding: RequestKind) {
        match outstanding {
            RequestKind::Bind(_) => self.close(CloseReason::BindTimedOut),
            RequestKind::EnquireLink => self.close(CloseReason::LinkDead),
            RequestKind::Unbind => self.close(CloseReason::UnbindTimedOut),
            RequestKind::Submit { token, .. } => {
                self.submits_in_flight -= 1;
                self.events.push_back(Event::Completed {
                    token,
                    sequence_number: seq,
                    outcome: Outcome::TimedOut {
                        after: self.config.response_timeout,
                    },
                });
            }
        }
    }

    /// Ends the session: every submit still outstanding or deferred is reported lost, exactly
    /// once; unacknowledged inbound messages are forgotten (the SMSC redelivers them).
    pub(super) fn close(&mut self, reason: CloseReason) {
        let mut lost: Vec<(u32, u64)> = self
            .outstanding
            .drain()
            .filter_map(|(seq, kind)| match kind {
                RequestKind::Submit { token, .. } => Some((seq, token)),
                _ => None,
            })
            .collect();
        lost.sort_unstable();
        for (seq, token) in lost {
            self.events.push_back(Event::Completed {
                token,
                sequence_number: seq,
                outcome: Outcome::LinkLost,
            });
        }
        for (token, _, _) in self.deferred.drain(..) {
            self.events.push_back(Event::Completed {
                token,
                sequence_number: 0,
                outcome: Outcome::LinkLost,
            });
        }
        self.deadlines.clear();
        self.submits_in_flight = 0;
        self.unacked.clear();
        self.throttled_until = None;
        self.state = State::Closed;
        self.events.push_back(Event::Closed { reason });
    }
}
