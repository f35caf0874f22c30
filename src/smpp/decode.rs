//! The inbound PDU decoder: nom `complete` parsers over exactly one frame.
//!
//! The framing layer ([`codec`](super::codec)) has already cut the frame at `command_length`,
//! so running out of input here is an error, never "need more data". The decoder is strict
//! about structure (lengths, TLV boundaries) and tolerant where carriers are known to be
//! sloppy; each tolerance is named below and has a test in `protocol-tests/vectors.rs`:
//!
//! - **missing NUL on the last C-string**: a C-octet string that runs to the end of the body
//!   without a NUL takes the rest of the body (`submit_sm_resp` message ids, `bind_*_resp`
//!   system ids).
//! - **over-long C-strings**: addresses and ids longer than the specification's maximum are
//!   kept whole ([`COctetStr::within_spec`] tells); truncating an MSISDN would misroute a reply.
//! - **error responses without a body**: a response with a non-zero `command_status` and no
//!   body decodes with empty fields (SMPP 3.4 §4.4.2 allows it for submit_sm_resp; carriers do
//!   it for every response).
//! - **TLVs anywhere a body may end**: TLVs after the mandatory fields of responses (SMPP 5
//!   style) are accepted and kept.
//! - **known TLV with an odd length**: kept as [`TlvValue::Other`](super::pdu::TlvValue) instead
//!   of failing the PDU.
//!
//! It never panics: arbitrary input gives a [`DecodeError`] whose
//! [`command_status`](DecodeError::command_status) is what the `generic_nack` should carry.

use nom::{
    IResult, Parser,
    bytes::complete::take,
    error::{ErrorKind, ParseError},
    number::complete::{be_u8, be_u16, be_u32},
};

use super::pdu::{
    AlertNotification, Bind, BindResp, COctetStr, Command, CommandId, CommandStatus, DataSm,
    Header, Npi, Outbind, Pdu, QuerySm, QuerySmResp, Sm, SmResp, SubmitMultiResp, Tlvs, Ton,
    UnsuccessSme,
};

/// Why a frame could not be decoded, and the header when there was one to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", .header.map(|h| format!("{}: ", h.command_id.name())).unwrap_or_default())]
pub struct DecodeError {
    /// `None` only when the frame is shorter than a header (then there is nothing to answer).
    pub header: Option<Header>,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// The status a `generic_nack` for this frame carries (SMPP 3.4 §5.1.3).
    pub fn command_status(&self) -> CommandStatus {
        match self.kind {
            DecodeErrorKind::ShortMessageOverrun { .. } => CommandStatus::ESME_RINVMSGLEN,
            DecodeErrorKind::TlvOverrun { .. } | DecodeErrorKind::TlvHeaderTruncated { .. } => {
                CommandStatus::ESME_RINVOPTPARSTREAM
            }
            DecodeErrorKind::TooShort { .. }
            | DecodeErrorKind::LengthMismatch { .. }
            | DecodeErrorKind::Truncated { .. }
            | DecodeErrorKind::TrailingOctets { .. } => CommandStatus::ESME_RINVCMDLEN,
        }
    }

    /// The sequence number to answer with; 0 when the header was unreadable.
    pub fn sequence_number(&self) -> u32 {
        self.header.map_or(0, |h| h.sequence_number)
    }
}

/// What exactly was wrong; offsets count from the start of the body (after the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Fewer octets than the 16-octet header.
    #[error("frame of {actual} octets is shorter than the 16-octet header")]
    TooShort { actual: usize },
    /// `command_length` disagrees with the frame handed to the decoder.
    #[error("command_length is {declared} but the frame has {actual} octets")]
    LengthMismatch { declared: u32, actual: usize },
    /// The body ended inside a mandatory field.
    #[error("body ends inside {field} at offset {offset}")]
    Truncated { field: &'static str, offset: usize },
    /// `sm_length` points past the end of the body.
    #[error(
        "short_message at offset {offset} has sm_length {sm_length} but {available} octets are left"
    )]
    ShortMessageOverrun {
        sm_length: u8,
        offset: usize,
        available: usize,
    },
    /// Fewer than 4 octets left where a TLV header should start.
    #[error("{available} stray octets at offset {offset} where a tlv header should be")]
    TlvHeaderTruncated { offset: usize, available: usize },
    /// A TLV's length points past the end of the body.
    #[error("tlv 0x{tag:04x} at offset {offset} claims {length} octets but {available} are left")]
    TlvOverrun {
        tag: u16,
        offset: usize,
        length: usize,
        available: usize,
    },
    /// Octets after the last field of a PDU that has no TLVs (or no body at all).
    #[error("{count} unexpected octets at offset {offset} after the last field")]
    TrailingOctets { offset: usize, count: usize },
}

