//! The ESME side of one SMPP session, sans I/O.
//!
//! Owns the session state (SMPP 3.4 §2.2), sequence numbers, the window of outstanding
//! requests and their response deadlines, enquire_link when idle, the unbind handshake,
//! throttling back-off, and the acknowledgement of inbound messages. It never touches a socket
//! or a clock: frames come in through [`Session::handle_frame`], time through `now` arguments;
//! frames to send come out of [`Session::poll_transmit`], results out of [`Session::poll_event`],
//! and [`Session::poll_timeout`] says when to call [`Session::handle_timeout`] next. The tokio
//! driver (`crate::esme::connection`) is a short loop around these calls.
//!
//! Acknowledging inbound messages is the application's decision: a deliver_sm becomes an
//! [`Event::Inbound`] and its deliver_sm_resp goes out only when [`Session::ack`] is called
//! (ESME_ROK once stored, ESME_RX_T_APPN to make the SMSC retry), in any order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::decode::{DecodeError, decode};
use super::encode::{self, BindMode, BindParams, EncodeError};
use super::pdu::{CommandId, CommandStatus, EsmClass, Pdu};
use super::receipt::{DeliveryReceipt, ReceiptError};
use super::udh::ConcatInfo;

mod incoming;
mod matrix;

/// Session states of SMPP 3.4 §2.2, plus the two handshakes in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, not bound: only a bind may be sent.
    Open,
    /// A bind is outstanding.
    Binding(BindMode),
    /// Bound as a transmitter, receiver or transceiver.
    Bound(BindMode),
    /// We sent unbind (or the SMSC did and we answered); waiting for the handshake to finish.
    Unbinding,
    /// The session is over; the connection should be closed.
    Closed,
}

impl State {
    /// Whether an ESME in this state may send `id` (SMPP 3.4 operation matrix).
    pub fn may_send(self, id: CommandId, last_bound: Option<BindMode>) -> bool {
        // Unbinding: finish answering what arrived, start nothing new.
        if self == State::Unbinding && !id.is_response() {
            return false;
        }
        matrix::row(id).is_some_and(|(send, _)| send & matrix::column(self, last_bound) != 0)
    }

    /// Whether an ESME in this state may receive `id` from the SMSC.
    pub fn may_receive(self, id: CommandId, last_bound: Option<BindMode>) -> bool {
        matrix::row(id).is_some_and(|(_, recv)| recv & matrix::column(self, last_bound) != 0)
    }
}

/// Everything a session needs to know; owned so a session can outlive the config it came from.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub bind_mode: BindMode,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
    /// Most requests outstanding at once (submit_sm and friends; enquire_link and unbind are
    /// not counted, so the link can always be probed and closed). Default 64.
    pub window: usize,
    /// Send enquire_link after this long without receiving anything. Default 30 s.
    pub enquire_link_interval: Duration,
    /// How long a request may wait for its response. Default 10 s.
    pub response_timeout: Duration,
    /// First pause after ESME_RTHROTTLED / ESME_RMSGQFUL; doubles per consecutive throttle up to
    /// `throttle_max`. Defaults 100 ms and 10 s.
    pub throttle_initial: Duration,
    pub throttle_max: Duration,
    /// How often one submit is re-sent after throttling before the caller is told. Default 20.
    pub throttle_retries: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            bind_mode: BindMode::Transceiver,
            system_id: "smsflow".into(),
            password: "smsflow".into(),
            system_type: String::new(),
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
            window: 64,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            throttle_initial: Duration::from_millis(100),
            throttle_max: Duration::from_secs(10),
            throttle_retries: 20,
        }
    }
}

/// Why a request could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The operation is not allowed in this state (e.g. submit before bind, or on a receiver).
    #[error("{command} is not allowed in session state {state:?}")]
    InvalidState { command: &'static str, state: State },
    /// `window` requests are outstanding; try again after a response.
    #[error("window of {window} outstanding requests is full")]
    WindowFull { window: usize },
    /// The session is paused after a throttling response until this instant.
    #[error("throttled by the smsc; paused until the back-off ends")]
    Throttled { until: Instant },
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
}

