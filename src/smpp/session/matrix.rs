//! The SMPP 3.4 operation matrix for an ESME (§2.3 and the PDU definitions of §4): which
//! commands it may send and receive in which state. One row per command id; data, not code,
//! so it can be read against the specification.

use super::{BindMode, CommandId, State};

pub const OPEN: u8 = 1;
pub const TX: u8 = 2;
pub const RX: u8 = 4;
pub const TRX: u8 = 8;
const BOUND: u8 = TX | RX | TRX;
const SENDERS: u8 = TX | TRX;
const RECEIVERS: u8 = RX | TRX;

/// (command, states the ESME may send it in, states the ESME may receive it in).
pub const ROWS: &[(CommandId, u8, u8)] = &[
    (CommandId::BindTransmitter, OPEN, 0),
    (CommandId::BindReceiver, OPEN, 0),
    (CommandId::BindTransceiver, OPEN, 0),
    (CommandId::BindTransmitterResp, 0, OPEN),
    (CommandId::BindReceiverResp, 0, OPEN),
    (CommandId::BindTransceiverResp, 0, OPEN),
    (CommandId::Outbind, 0, OPEN),
    (CommandId::SubmitSm, SENDERS, 0),
    (CommandId::SubmitSmResp, 0, SENDERS),
    (CommandId::SubmitMulti, SENDERS, 0),
    (CommandId::SubmitMultiResp, 0, SENDERS),
    (CommandId::DataSm, SENDERS, RECEIVERS),
    (CommandId::DataSmResp, RECEIVERS, SENDERS),
    (CommandId::QuerySm, SENDERS, 0),
    (CommandId::QuerySmResp, 0, SENDERS),
    (CommandId::CancelSm, SENDERS, 0),
    (CommandId::CancelSmResp, 0, SENDERS),
    (CommandId::ReplaceSm, SENDERS, 0),
    (CommandId::ReplaceSmResp, 0, SENDERS),
    (CommandId::DeliverSm, 0, RECEIVERS),
    (CommandId::DeliverSmResp, RECEIVERS, 0),
    (CommandId::AlertNotification, 0, RECEIVERS),
    (CommandId::EnquireLink, BOUND, BOUND),
    (CommandId::EnquireLinkResp, BOUND, BOUND),
    (CommandId::Unbind, BOUND, BOUND),
    (CommandId::UnbindResp, BOUND, BOUND),
    (CommandId::GenericNack, OPEN | BOUND, OPEN | BOUND),
];

/// The matrix column of a state. Handshakes in progress count as the state they leave:
/// a session that is binding is still open; one that is unbinding is still bound (it must
/// finish acknowledging what it received, though it starts no new request).
pub fn column(state: State, last_bound: Option<BindMode>) -> u8 {
    let bound = |mode| match mode {
        BindMode::Transmitter => TX,
        BindMode::Receiver => RX,
        BindMode::Transceiver => TRX,
    };
    match state {
        State::Open | State::Binding(_) => OPEN,
        State::Bound(mode) => bound(mode),
        State::Unbinding => last_bound.map_or(0, bound),
        State::Closed => 0,
    }
}

pub fn row(id: CommandId) -> Option<(u8, u8)> {
    ROWS.iter()
        .find(|(row, _, _)| *row == id)
        .map(|&(_, send, receive)| (send, receive))
}