/// Decodes one frame (header and body, exactly `command_length` octets).
pub fn decode(frame: &[u8]) -> Result<Command<'_>, DecodeError> {
    let header = decode_header(frame)?;
    let body = &frame[Header::LEN..];
    let pdu = decode_body(header, body).map_err(|fault| DecodeError {
        header: Some(header),
        kind: fault.into_kind(body.len()),
    })?;
    Ok(Command { header, pdu })
}

/// Reads the header and checks `command_length` against the frame.
pub fn decode_header(frame: &[u8]) -> Result<Header, DecodeError> {
    let Some(octets) = frame.first_chunk::<{ Header::LEN }>() else {
        return Err(DecodeError {
            header: None,
            kind: DecodeErrorKind::TooShort {
                actual: frame.len(),
            },
        });
    };
    let word =
        |i: usize| u32::from_be_bytes([octets[i], octets[i + 1], octets[i + 2], octets[i + 3]]);
    let header = Header {
        command_length: word(0),
        command_id: CommandId::from(word(4)),
        command_status: CommandStatus(word(8)),
        sequence_number: word(12),
    };
    if header.command_length as usize != frame.len() {
        return Err(DecodeError {
            header: Some(header),
            kind: DecodeErrorKind::LengthMismatch {
                declared: header.command_length,
                actual: frame.len(),
            },
        });
    }
    Ok(header)
}

fn decode_body(header: Header, body: &[u8]) -> Result<Pdu<'_>, Fault> {
    use CommandId as Id;

    // Tolerance: error responses without a body.
    if body.is_empty()
        && !header.command_status.is_ok()
        && let Some(pdu) = empty_error_response(header.command_id)
    {
        return Ok(pdu);
    }
    match header.command_id {
        Id::BindTransmitter => whole(body, bind, Pdu::BindTransmitter),
        Id::BindReceiver => whole(body, bind, Pdu::BindReceiver),
        Id::BindTransceiver => whole(body, bind, Pdu::BindTransceiver),
        Id::BindTransmitterResp => whole(body, bind_resp, Pdu::BindTransmitterResp),
        Id::BindReceiverResp => whole(body, bind_resp, Pdu::BindReceiverResp),
        Id::BindTransceiverResp => whole(body, bind_resp, Pdu::BindTransceiverResp),
        Id::Outbind => whole(body, outbind, Pdu::Outbind),
        Id::SubmitSm => whole(body, sm, Pdu::SubmitSm),
        Id::DeliverSm => whole(body, sm, Pdu::DeliverSm),
        Id::SubmitSmResp => whole(body, sm_resp, Pdu::SubmitSmResp),
        Id::DeliverSmResp => whole(body, sm_resp, Pdu::DeliverSmResp),
        Id::DataSm => whole(body, data_sm, Pdu::DataSm),
        Id::DataSmResp => whole(body, sm_resp, Pdu::DataSmResp),
        Id::QuerySm => whole(body, query_sm, Pdu::QuerySm),
        Id::QuerySmResp => whole(body, query_sm_resp, Pdu::QuerySmResp),
        Id::SubmitMultiResp => whole(body, submit_multi_resp, Pdu::SubmitMultiResp),
        Id::AlertNotification => whole(body, alert_notification, Pdu::AlertNotification),
        Id::EnquireLink => empty(body, Pdu::EnquireLink),
        Id::EnquireLinkResp => empty(body, Pdu::EnquireLinkResp),
        Id::Unbind => empty(body, Pdu::Unbind),
        Id::UnbindResp => empty(body, Pdu::UnbindResp),
        Id::GenericNack => empty(body, Pdu::GenericNack),
        command_id => Ok(Pdu::Other { command_id, body }),
    }
}

fn empty_error_response(command_id: CommandId) -> Option<Pdu<'static>> {
    use CommandId as Id;
    Some(match command_id {
        Id::BindTransmitterResp => Pdu::BindTransmitterResp(BindResp::default()),
        Id::BindReceiverResp => Pdu::BindReceiverResp(BindResp::default()),
        Id::BindTransceiverResp => Pdu::BindTransceiverResp(BindResp::default()),
        Id::SubmitSmResp => Pdu::SubmitSmResp(SmResp::default()),
        Id::DeliverSmResp => Pdu::DeliverSmResp(SmResp::default()),
        Id::DataSmResp => Pdu::DataSmResp(SmResp::default()),
        Id::QuerySmResp => Pdu::QuerySmResp(QuerySmResp::default()),
        Id::SubmitMultiResp => Pdu::SubmitMultiResp(SubmitMultiResp::default()),
        _ => return None,
    })
}