/// What became of a submitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The SMSC accepted it and gave this message id.
    Accepted { message_id: String },
    /// The SMSC kept throttling it after all retries.
    Throttled { status: CommandStatus },
    /// The SMSC refused it (or answered with generic_nack).
    Rejected { status: CommandStatus },
    /// No response within `response_timeout`: the SMSC may or may not have it.
    TimedOut { after: Duration },
    /// The link went down before the response: the SMSC may or may not have it.
    LinkLost,
}

/// An MO message or a delivery receipt, owned, with the sequence number its ack must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub sequence_number: u32,
    /// deliver_sm or data_sm: decides which response [`Session::ack`] sends.
    pub command_id: CommandId,
    pub source_addr: String,
    pub destination_addr: String,
    pub esm_class: EsmClass,
    pub data_coding: u8,
    /// Position in a concatenated message (UDH or SAR), if it is a part.
    pub concat: Option<ConcatInfo>,
    /// The user data without UDH (`message_payload` when present), sharing the frame's buffer.
    pub payload: Bytes,
    /// Set when `esm_class` marks a delivery receipt.
    pub receipt: Option<Result<DeliveryReceipt, ReceiptError>>,
    /// The SMSC's `user_message_reference`, which a redelivery repeats.
    pub reference: Option<u16>,
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Unbind handshake completed (either side started it).
    Unbound,
    /// The SMSC refused the bind.
    BindRejected { status: CommandStatus },
    /// No bind_resp within `response_timeout`.
    BindTimedOut,
    /// enquire_link went unanswered: the link is dead even if the socket looks open.
    LinkDead,
    /// unbind went unanswered; we close anyway.
    UnbindTimedOut,
    /// The connection was lost (reported by the driver).
    ConnectionLost,
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Bound {
        system_id: String,
    },
    /// The final outcome of a request started with [`Session::submit`].
    Completed {
        token: u64,
        sequence_number: u32,
        outcome: Outcome,
    },
    Inbound(Inbound),
    /// A throttling response paused the session; the request will be re-sent.
    Throttled {
        status: CommandStatus,
        pause: Duration,
    },
    /// The SMSC sent something we could not decode (answered with generic_nack).
    Malformed {
        error: DecodeError,
    },
    /// The SMSC sent a command not allowed in this state, or one we do not handle (answered
    /// with generic_nack).
    Refused {
        command_id: CommandId,
        status: CommandStatus,
    },
    /// A response nobody was waiting for (late, after a timeout, or a confused peer).
    UnexpectedResponse {
        command_id: CommandId,
        sequence_number: u32,
    },
    Closed {
        reason: CloseReason,
    },
}

/// A request waiting for its response.
#[derive(Debug)]
enum RequestKind {
    Bind(BindMode),
    EnquireLink,
    Unbind,
    /// A submit: the caller's token, the frame (kept to re-send after throttling), and how
    /// often it was throttled so far.
    Submit {
        token: u64,
        frame: Bytes,
        throttled: u32,
    },
}

/// Counters the metrics layer reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub submits: u64,
    pub throttled: u64,
    pub malformed: u64,
}