/// Runs `parser` over the whole body; octets it leaves are an error.
fn whole<'a, T>(
    body: &'a [u8],
    parser: fn(&'a [u8]) -> Res<'a, T>,
    pdu: fn(T) -> Pdu<'a>,
) -> Result<Pdu<'a>, Fault> {
    match parser(body) {
        Ok(([], value)) => Ok(pdu(value)),
        Ok((rest, _)) => Err(Fault {
            what: What::Trailing,
            remaining: rest.len(),
        }),
        Err(nom::Err::Error(fault) | nom::Err::Failure(fault)) => Err(fault),
        // Only streaming parsers return Incomplete, and every parser here is `complete`.
        Err(nom::Err::Incomplete(_)) => Err(Fault {
            what: What::Truncated("body"),
            remaining: 0,
        }),
    }
}

fn empty(body: &[u8], pdu: Pdu<'static>) -> Result<Pdu<'static>, Fault> {
    if body.is_empty() {
        Ok(pdu)
    } else {
        Err(Fault {
            what: What::Trailing,
            remaining: body.len(),
        })
    }
}

// ---- nom plumbing -----------------------------------------------------------------------

type Res<'a, T> = IResult<&'a [u8], T, Fault>;

/// The parsers' error: what went wrong, and how much input was left (for the offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    what: What,
    remaining: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Truncated(&'static str),
    ShortMessage { sm_length: u8 },
    TlvHeader,
    Tlv { tag: u16, length: usize },
    Trailing,
}

impl Fault {
    fn into_kind(self, body_len: usize) -> DecodeErrorKind {
        let offset = body_len - self.remaining;
        let available = self.remaining;
        match self.what {
            What::Truncated(field) => DecodeErrorKind::Truncated { field, offset },
            What::ShortMessage { sm_length } => DecodeErrorKind::ShortMessageOverrun {
                sm_length,
                offset,
                available,
            },
            What::TlvHeader => DecodeErrorKind::TlvHeaderTruncated { offset, available },
            What::Tlv { tag, length } => DecodeErrorKind::TlvOverrun {
                tag,
                offset,
                length,
                available: available.saturating_sub(4),
            },
            What::Trailing => DecodeErrorKind::TrailingOctets {
                offset,
                count: available,
            },
        }
    }
}

impl ParseError<&[u8]> for Fault {
    fn from_error_kind(input: &[u8], _kind: ErrorKind) -> Self {
        Self {
            what: What::Truncated("field"),
            remaining: input.len(),
        }
    }

    fn append(_input: &[u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// A fixed-size integer field; running out of body names the field.
fn int<'a, T>(
    field: &'static str,
    mut parser: impl Parser<&'a [u8], Output = T, Error = Fault>,
) -> impl Parser<&'a [u8], Output = T, Error = Fault> {
    move |input: &'a [u8]| {
        parser.parse(input).map_err(|_| {
            nom::Err::Error(Fault {
                what: What::Truncated(field),
                remaining: input.len(),
            })
        })
    }
}

fn u8_field<'a>(field: &'static str) -> impl Parser<&'a [u8], Output = u8, Error = Fault> {
    int(field, be_u8)
}

/// The (type of number, numbering plan, address) triplet every addressed PDU repeats.
fn address<'a, const MAX: usize>(
    ton: &'static str,
    npi: &'static str,
) -> impl Parser<&'a [u8], Output = (Ton, Npi, COctetStr<'a, MAX>), Error = Fault> {
    move |i: &'a [u8]| {
        let (i, t) = u8_field(ton).parse(i)?;
        let (i, n) = u8_field(npi).parse(i)?;
        let (i, addr) = cstr(i)?;
        Ok((i, (Ton::from(t), Npi::from(n), addr)))
    }
}

/// A C-octet string: octets up to a NUL, which is consumed. When no NUL comes before the body
/// ends, the rest of the body is the value (tolerance: missing NUL on the last C-string); a
/// field after it then fails as truncated, so the tolerance only ever applies to the last one.
fn cstr<const MAX: usize>(input: &[u8]) -> Res<'_, COctetStr<'_, MAX>> {
    match input.iter().position(|&b| b == 0) {
        Some(nul) => Ok((&input[nul + 1..], COctetStr::new(&input[..nul]))),
        None => Ok((&input[input.len()..], COctetStr::new(input))),
    }
}