/// One ESME session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    last_bound: Option<BindMode>,
    next_sequence: u32,
    outstanding: HashMap<u32, RequestKind>,
    /// Deadlines in send order (all requests share one timeout, so this stays sorted); entries
    /// whose request has completed are skipped lazily.
    deadlines: VecDeque<(Instant, u32)>,
    /// Submits counted against the window.
    submits_in_flight: usize,
    /// Submits waiting out a throttling pause, to be re-sent with a new sequence number.
    deferred: VecDeque<(u64, Bytes, u32)>,
    throttled_until: Option<Instant>,
    consecutive_throttles: u32,
    /// Inbound requests not yet acknowledged: sequence number → the command to answer.
    unacked: HashMap<u32, CommandId>,
    last_received: Instant,
    enquire_link_outstanding: bool,
    transmit: BytesMut,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Session {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self {
            config,
            state: State::Open,
            last_bound: None,
            next_sequence: 1,
            outstanding: HashMap::new(),
            deadlines: VecDeque::new(),
            submits_in_flight: 0,
            deferred: VecDeque::new(),
            throttled_until: None,
            consecutive_throttles: 0,
            unacked: HashMap::new(),
            last_received: now,
            enquire_link_outstanding: false,
            transmit: BytesMut::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Submits in flight (counted against the window) plus those waiting out a throttle.
    pub fn pending_submits(&self) -> usize {
        self.submits_in_flight + self.deferred.len()
    }

    /// Inbound messages handed out but not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Whether a submit would be accepted now (bound as a sender, window not full, not paused).
    pub fn can_submit(&self, now: Instant) -> bool {
        self.state.may_send(CommandId::SubmitSm, self.last_bound)
            && self.submits_in_flight + self.deferred.len() < self.config.window
            && self.throttled_until.is_none_or(|until| now >= until)
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// Starts the bind. Only in [`State::Open`].
    pub fn bind(&mut self, now: Instant) -> Result<(), SessionError> {
        let mode = self.config.bind_mode;
        let id = match mode {
            BindMode::Transmitter => CommandId::BindTransmitter,
            BindMode::Receiver => CommandId::BindReceiver,
            BindMode::Transceiver => CommandId::BindTransceiver,
        };
        self.check_send(id)?;
        let seq = self.next_sequence();
        let params = BindParams {
            system_id: &self.config.system_id,
            password: &self.config.password,
            system_type: &self.config.system_type,
            addr_ton: self.config.addr_ton,
            addr_npi: self.config.addr_npi,
            address_range: &self.config.address_range,
        };
        let command = encode::bind(mode, seq, &params)?;
        self.send(&command);
        self.expect(now, seq, RequestKind::Bind(mode));
        self.state = State::Binding(mode);
        Ok(())
    }

    /// Sends a request (submit_sm, data_sm, query_sm, ...) built with rusmpp; its sequence
    /// number is assigned here and returned. The outcome arrives as [`Event::Completed`] with
    /// `token`.
    pub fn submit(
        &mut self,
        now: Instant,
        token: u64,
        mut command: rusmpp::Command,
    ) -> Result<u32, SessionError> {
        self.check_send(CommandId::from(u32::from(command.id())))?;
        if let Some(until) = self.throttled_until.filter(|&until| now < until) {
            return Err(SessionError::Throttled { until });
        }
        if self.submits_in_flight + self.deferred.len() >= self.config.window {
            return Err(SessionError::WindowFull {
                window: self.config.window,
            });
        }
        let seq = self.next_sequence();
        command.sequence_number = seq;
        let frame = encode::to_frame(&command);
        self.send_frame(&frame);
        self.stats.submits += 1;
        self.submits_in_flight += 1;
        self.expect(
            now,
            seq,
            RequestKind::Submit {
                token,
                frame,
                throttled: 0,
            },
        );
        Ok(seq)
    }

    /// Acknowledges an inbound message handed out as [`Event::Inbound`]: ESME_ROK once it is
    /// stored, ESME_RX_T_APPN to have the SMSC deliver it again later. Unknown sequence numbers
    /// (already acknowledged, or from a previous connection) are ignored.
    pub fn ack(&mut self, sequence_number: u32, status: CommandStatus) {
        let Some(command_id) = self.unacked.remove(&sequence_number) else {
            return;
        };
        if self.state == State::Closed {
            return;
        }
        let response = match command_id {
            CommandId::DataSm => {
                encode::header_only(rusmpp::CommandId::DataSmResp, status, sequence_number)
            }
            _ => encode::deliver_sm_resp(sequence_number, status),
        };
        self.send(&response);
    }

    /// Starts the unbind handshake. Submits still in flight keep their deadlines; the driver
    /// should wait for [`Session::pending_submits`] to reach zero first.
    pub fn unbind(&mut self, now: Instant) -> Result<(), SessionError> {
        self.check_send(CommandId::Unbind)?;
        let seq = self.next_sequence();
        self.send(&encode::unbind(seq));
        self.expect(now, seq, RequestKind::Unbind);
        self.state = State::Unbinding;
        Ok(())
    }

    /// The driver lost the connection: everything outstanding is reported as lost; inbound
    /// messages not acknowledged will be redelivered by the SMSC.
    pub fn handle_close(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.close(CloseReason::ConnectionLost);
    }

    /// One frame from the SMSC (exactly `command_length` octets, as the codec cuts them).
    pub fn handle_frame(&mut self, now: Instant, frame: Bytes) {
        self.stats.frames_in += 1;
        self.last_received = now;
        let command = match decode(&frame) {
            Ok(command) => command,
            Err(error) => {
                self.stats.malformed += 1;
                if error.header.is_some() {
                    self.send(&encode::generic_nack(
                        error.sequence_number(),
                        error.command_status(),
                    ));
                }
                self.events.push_back(Event::Malformed { error });
                return;
            }
        };
        let id = command.command_id();
        if self.state == State::Closed {
            return;
        }
        if id.is_response() {
            self.handle_response(now, &command);
            return;
        }
        if !self.state.may_receive(id, self.last_bound) {
            // Unknown or out-of-state requests: generic_nack with the reason (SMPP 3.4 §2.4).
            let status = if matches!(command.pdu, Pdu::Other { .. }) && matrix::row(id).is_none() {
                CommandStatus::ESME_RINVCMDID
            } else {
                CommandStatus::ESME_RINVBNDSTS
            };
            self.send(&encode::generic_nack(command.sequence_number(), status));
            self.events.push_back(Event::Refused {
                command_id: id,
                status,
            });
            return;
        }
        self.handle_request(&frame, command);
    }

    /// Fires whatever is due at `now`: response deadlines, the throttling pause, enquire_link.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(outstanding) = self.outstanding.remove(&seq) {
                self.timed_out(seq, outstanding);
                if self.state == State::Closed {
                    return;
                }
            }
        }
        if self.throttled_until.is_some_and(|until| now >= until) {
            self.throttled_until = None;
            self.resend_deferred(now);
        }
        let idle = now.saturating_duration_since(self.last_received);
        if matches!(self.state, State::Bound(_))
            && !self.enquire_link_outstanding
            && idle >= self.config.enquire_link_interval
        {
            let seq = self.next_sequence();
            self.send(&encode::enquire_link(seq));
            self.expect(now, seq, RequestKind::EnquireLink);
            self.enquire_link_outstanding = true;
        }
    }

    // ---- outputs --------------------------------------------------------------------------

    /// Everything to write to the socket, as one buffer (frames are batched).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let deadline = self
            .deadlines
            .iter()
            .find(|(_, seq)| self.outstanding.contains_key(seq))
            .map(|&(at, _)| at);
        let enquire = (matches!(self.state, State::Bound(_)) && !self.enquire_link_outstanding)
            .then(|| self.last_received + self.config.enquire_link_interval);
        [deadline, enquire, self.throttled_until]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- internals ------------------------------------------------------------------------

    fn check_send(&self, id: CommandId) -> Result<(), SessionError> {
        if self.state.may_send(id, self.last_bound) {
            Ok(())
        } else {
            Err(SessionError::InvalidState {
                command: id.name(),
                state: self.state,
            })
        }
    }

    /// Sequence numbers run 1..=0x7FFF_FFFF and wrap (SMPP 3.4 §5.1.4).
    fn next_sequence(&mut self) -> u32 {
        let seq = self.next_sequence;
        self.next_sequence = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
        seq
    }

    fn send(&mut self, command: &rusmpp::Command) {
        encode::write_command(command, &mut self.transmit);
        self.stats.frames_out += 1;
    }

    fn send_frame(&mut self, frame: &[u8]) {
        self.transmit.extend_from_slice(frame);
        self.stats.frames_out += 1;
    }

    fn expect(&mut self, now: Instant, seq: u32, kind: RequestKind) {
        let deadline = now + self.config.response_timeout;
        self.outstanding.insert(seq, kind);
        self.deadlines.push_back((deadline, seq));
    }
}

#[cfg(test)]
mod tests;