/// `sm_length` followed by that many octets of `short_message`.
fn short_message(input: &[u8]) -> Res<'_, &[u8]> {
    let (rest, sm_length) = u8_field("sm_length").parse(input)?;
    take(sm_length)(rest).map_err(|_: nom::Err<Fault>| {
        nom::Err::Failure(Fault {
            what: What::ShortMessage { sm_length },
            remaining: rest.len(),
        })
    })
}

/// The TLV area: everything left in the body, checked so that each TLV header is complete and
/// each length fits, and handed on as one slice (no allocation).
fn tlvs(input: &[u8]) -> Res<'_, Tlvs<'_>> {
    let mut rest = input;
    while !rest.is_empty() {
        let header: Res<'_, (u16, u16)> = (be_u16, be_u16).parse(rest);
        let Ok((after, (tag, length))) = header else {
            return Err(nom::Err::Failure(Fault {
                what: What::TlvHeader,
                remaining: rest.len(),
            }));
        };
        let value: Res<'_, &[u8]> = take(length)(after);
        let Ok((next, _)) = value else {
            return Err(nom::Err::Failure(Fault {
                what: What::Tlv {
                    tag,
                    length: usize::from(length),
                },
                remaining: rest.len(),
            }));
        };
        rest = next;
    }
    Ok((rest, Tlvs::checked(input)))
}

// ---- PDU bodies ---------------------------------------------------------------------------

fn bind(i: &[u8]) -> Res<'_, Bind<'_>> {
    let (i, system_id) = cstr(i)?;
    let (i, password) = cstr(i)?;
    let (i, system_type) = cstr(i)?;
    let (i, interface_version) = u8_field("interface_version").parse(i)?;
    let (i, addr_ton) = u8_field("addr_ton").parse(i)?;
    let (i, addr_npi) = u8_field("addr_npi").parse(i)?;
    let (i, address_range) = cstr(i)?;
    Ok((
        i,
        Bind {
            system_id,
            password,
            system_type,
            interface_version,
            addr_ton: addr_ton.into(),
            addr_npi: addr_npi.into(),
            address_range,
        },
    ))
}

fn bind_resp(i: &[u8]) -> Res<'_, BindResp<'_>> {
    let (i, system_id) = cstr(i)?;
    let (i, tlvs) = tlvs(i)?;
    Ok((i, BindResp { system_id, tlvs }))
}

fn outbind(i: &[u8]) -> Res<'_, Outbind<'_>> {
    let (i, system_id) = cstr(i)?;
    let (i, password) = cstr(i)?;
    Ok((
        i,
        Outbind {
            system_id,
            password,
        },
    ))
}

fn sm(i: &[u8]) -> Res<'_, Sm<'_>> {
    let (i, service_type) = cstr(i)?;
    let (i, (source_addr_ton, source_addr_npi, source_addr)) =
        address("source_addr_ton", "source_addr_npi").parse(i)?;
    let (i, (dest_addr_ton, dest_addr_npi, destination_addr)) =
        address("dest_addr_ton", "dest_addr_npi").parse(i)?;
    let (i, esm_class) = u8_field("esm_class").parse(i)?;
    let (i, protocol_id) = u8_field("protocol_id").parse(i)?;
    let (i, priority_flag) = u8_field("priority_flag").parse(i)?;
    let (i, schedule_delivery_time) = cstr(i)?;
    let (i, validity_period) = cstr(i)?;
    let (i, registered_delivery) = u8_field("registered_delivery").parse(i)?;
    let (i, replace_if_present_flag) = u8_field("replace_if_present_flag").parse(i)?;
    let (i, data_coding) = u8_field("data_coding").parse(i)?;
    let (i, sm_default_msg_id) = u8_field("sm_default_msg_id").parse(i)?;
    let (i, short_message) = short_message(i)?;
    let (i, tlvs) = tlvs(i)?;
    Ok((
        i,
        Sm {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class: super::pdu::EsmClass(esm_class),
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
            tlvs,
        },
    ))
}

fn sm_resp(i: &[u8]) -> Res<'_, SmResp<'_>> {
    let (i, message_id) = cstr(i)?;
    let (i, tlvs) = tlvs(i)?;
    Ok((i, SmResp { message_id, tlvs }))
}

fn data_sm(i: &[u8]) -> Res<'_, DataSm<'_>> {
    let (i, service_type) = cstr(i)?;
    let (i, (source_addr_ton, source_addr_npi, source_addr)) =
        address("source_addr_ton", "source_addr_npi").parse(i)?;
    let (i, (dest_addr_ton, dest_addr_npi, destination_addr)) =
        address("dest_addr_ton", "dest_addr_npi").parse(i)?;
    let (i, esm_class) = u8_field("esm_class").parse(i)?;
    let (i, registered_delivery) = u8_field("registered_delivery").parse(i)?;
    let (i, data_coding) = u8_field("data_coding").parse(i)?;
    let (i, tlvs) = tlvs(i)?;
    Ok((
        i,
        DataSm {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class: super::pdu::EsmClass(esm_class),
            registered_delivery,
            data_coding,
            tlvs,
        },
    ))
}

fn query_sm(i: &[u8]) -> Res<'_, QuerySm<'_>> {
    let (i, message_id) = cstr(i)?;
    let (i, (source_addr_ton, source_addr_npi, source_addr)) =
        address("source_addr_ton", "source_addr_npi").parse(i)?;
    Ok((
        i,
        QuerySm {
            message_id,
            source_addr_ton,
            source_addr_npi,
            source_addr,
        },
    ))
}

fn query_sm_resp(i: &[u8]) -> Res<'_, QuerySmResp<'_>> {
    let (i, message_id) = cstr(i)?;
    let (i, final_date) = cstr(i)?;
    let (i, message_state) = u8_field("message_state").parse(i)?;
    let (i, error_code) = u8_field("error_code").parse(i)?;
    Ok((
        i,
        QuerySmResp {
            message_id,
            final_date,
            message_state,
            error_code,
        },
    ))
}

fn submit_multi_resp(i: &[u8]) -> Res<'_, SubmitMultiResp<'_>> {
    let (mut i, message_id) = cstr(i)?;
    let (rest, no_unsuccess) = u8_field("no_unsuccess").parse(i)?;
    i = rest;
    let mut unsuccess_sme = Vec::with_capacity(usize::from(no_unsuccess));
    for _ in 0..no_unsuccess {
        let (rest, (dest_addr_ton, dest_addr_npi, destination_addr)) =
            address("unsuccess_sme.dest_addr_ton", "unsuccess_sme.dest_addr_npi").parse(i)?;
        let (rest, error_status_code) =
            int("unsuccess_sme.error_status_code", be_u32).parse(rest)?;
        unsuccess_sme.push(UnsuccessSme {
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            error_status_code: CommandStatus(error_status_code),
        });
        i = rest;
    }
    let (i, tlvs) = tlvs(i)?;
    Ok((
        i,
        SubmitMultiResp {
            message_id,
            unsuccess_sme,
            tlvs,
        },
    ))
}

fn alert_notification(i: &[u8]) -> Res<'_, AlertNotification<'_>> {
    let (i, (source_addr_ton, source_addr_npi, source_addr)) =
        address("source_addr_ton", "source_addr_npi").parse(i)?;
    let (i, (esme_addr_ton, esme_addr_npi, esme_addr)) =
        address("esme_addr_ton", "esme_addr_npi").parse(i)?;
    let (i, tlvs) = tlvs(i)?;
    Ok((
        i,
        AlertNotification {
            source_addr_ton,
            source_addr_npi,
            source_addr,
            esme_addr_ton,
            esme_addr_npi,
            esme_addr,
            tlvs,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(command_id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
        f.extend_from_slice(&command_id.to_be_bytes());
        f.extend_from_slice(&status.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn enquire_link_has_no_body() {
        let f = frame(0x15, 0, 7, b"");
        let cmd = decode(&f).unwrap();
        assert_eq!(cmd.pdu, Pdu::EnquireLink);
        assert_eq!(cmd.sequence_number(), 7);

        let f = frame(0x15, 0, 7, b"x");
        let err = decode(&f).unwrap_err();
        assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
        assert_eq!(err.sequence_number(), 7);
    }

    #[test]
    fn truncated_field_is_named() {
        // deliver_sm body that stops after source_addr.
        let f = frame(5, 0, 1, b"\0\x01\x01123\0");
        let err = decode(&f).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::Truncated {
                field: "dest_addr_ton",
                offset: 7
            }
        );
        assert_eq!(
            err.to_string(),
            "deliver_sm: body ends inside dest_addr_ton at offset 7"
        );
    }

    #[test]
    fn unknown_command_is_kept() {
        let f = frame(0x0000_1234, 0, 9, b"abc");
        let cmd = decode(&f).unwrap();
        assert_eq!(
            cmd.pdu,
            Pdu::Other {
                command_id: CommandId::Other(0x1234),
                body: b"abc"
            }
        );
    }
}
