//! Differential test: our nom decoder against rusmpp, on generated PDUs.
//!
//! # Method
//!
//! Proptest strategies generate a model of one PDU whose every field is within the SMPP 3.4
//! bounds: C-strings of printable ASCII up to the field's size (empty and full length included),
//! `schedule_delivery_time` / `validity_period` / `final_date` empty or exactly 16 characters,
//! any octet for the one-octet fields, 0..=254 octets of `short_message`, and up to four TLVs
//! with distinct tags from the set the PDU takes (SAR, `message_payload` of 0..=300 octets,
//! `receipted_message_id`, `message_state`, `network_error_code`, `user_message_reference`,
//! ports, unknown tags 0x1400..=0x14FF with random octets, ...). Sequence numbers are random;
//! responses get random statuses and keep their body whatever the status.
//!
//! The model is built into rusmpp's owned types and encoded with [`to_frame`]. Then, for every
//! frame:
//!
//! 1. rusmpp's own decoder ([`CommandCodec`]) must give back the very `Command` it came from:
//!    the sanity check that the generated PDU is valid (see [`encode_and_check_with_rusmpp`]);
//! 2. [`decode`] must accept it, and every field of our value is compared with the rusmpp value:
//!    the header (`command_length` against the frame), each mandatory field (C-strings as octets
//!    without the NUL, enums by wire value and by whether both sides have a name for it), each
//!    TLV (count, order, tag, length and value octets, against rusmpp's encoding of the value
//!    and against the model), the typed view of each TLV ([`pdu::Tlv::typed`]) and the typed
//!    accessors (`message_payload`, `sar`, `receipted_message_id`, `message_state`,
//!    `network_error_code`).
//!
//! # Case count
//!
//! The `CASES_*` constants give the cases per test (from 500 for outbind to 2 500 each for
//! submit_sm and deliver_sm); they sum to [`TOTAL_CASES`], 15 200 generated PDUs per
//! `cargo test`, and a `const` assertion keeps that at 5 000 or more. No strategy filters, so
//! every case counts. The whole module takes about 4 s in a debug build on two cores.
//!
//! # Where rusmpp is narrower than SMPP 3.4
//!
//! rusmpp is an SMPP 5 library, and its types bound what we can generate: `data_sm` addresses
//! are at most 20 characters (3.4 allows 64), `bind_*_resp` carries no TLV but
//! `sc_interface_version`, `alert_notification` none but `ms_availability_status`, and each PDU
//! takes only the TLVs of its rusmpp TLV set (no `receipted_message_id` on a `submit_sm`, say).
//! rusmpp also reads a zero-length TLV back without a value; [`assert_same_command`] allows
//! exactly that difference.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use proptest::{collection::vec, prelude::*, sample};
use rusmpp as rs;
use rusmpp::{
    tlvs::{
        MessageDeliveryRequestTlvValue as DeliveryTlv,
        MessageDeliveryResponseTlvValue as DeliveryRespTlv,
        MessageSubmissionRequestTlvValue as SubmissionTlv,
        MessageSubmissionResponseTlvValue as SubmissionRespTlv, TlvTag,
    },
    tokio_codec::CommandCodec,
    types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString},
    values as rv,
};
use smsflow::smpp::{
    decode,
    encode::to_frame,
    pdu::{self, COctetStr, Pdu, TlvValue, Tlvs, tag},
    udh::ConcatInfo,
};
use tokio_util::codec::Decoder as _;

// ---- case counts --------------------------------------------------------------------------

const CASES_BIND: u32 = 1_500;
const CASES_BIND_RESP: u32 = 1_500;
const CASES_OUTBIND: u32 = 500;
const CASES_SUBMIT_SM: u32 = 2_500;
const CASES_DELIVER_SM: u32 = 2_500;
const CASES_DATA_SM: u32 = 1_200;
const CASES_SUBMIT_SM_RESP: u32 = 800;
const CASES_DELIVER_SM_RESP: u32 = 800;
const CASES_DATA_SM_RESP: u32 = 800;
const CASES_QUERY_SM: u32 = 500;
const CASES_QUERY_SM_RESP: u32 = 500;
const CASES_SUBMIT_MULTI_RESP: u32 = 800;
const CASES_ALERT_NOTIFICATION: u32 = 500;
const CASES_HEADER_ONLY: u32 = 800;

/// Generated PDUs per `cargo test`.
const TOTAL_CASES: u32 = CASES_BIND
    + CASES_BIND_RESP
    + CASES_OUTBIND
    + CASES_SUBMIT_SM
    + CASES_DELIVER_SM
    + CASES_DATA_SM
    + CASES_SUBMIT_SM_RESP
    + CASES_DELIVER_SM_RESP
    + CASES_DATA_SM_RESP
    + CASES_QUERY_SM
    + CASES_QUERY_SM_RESP
    + CASES_SUBMIT_MULTI_RESP
    + CASES_ALERT_NOTIFICATION
    + CASES_HEADER_ONLY;

const _: () = assert!(
    TOTAL_CASES >= 5_000,
    "the acceptance criterion is 5 000 PDUs"
);

/// No generated frame is longer (rusmpp's codec refuses longer ones by default).
const MAX_FRAME: usize = 8 * 1024;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---- the model ----------------------------------------------------------------------------

/// One TLV as generated: the oracle for the octets on the wire, independent of rusmpp.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Param {
    SarMsgRefNum(u16),
    SarTotalSegments(u8),
    SarSegmentSeqnum(u8),
    MessagePayload(Vec<u8>),
    ReceiptedMessageId(String),
    MessageState(u8),
    NetworkErrorCode { network_type: u8, error_code: u16 },
    UserMessageReference(u16),
    SourcePort(u16),
    DestPort(u16),
    DeliveryFailureReason(u8),
    AdditionalStatusInfoText(String),
    ScInterfaceVersion(u8),
    MsAvailabilityStatus(u8),
    Unknown { tag: u16, value: Vec<u8> },
}

impl Param {
    fn tag(&self) -> u16 {
        match self {
            Self::SarMsgRefNum(_) => tag::SAR_MSG_REF_NUM,
            Self::SarTotalSegments(_) => tag::SAR_TOTAL_SEGMENTS,
            Self::SarSegmentSeqnum(_) => tag::SAR_SEGMENT_SEQNUM,
            Self::MessagePayload(_) => tag::MESSAGE_PAYLOAD,
            Self::ReceiptedMessageId(_) => tag::RECEIPTED_MESSAGE_ID,
            Self::MessageState(_) => tag::MESSAGE_STATE,
            Self::NetworkErrorCode { .. } => tag::NETWORK_ERROR_CODE,
            Self::UserMessageReference(_) => tag::USER_MESSAGE_REFERENCE,
            Self::SourcePort(_) => tag::SOURCE_PORT,
            Self::DestPort(_) => tag::DESTINATION_PORT,
            Self::DeliveryFailureReason(_) => tag::DELIVERY_FAILURE_REASON,
            Self::AdditionalStatusInfoText(_) => tag::ADDITIONAL_STATUS_INFO_TEXT,
            Self::ScInterfaceVersion(_) => tag::SC_INTERFACE_VERSION,
            Self::MsAvailabilityStatus(_) => tag::MS_AVAILABILITY_STATUS,
            Self::Unknown { tag, .. } => *tag,
        }
    }

    /// The value octets as SMPP 3.4 §5.3.2 lays them out.
    fn value(&self) -> Vec<u8> {
        match self {
            Self::SarMsgRefNum(v)
            | Self::UserMessageReference(v)
            | Self::SourcePort(v)
            | Self::DestPort(v) => v.to_be_bytes().to_vec(),
            Self::SarTotalSegments(v)
            | Self::SarSegmentSeqnum(v)
            | Self::MessageState(v)
            | Self::DeliveryFailureReason(v)
            | Self::ScInterfaceVersion(v)
            | Self::MsAvailabilityStatus(v) => vec![*v],
            Self::MessagePayload(v) | Self::Unknown { value: v, .. } => v.clone(),
            Self::ReceiptedMessageId(s) | Self::AdditionalStatusInfoText(s) => {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                v
            }
            Self::NetworkErrorCode {
                network_type,
                error_code,
            } => {
                let [hi, lo] = error_code.to_be_bytes();
                vec![*network_type, hi, lo]
            }
        }
    }

    /// What [`pdu::Tlv::typed`] must make of this TLV.
    fn typed(&self) -> TlvValue<'_> {
        match self {
            Self::SarMsgRefNum(v) => TlvValue::SarMsgRefNum(*v),
            Self::SarTotalSegments(v) => TlvValue::SarTotalSegments(*v),
            Self::SarSegmentSeqnum(v) => TlvValue::SarSegmentSeqnum(*v),
            Self::MessagePayload(v) => TlvValue::MessagePayload(v),
            Self::ReceiptedMessageId(s) => {
                TlvValue::ReceiptedMessageId(COctetStr::new(s.as_bytes()))
            }
            Self::MessageState(v) => TlvValue::MessageState(*v),
            Self::NetworkErrorCode {
                network_type,
                error_code,
            } => TlvValue::NetworkErrorCode {
                network_type: *network_type,
                error_code: *error_code,
            },
            Self::UserMessageReference(v) => TlvValue::UserMessageReference(*v),
            Self::SourcePort(v) => TlvValue::SourcePort(*v),
            Self::DestPort(v) => TlvValue::DestinationPort(*v),
            Self::DeliveryFailureReason(v) => TlvValue::DeliveryFailureReason(*v),
            Self::AdditionalStatusInfoText(s) => {
                TlvValue::AdditionalStatusInfoText(COctetStr::new(s.as_bytes()))
            }
            Self::ScInterfaceVersion(v) => TlvValue::ScInterfaceVersion(*v),
            Self::MsAvailabilityStatus(v) => TlvValue::MsAvailabilityStatus(*v),
            Self::Unknown { tag, value } => TlvValue::Other { tag: *tag, value },
        }
    }

    fn unknown(&self) -> Option<(TlvTag, AnyOctetString)> {
        match self {
            Self::Unknown { tag, value } => {
                Some((TlvTag::from(*tag), AnyOctetString::from_vec(value.clone())))
            }
            _ => None,
        }
    }

    /// As a TLV of submit_sm / data_sm.
    fn submission(&self) -> SubmissionTlv {
        match self {
            Self::SarMsgRefNum(v) => SubmissionTlv::SarMsgRefNum(*v),
            Self::SarTotalSegments(v) => SubmissionTlv::SarTotalSegments(*v),
            Self::SarSegmentSeqnum(v) => SubmissionTlv::SarSegmentSeqnum(*v),
            Self::MessagePayload(v) => SubmissionTlv::MessagePayload(payload(v)),
            Self::UserMessageReference(v) => {
                SubmissionTlv::UserMessageReference(rv::UserMessageReference::new(*v))
            }
            Self::SourcePort(v) => SubmissionTlv::SourcePort(*v),
            Self::DestPort(v) => SubmissionTlv::DestPort(*v),
            other => match other.unknown() {
                Some((tag, value)) => SubmissionTlv::Other { tag, value },
                None => panic!("{other:?} is not generated for submit_sm / data_sm"),
            },
        }
    }

    /// As a TLV of deliver_sm.
    fn delivery(&self) -> DeliveryTlv {
        match self {
            Self::SarMsgRefNum(v) => DeliveryTlv::SarMsgRefNum(*v),
            Self::SarTotalSegments(v) => DeliveryTlv::SarTotalSegments(*v),
            Self::SarSegmentSeqnum(v) => DeliveryTlv::SarSegmentSeqnum(*v),
            Self::MessagePayload(v) => DeliveryTlv::MessagePayload(payload(v)),
            Self::ReceiptedMessageId(s) => DeliveryTlv::ReceiptedMessageId(cstring(s)),
            Self::MessageState(v) => DeliveryTlv::MessageState(rv::MessageState::from(*v)),
            Self::NetworkErrorCode {
                network_type,
                error_code,
            } => DeliveryTlv::NetworkErrorCode(network_error_code(*network_type, *error_code)),
            Self::UserMessageReference(v) => {
                DeliveryTlv::UserMessageReference(rv::UserMessageReference::new(*v))
            }
            Self::SourcePort(v) => DeliveryTlv::SourcePort(*v),
            Self::DestPort(v) => DeliveryTlv::DestPort(*v),
            other => match other.unknown() {
                Some((tag, value)) => DeliveryTlv::Other { tag, value },
                None => panic!("{other:?} is not generated for deliver_sm"),
            },
        }
    }

    /// As a TLV of submit_sm_resp.
    fn submission_response(&self) -> SubmissionRespTlv {
        match self {
            Self::NetworkErrorCode {
                network_type,
                error_code,
            } => {
                SubmissionRespTlv::NetworkErrorCode(network_error_code(*network_type, *error_code))
            }
            Self::DeliveryFailureReason(v) => {
                SubmissionRespTlv::DeliveryFailureReason(rv::DeliveryFailureReason::from(*v))
            }
            Self::AdditionalStatusInfoText(s) => {
                SubmissionRespTlv::AdditionalStatusInfoText(cstring(s))
            }
            other => match other.unknown() {
                Some((tag, value)) => SubmissionRespTlv::Other { tag, value },
                None => panic!("{other:?} is not generated for submit_sm_resp"),
            },
        }
    }

    /// As a TLV of deliver_sm_resp / data_sm_resp.
    fn delivery_response(&self) -> DeliveryRespTlv {
        match self {
            Self::NetworkErrorCode {
                network_type,
                error_code,
            } => DeliveryRespTlv::NetworkErrorCode(network_error_code(*network_type, *error_code)),
            Self::DeliveryFailureReason(v) => {
                DeliveryRespTlv::DeliveryFailureReason(rv::DeliveryFailureReason::from(*v))
            }
            Self::AdditionalStatusInfoText(s) => {
                DeliveryRespTlv::AdditionalStatusInfoText(cstring(s))
            }
            other => match other.unknown() {
                Some((tag, value)) => DeliveryRespTlv::Other { tag, value },
                None => panic!("{other:?} is not generated for deliver_sm_resp / data_sm_resp"),
            },
        }
    }
}

fn payload(octets: &[u8]) -> rv::MessagePayload {
    rv::MessagePayload::new(AnyOctetString::from_vec(octets.to_vec()))
}

fn network_error_code(network_type: u8, error_code: u16) -> rv::NetworkErrorCode {
    rv::NetworkErrorCode::new(rv::ErrorCodeNetworkType::from(network_type), error_code)
}

/// A rusmpp C-octet string from generated text (the strategies keep it within `MAX`).
fn cstring<const MIN: usize, const MAX: usize>(text: &str) -> COctetString<MIN, MAX> {
    COctetString::from_string(text.to_owned())
        .unwrap_or_else(|e| panic!("{text:?} does not fit COctetString<{MIN}, {MAX}>: {e:?}"))
}

fn time(text: &str) -> EmptyOrFullCOctetString<17> {
    EmptyOrFullCOctetString::from_string(text.to_owned())
        .unwrap_or_else(|e| panic!("{text:?} is neither empty nor 16 characters: {e:?}"))
}

#[derive(Debug, Clone)]
struct Address {
    ton: u8,
    npi: u8,
    addr: String,
}

/// submit_sm and deliver_sm.
#[derive(Debug, Clone)]
struct ShortMessage {
    service_type: String,
    source: Address,
    destination: Address,
    esm_class: u8,
    protocol_id: u8,
    priority_flag: u8,
    schedule_delivery_time: String,
    validity_period: String,
    registered_delivery: u8,
    replace_if_present_flag: u8,
    data_coding: u8,
    sm_default_msg_id: u8,
    short_message: Vec<u8>,
    params: Vec<Param>,
}

/// The 18 constructor arguments shared by `SubmitSm::new` and `DeliverSm::new`.
macro_rules! new_sm {
    ($ty:ty, $m:expr, $tlvs:expr) => {{
        let m: &ShortMessage = $m;
        <$ty>::new(
            rv::ServiceType::new(cstring(&m.service_type)),
            rv::Ton::from(m.source.ton),
            rv::Npi::from(m.source.npi),
            cstring(&m.source.addr),
            rv::Ton::from(m.destination.ton),
            rv::Npi::from(m.destination.npi),
            cstring(&m.destination.addr),
            rv::EsmClass::from(m.esm_class),
            m.protocol_id,
            rv::PriorityFlag::from(m.priority_flag),
            time(&m.schedule_delivery_time),
            time(&m.validity_period),
            rv::RegisteredDelivery::from(m.registered_delivery),
            rv::ReplaceIfPresentFlag::from(m.replace_if_present_flag),
            rv::DataCoding::from(m.data_coding),
            m.sm_default_msg_id,
            OctetString::from_vec(m.short_message.clone())
                .expect("short_message is at most 254 octets"),
            $tlvs,
        )
    }};
}

impl ShortMessage {
    fn submit_sm(&self) -> rs::pdus::SubmitSm {
        new_sm!(
            rs::pdus::SubmitSm,
            self,
            self.params.iter().map(Param::submission).collect()
        )
    }

    fn deliver_sm(&self) -> rs::pdus::DeliverSm {
        new_sm!(
            rs::pdus::DeliverSm,
            self,
            self.params.iter().map(Param::delivery).collect()
        )
    }
}

#[derive(Debug, Clone)]
struct DataSm {
    service_type: String,
    source: Address,
    destination: Address,
    esm_class: u8,
    registered_delivery: u8,
    data_coding: u8,
    params: Vec<Param>,
}

impl DataSm {
    fn rusmpp(&self) -> rs::pdus::DataSm {
        rs::pdus::DataSm::new(
            rv::ServiceType::new(cstring(&self.service_type)),
            rv::Ton::from(self.source.ton),
            rv::Npi::from(self.source.npi),
            cstring(&self.source.addr),
            rv::Ton::from(self.destination.ton),
            rv::Npi::from(self.destination.npi),
            cstring(&self.destination.addr),
            rv::EsmClass::from(self.esm_class),
            rv::RegisteredDelivery::from(self.registered_delivery),
            rv::DataCoding::from(self.data_coding),
            self.params.iter().map(Param::submission).collect(),
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum BindMode {
    Transmitter,
    Receiver,
    Transceiver,
}

#[derive(Debug, Clone)]
struct Bind {
    mode: BindMode,
    system_id: String,
    password: String,
    system_type: String,
    interface_version: u8,
    address: Address,
}

impl Bind {
    fn rusmpp(&self) -> rs::Pdu {
        macro_rules! new_bind {
            ($ty:ty) => {
                <$ty>::new(
                    cstring(&self.system_id),
                    cstring(&self.password),
                    cstring(&self.system_type),
                    rv::InterfaceVersion::from(self.interface_version),
                    rv::Ton::from(self.address.ton),
                    rv::Npi::from(self.address.npi),
                    cstring(&self.address.addr),
                )
                .into()
            };
        }
        match self.mode {
            BindMode::Transmitter => new_bind!(rs::pdus::BindTransmitter),
            BindMode::Receiver => new_bind!(rs::pdus::BindReceiver),
            BindMode::Transceiver => new_bind!(rs::pdus::BindTransceiver),
        }
    }
}

#[derive(Debug, Clone)]
struct BindResp {
    mode: BindMode,
    system_id: String,
    sc_interface_version: Option<u8>,
}

impl BindResp {
    fn rusmpp(&self) -> rs::Pdu {
        let system_id = cstring(&self.system_id);
        let version = self.sc_interface_version.map(rv::InterfaceVersion::from);
        match self.mode {
            BindMode::Transmitter => rs::pdus::BindTransmitterResp::new(system_id, version).into(),
            BindMode::Receiver => rs::pdus::BindReceiverResp::new(system_id, version).into(),
            BindMode::Transceiver => rs::pdus::BindTransceiverResp::new(system_id, version).into(),
        }
    }

    fn params(&self) -> Vec<Param> {
        self.sc_interface_version
            .map(Param::ScInterfaceVersion)
            .into_iter()
            .collect()
    }
}

/// submit_sm_resp, deliver_sm_resp, data_sm_resp.
#[derive(Debug, Clone)]
struct SmResp {
    message_id: String,
    params: Vec<Param>,
}

#[derive(Debug, Clone)]
struct UnsuccessSme {
    destination: Address,
    error_status_code: u32,
}

#[derive(Debug, Clone, Copy)]
enum HeaderOnly {
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
}

// ---- strategies ---------------------------------------------------------------------------

/// Printable ASCII of at most `max` characters; empty and full length get their own weight.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => vec(0x20u8..=0x7e, max),
        6 => vec(0x20u8..=0x7e, 0..=max),
    ]
    .prop_map(|octets| String::from_utf8(octets).expect("printable ASCII is UTF-8"))
}

/// An absolute or relative time field: empty, or exactly 16 characters.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(Vec::new()), vec(0x20u8..=0x7e, 16)]
        .prop_map(|octets| String::from_utf8(octets).expect("printable ASCII is UTF-8"))
}

fn address(max: usize) -> impl Strategy<Value = Address> {
    (any::<u8>(), any::<u8>(), text(max)).prop_map(|(ton, npi, addr)| Address { ton, npi, addr })
}

/// SMPP 3.4 §5.1.4: 0x00000001..=0x7FFFFFFF.
fn sequence_number() -> impl Strategy<Value = u32> {
    1u32..=0x7FFF_FFFF
}

const COMMON_ERRORS: &[u32] = &[
    0x01, 0x03, 0x04, 0x08, 0x0A, 0x0B, 0x0D, 0x0E, 0x0F, 0x14, 0x45, 0x58, 0x61, 0x64, 0x65, 0x66,
    0x67, 0xC0, 0xC4, 0xFE, 0xFF,
];

/// A response status: mostly OK, often a specified error, sometimes vendor-specific or any.
fn response_status() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => Just(0),
        2 => sample::select(COMMON_ERRORS),
        1 => 0x0400u32..=0x04FF,
        1 => any::<u32>(),
    ]
}

fn bind_mode() -> impl Strategy<Value = BindMode> {
    prop_oneof![
        Just(BindMode::Transmitter),
        Just(BindMode::Receiver),
        Just(BindMode::Transceiver),
    ]
}

fn unknown_param() -> impl Strategy<Value = Param> {
    (0x1400u16..=0x14FF, vec(any::<u8>(), 0..=32))
        .prop_map(|(tag, value)| Param::Unknown { tag, value })
}

fn network_error_code_param() -> impl Strategy<Value = Param> {
    (any::<u8>(), any::<u16>()).prop_map(|(network_type, error_code)| Param::NetworkErrorCode {
        network_type,
        error_code,
    })
}

/// TLVs submit_sm and data_sm take (MessageSubmissionRequestTlvValue).
fn submission_param() -> BoxedStrategy<Param> {
    prop_oneof![
        any::<u16>().prop_map(Param::SarMsgRefNum),
        any::<u8>().prop_map(Param::SarTotalSegments),
        any::<u8>().prop_map(Param::SarSegmentSeqnum),
        vec(any::<u8>(), 0..=300).prop_map(Param::MessagePayload),
        any::<u16>().prop_map(Param::UserMessageReference),
        any::<u16>().prop_map(Param::SourcePort),
        any::<u16>().prop_map(Param::DestPort),
        unknown_param(),
    ]
    .boxed()
}

/// TLVs deliver_sm takes (MessageDeliveryRequestTlvValue): the above and the receipt ones.
fn delivery_param() -> BoxedStrategy<Param> {
    prop_oneof![
        8 => submission_param(),
        1 => text(64).prop_map(Param::ReceiptedMessageId),
        1 => any::<u8>().prop_map(Param::MessageState),
        1 => network_error_code_param(),
    ]
    .boxed()
}

/// TLVs the message responses take (both response TLV sets).
fn response_param() -> BoxedStrategy<Param> {
    prop_oneof![
        network_error_code_param(),
        any::<u8>().prop_map(Param::DeliveryFailureReason),
        text(255).prop_map(Param::AdditionalStatusInfoText),
        unknown_param(),
    ]
    .boxed()
}

/// A TLV may appear once per PDU; keeps the first of each tag.
fn distinct_tags(params: Vec<Param>) -> Vec<Param> {
    let mut seen = HashSet::new();
    params
        .into_iter()
        .filter(|p| seen.insert(p.tag()))
        .collect()
}

/// 0..=4 TLVs of a request; a quarter of the time a complete SAR triple among them, so that
/// `Tlvs::sar` sees all three.
fn request_params(param: BoxedStrategy<Param>) -> impl Strategy<Value = Vec<Param>> {
    let sar = (
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        vec(param.clone(), 0..=1),
    )
        .prop_map(|(reference, total, seq, mut params)| {
            params.extend([
                Param::SarMsgRefNum(reference),
                Param::SarTotalSegments(total),
                Param::SarSegmentSeqnum(seq),
            ]);
            params
        })
        .prop_shuffle();
    prop_oneof![3 => vec(param, 0..=4), 1 => sar].prop_map(distinct_tags)
}

fn response_params() -> impl Strategy<Value = Vec<Param>> {
    vec(response_param(), 0..=4).prop_map(distinct_tags)
}

prop_compose! {
    fn short_message(param: BoxedStrategy<Param>)(
        service_type in text(5),
        source in address(20),
        destination in address(20),
        esm_class in any::<u8>(),
        protocol_id in any::<u8>(),
        priority_flag in any::<u8>(),
        schedule_delivery_time in time_text(),
        validity_period in time_text(),
        registered_delivery in any::<u8>(),
        replace_if_present_flag in any::<u8>(),
        data_coding in any::<u8>(),
        sm_default_msg_id in any::<u8>(),
        short_message in vec(any::<u8>(), 0..=254),
        params in request_params(param),
    ) -> ShortMessage {
        ShortMessage {
            service_type,
            source,
            destination,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
            params,
        }
    }
}

prop_compose! {
    fn data_sm()(
        service_type in text(5),
        // SMPP 3.4 allows 64 characters; rusmpp's DataSm takes 20.
        source in address(20),
        destination in address(20),
        esm_class in any::<u8>(),
        registered_delivery in any::<u8>(),
        data_coding in any::<u8>(),
        params in request_params(submission_param()),
    ) -> DataSm {
        DataSm {
            service_type,
            source,
            destination,
            esm_class,
            registered_delivery,
            data_coding,
            params,
        }
    }
}

prop_compose! {
    fn bind()(
        mode in bind_mode(),
        system_id in text(15),
        password in text(8),
        system_type in text(12),
        interface_version in prop_oneof![Just(0x34u8), any::<u8>()],
        address in address(40),
    ) -> Bind {
        Bind { mode, system_id, password, system_type, interface_version, address }
    }
}

prop_compose! {
    fn bind_resp()(
        mode in bind_mode(),
        system_id in text(15),
        sc_interface_version in proptest::option::of(prop_oneof![Just(0x34u8), any::<u8>()]),
    ) -> BindResp {
        BindResp { mode, system_id, sc_interface_version }
    }
}

prop_compose! {
    fn sm_resp()(message_id in text(64), params in response_params()) -> SmResp {
        SmResp { message_id, params }
    }
}

fn unsuccess_sme() -> impl Strategy<Value = UnsuccessSme> {
    (
        address(20),
        prop_oneof![sample::select(COMMON_ERRORS), any::<u32>()],
    )
        .prop_map(|(destination, error_status_code)| UnsuccessSme {
            destination,
            error_status_code,
        })
}

fn header_only() -> impl Strategy<Value = HeaderOnly> {
    prop_oneof![
        Just(HeaderOnly::EnquireLink),
        Just(HeaderOnly::EnquireLinkResp),
        Just(HeaderOnly::Unbind),
        Just(HeaderOnly::UnbindResp),
        Just(HeaderOnly::GenericNack),
    ]
}

// ---- running one case ---------------------------------------------------------------------

fn command(status: u32, sequence_number: u32, pdu: impl Into<rs::Pdu>) -> rs::Command {
    rs::Command::new(rs::CommandStatus::from(status), sequence_number, pdu)
}

/// Encodes `command` with our encoder and checks that rusmpp's own decoder reads the frame back
/// as the same command (the generated PDU is valid), with nothing left over.
fn encode_and_check_with_rusmpp(command: &rs::Command) -> Bytes {
    let frame = to_frame(command);
    assert!(
        frame.len() <= MAX_FRAME,
        "generated frame of {} octets is over 8 KiB",
        frame.len()
    );
    let mut buf = BytesMut::from(&frame[..]);
    let decoded = CommandCodec::new()
        .decode(&mut buf)
        .unwrap_or_else(|e| {
            panic!(
                "rusmpp rejects the frame: {e}\nframe: {}",
                hex::encode(&frame)
            )
        })
        .unwrap_or_else(|| {
            panic!(
                "rusmpp wants more than the whole frame: {}",
                hex::encode(&frame)
            )
        });
    assert!(buf.is_empty(), "rusmpp left {} octets unread", buf.len());
    assert_same_command(&decoded, command, &frame);
    frame
}

/// rusmpp's decoded `command` against the one it was built from.
///
/// rusmpp reads a zero-length TLV back with no value (`Tlv { value: None, .. }`) where its
/// constructor made `Some` of an empty value; that is the one difference allowed, and then the
/// decoded command must still encode to the very same frame.
fn assert_same_command(decoded: &rs::Command, command: &rs::Command, frame: &[u8]) {
    if decoded == command {
        return;
    }
    let (read, built) = (tlvs_of(decoded), tlvs_of(command));
    assert_eq!(
        read.len(),
        built.len(),
        "rusmpp reads back another tlv count"
    );
    for (read, built) in read.iter().zip(built) {
        let empty_read_as_none = built.value_length() == 0
            && read.value_length() == 0
            && read.tag() == built.tag()
            && read.value().is_none();
        assert!(
            read == built || empty_read_as_none,
            "rusmpp reads back {read:?} for {built:?}"
        );
    }
    assert_eq!(
        &to_frame(decoded)[..],
        frame,
        "rusmpp does not read back what it wrote:\n{decoded:?}\nfrom\n{command:?}"
    );
}

/// The TLVs of a rusmpp PDU, for the kinds generated here.
fn tlvs_of(command: &rs::Command) -> &[rs::tlvs::Tlv] {
    match command.pdu() {
        Some(rs::Pdu::SubmitSm(p)) => p.tlvs(),
        Some(rs::Pdu::DeliverSm(p)) => p.tlvs(),
        Some(rs::Pdu::DataSm(p)) => p.tlvs(),
        Some(rs::Pdu::SubmitSmResp(p)) => p.tlvs(),
        Some(rs::Pdu::DeliverSmResp(p)) => p.tlvs(),
        Some(rs::Pdu::DataSmResp(p)) => p.tlvs(),
        Some(rs::Pdu::SubmitMultiResp(p)) => p.tlvs(),
        Some(rs::Pdu::BindTransmitterResp(p)) => tlv_slice(p.sc_interface_version_tlv()),
        Some(rs::Pdu::BindReceiverResp(p)) => tlv_slice(p.sc_interface_version_tlv()),
        Some(rs::Pdu::BindTransceiverResp(p)) => tlv_slice(p.sc_interface_version_tlv()),
        Some(rs::Pdu::AlertNotification(p)) => tlv_slice(p.ms_availability_status_tlv()),
        _ => &[],
    }
}

fn tlv_slice(tlv: Option<&rs::tlvs::Tlv>) -> &[rs::tlvs::Tlv] {
    tlv.map_or(&[], std::slice::from_ref)
}

/// Decodes `frame` with our decoder and compares the header with `command`'s.
fn decode_and_check_header<'f>(frame: &'f [u8], command: &rs::Command) -> pdu::Command<'f> {
    let ours = decode(frame).unwrap_or_else(|e| {
        panic!(
            "our decoder rejects a valid {:?}: {e} ({e:?})\nframe: {}",
            command.id(),
            hex::encode(frame)
        )
    });
    assert_eq!(
        ours.header.command_length as usize,
        frame.len(),
        "command_length"
    );
    assert_eq!(
        ours.command_id().value(),
        u32::from(command.id()),
        "command_id"
    );
    assert_eq!(
        ours.command_status().0,
        u32::from(command.status()),
        "command_status"
    );
    assert_eq!(
        ours.sequence_number(),
        command.sequence_number(),
        "sequence_number"
    );
    ours
}

// ---- field comparison ---------------------------------------------------------------------

/// A rusmpp C-octet string's value: its octets without the terminating NUL.
fn without_nul(octets: &[u8]) -> &[u8] {
    match octets.split_last() {
        Some((0, value)) => value,
        _ => panic!("rusmpp C-octet string {octets:?} does not end in NUL"),
    }
}

fn assert_cstr<const MAX: usize>(field: &str, ours: COctetStr<'_, MAX>, theirs: impl AsRef<[u8]>) {
    assert_eq!(
        ours.as_bytes(),
        without_nul(theirs.as_ref()),
        "{field}: ours {ours:?}"
    );
    assert!(
        ours.within_spec(),
        "{field}: {} octets do not fit the {MAX}-octet field",
        ours.len()
    );
}

fn assert_ton(field: &str, ours: pdu::Ton, theirs: rv::Ton) {
    assert_eq!(ours.value(), u8::from(theirs), "{field}");
    assert_eq!(
        matches!(ours, pdu::Ton::Other(_)),
        matches!(theirs, rv::Ton::Other(_)),
        "{field}: only one side has a name for it: {ours:?} / {theirs:?}"
    );
}

fn assert_npi(field: &str, ours: pdu::Npi, theirs: rv::Npi) {
    assert_eq!(ours.value(), u8::from(theirs), "{field}");
    assert_eq!(
        matches!(ours, pdu::Npi::Other(_)),
        matches!(theirs, rv::Npi::Other(_)),
        "{field}: only one side has a name for it: {ours:?} / {theirs:?}"
    );
}

fn encoded(value: &impl rs::encode::owned::Encode) -> BytesMut {
    let mut buf = BytesMut::new();
    value.encode(&mut buf);
    buf
}

/// Our TLV area against rusmpp's TLVs and the model, TLV by TLV, then the typed accessors.
fn assert_tlvs(ours: Tlvs<'_>, theirs: &[rs::tlvs::Tlv], model: &[Param]) {
    let whole: Vec<u8> = theirs.iter().flat_map(encoded).collect();
    assert_eq!(ours.as_bytes(), &whole[..], "tlv area");
    assert_eq!(ours.is_empty(), theirs.is_empty(), "tlvs.is_empty()");

    let listed: Vec<pdu::Tlv<'_>> = ours.iter().collect();
    assert_eq!(listed.len(), theirs.len(), "tlv count: ours {ours:?}");
    assert_eq!(listed.len(), model.len(), "tlv count against the model");
    for (i, ((o, t), m)) in listed.iter().zip(theirs).zip(model).enumerate() {
        let value = t.value().map(encoded).unwrap_or_default();
        assert_eq!(o.tag, u16::from(t.tag()), "tlv {i}: tag");
        assert_eq!(
            o.value.len(),
            usize::from(t.value_length()),
            "tlv {i}: length"
        );
        assert_eq!(o.value, &value[..], "tlv {i} (0x{:04x}): value", o.tag);
        assert_eq!(o.tag, m.tag(), "tlv {i}: tag against the model");
        assert_eq!(o.value, &m.value()[..], "tlv {i}: value against the model");
        assert_eq!(o.typed(), m.typed(), "tlv {i}: typed");
        assert_eq!(
            ours.find(m.tag()),
            Some(*o),
            "tlv {i}: find(0x{:04x})",
            o.tag
        );
    }

    let expected_payload = model.iter().find_map(|p| match p {
        Param::MessagePayload(v) => Some(&v[..]),
        _ => None,
    });
    assert_eq!(
        ours.message_payload(),
        expected_payload,
        "message_payload()"
    );

    let reference = model.iter().find_map(|p| match p {
        Param::SarMsgRefNum(v) => Some(*v),
        _ => None,
    });
    let total = model.iter().find_map(|p| match p {
        Param::SarTotalSegments(v) => Some(*v),
        _ => None,
    });
    let seq = model.iter().find_map(|p| match p {
        Param::SarSegmentSeqnum(v) => Some(*v),
        _ => None,
    });
    let expected_sar = match (reference, total, seq) {
        (Some(reference), Some(total), Some(seq)) => Some(ConcatInfo {
            reference,
            total,
            seq,
        }),
        _ => None,
    };
    assert_eq!(ours.sar(), expected_sar, "sar()");

    let expected_receipted = model.iter().find_map(|p| match p {
        Param::ReceiptedMessageId(s) => Some(s.as_bytes()),
        _ => None,
    });
    assert_eq!(
        ours.receipted_message_id().map(|id| id.as_bytes()),
        expected_receipted,
        "receipted_message_id()"
    );

    let expected_state = model.iter().find_map(|p| match p {
        Param::MessageState(v) => Some(*v),
        _ => None,
    });
    assert_eq!(ours.message_state(), expected_state, "message_state()");

    let expected_network_error = model
        .iter()
        .find(|p| matches!(p, Param::NetworkErrorCode { .. }))
        .map(Param::value);
    assert_eq!(
        ours.network_error_code(),
        expected_network_error.as_deref(),
        "network_error_code()"
    );
}

/// submit_sm and deliver_sm: `$theirs` is a rusmpp `SubmitSm` or `DeliverSm`, whose public
/// fields and accessors have the same names.
macro_rules! assert_sm_fields {
    ($ours:expr, $theirs:expr, $model:expr) => {{
        let (ours, theirs, model): (&pdu::Sm<'_>, _, &ShortMessage) = ($ours, $theirs, $model);
        assert_cstr(
            "service_type",
            ours.service_type,
            theirs.service_type.value(),
        );
        assert_ton(
            "source_addr_ton",
            ours.source_addr_ton,
            theirs.source_addr_ton,
        );
        assert_npi(
            "source_addr_npi",
            ours.source_addr_npi,
            theirs.source_addr_npi,
        );
        assert_cstr("source_addr", ours.source_addr, &theirs.source_addr);
        assert_ton("dest_addr_ton", ours.dest_addr_ton, theirs.dest_addr_ton);
        assert_npi("dest_addr_npi", ours.dest_addr_npi, theirs.dest_addr_npi);
        assert_cstr(
            "destination_addr",
            ours.destination_addr,
            &theirs.destination_addr,
        );
        assert_eq!(ours.esm_class.0, u8::from(theirs.esm_class), "esm_class");
        assert_eq!(ours.protocol_id, theirs.protocol_id, "protocol_id");
        assert_eq!(
            ours.priority_flag,
            u8::from(theirs.priority_flag),
            "priority_flag"
        );
        assert_cstr(
            "schedule_delivery_time",
            ours.schedule_delivery_time,
            &theirs.schedule_delivery_time,
        );
        assert_cstr(
            "validity_period",
            ours.validity_period,
            &theirs.validity_period,
        );
        assert_eq!(
            ours.registered_delivery,
            u8::from(theirs.registered_delivery),
            "registered_delivery"
        );
        assert_eq!(
            ours.replace_if_present_flag,
            u8::from(theirs.replace_if_present_flag),
            "replace_if_present_flag"
        );
        assert_eq!(
            ours.data_coding,
            u8::from(theirs.data_coding),
            "data_coding"
        );
        assert_eq!(
            ours.sm_default_msg_id, theirs.sm_default_msg_id,
            "sm_default_msg_id"
        );
        assert_eq!(
            ours.short_message.len(),
            usize::from(theirs.sm_length()),
            "sm_length"
        );
        assert_eq!(
            ours.short_message,
            AsRef::<[u8]>::as_ref(theirs.short_message()),
            "short_message"
        );
        assert_tlvs(ours.tlvs, theirs.tlvs(), &model.params);
        let user_data = model
            .params
            .iter()
            .find_map(|p| match p {
                Param::MessagePayload(v) => Some(&v[..]),
                _ => None,
            })
            .unwrap_or(&model.short_message);
        assert_eq!(ours.user_data(), user_data, "user_data()");
    }};
}

/// The three binds: `$theirs` is a rusmpp `BindTransmitter`, `BindReceiver` or
/// `BindTransceiver`.
macro_rules! assert_bind_fields {
    ($ours:expr, $theirs:expr) => {{
        let (ours, theirs): (&pdu::Bind<'_>, _) = ($ours, $theirs);
        assert_cstr("system_id", ours.system_id, &theirs.system_id);
        assert_cstr("password", ours.password, &theirs.password);
        assert_cstr("system_type", ours.system_type, &theirs.system_type);
        assert_eq!(
            ours.interface_version,
            u8::from(theirs.interface_version),
            "interface_version"
        );
        assert_ton("addr_ton", ours.addr_ton, theirs.addr_ton);
        assert_npi("addr_npi", ours.addr_npi, theirs.addr_npi);
        assert_cstr("address_range", ours.address_range, &theirs.address_range);
    }};
}

/// The three bind responses.
macro_rules! assert_bind_resp_fields {
    ($ours:expr, $theirs:expr, $model:expr) => {{
        let (ours, theirs): (&pdu::BindResp<'_>, _) = ($ours, $theirs);
        assert_cstr("system_id", ours.system_id, &theirs.system_id);
        assert_tlvs(
            ours.tlvs,
            tlv_slice(theirs.sc_interface_version_tlv()),
            $model,
        );
        let version = ours.tlvs.find(tag::SC_INTERFACE_VERSION).map(|t| t.typed());
        assert_eq!(
            version,
            theirs
                .sc_interface_version()
                .map(|v| TlvValue::ScInterfaceVersion(u8::from(v))),
            "sc_interface_version"
        );
    }};
}

/// The three message responses (their rusmpp types differ, their accessors do not).
macro_rules! assert_sm_resp_fields {
    ($ours:expr, $theirs:expr, $model:expr) => {{
        let (ours, theirs, model): (&pdu::SmResp<'_>, _, &SmResp) = ($ours, $theirs, $model);
        assert_cstr("message_id", ours.message_id, theirs.message_id());
        assert_tlvs(ours.tlvs, theirs.tlvs(), &model.params);
    }};
}

fn unexpected(pdu: &Pdu<'_>, wanted: &str) -> ! {
    panic!("decoded as {pdu:?}, expected {wanted}")
}

// ---- the properties -----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(CASES_BIND))]
    #[test]
    fn bind_fields_match_rusmpp(seq in sequence_number(), model in bind()) {
        let command = command(0, seq, model.rusmpp());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        match (&ours.pdu, command.pdu()) {
            (Pdu::BindTransmitter(o), Some(rs::Pdu::BindTransmitter(t))) => assert_bind_fields!(o, t),
            (Pdu::BindReceiver(o), Some(rs::Pdu::BindReceiver(t))) => assert_bind_fields!(o, t),
            (Pdu::BindTransceiver(o), Some(rs::Pdu::BindTransceiver(t))) => assert_bind_fields!(o, t),
            (pdu, _) => unexpected(pdu, &format!("bind {:?}", model.mode)),
        }
    }
}

proptest! {
    #![proptest_config(config(CASES_BIND_RESP))]
    #[test]
    fn bind_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        model in bind_resp(),
    ) {
        let command = command(status, seq, model.rusmpp());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let params = model.params();
        match (&ours.pdu, command.pdu()) {
            (Pdu::BindTransmitterResp(o), Some(rs::Pdu::BindTransmitterResp(t))) => {
                assert_bind_resp_fields!(o, t, &params)
            }
            (Pdu::BindReceiverResp(o), Some(rs::Pdu::BindReceiverResp(t))) => {
                assert_bind_resp_fields!(o, t, &params)
            }
            (Pdu::BindTransceiverResp(o), Some(rs::Pdu::BindTransceiverResp(t))) => {
                assert_bind_resp_fields!(o, t, &params)
            }
            (pdu, _) => unexpected(pdu, &format!("bind_resp {:?}", model.mode)),
        }
    }
}

proptest! {
    #![proptest_config(config(CASES_OUTBIND))]
    #[test]
    fn outbind_fields_match_rusmpp(
        seq in sequence_number(),
        system_id in text(15),
        password in text(8),
    ) {
        let theirs = rs::pdus::Outbind::new(cstring(&system_id), cstring(&password));
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::Outbind(o) = &ours.pdu else { unexpected(&ours.pdu, "outbind") };
        assert_cstr("system_id", o.system_id, &theirs.system_id);
        assert_cstr("password", o.password, &theirs.password);
    }
}

proptest! {
    #![proptest_config(config(CASES_SUBMIT_SM))]
    #[test]
    fn submit_sm_fields_match_rusmpp(
        seq in sequence_number(),
        model in short_message(submission_param()),
    ) {
        let theirs = model.submit_sm();
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::SubmitSm(o) = &ours.pdu else { unexpected(&ours.pdu, "submit_sm") };
        assert_sm_fields!(o, &theirs, &model);
    }
}

proptest! {
    #![proptest_config(config(CASES_DELIVER_SM))]
    #[test]
    fn deliver_sm_fields_match_rusmpp(
        seq in sequence_number(),
        model in short_message(delivery_param()),
    ) {
        let theirs = model.deliver_sm();
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::DeliverSm(o) = &ours.pdu else { unexpected(&ours.pdu, "deliver_sm") };
        assert_sm_fields!(o, &theirs, &model);
    }
}

proptest! {
    #![proptest_config(config(CASES_DATA_SM))]
    #[test]
    fn data_sm_fields_match_rusmpp(seq in sequence_number(), model in data_sm()) {
        let theirs = model.rusmpp();
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::DataSm(o) = &ours.pdu else { unexpected(&ours.pdu, "data_sm") };
        assert_cstr("service_type", o.service_type, theirs.service_type.value());
        assert_ton("source_addr_ton", o.source_addr_ton, theirs.source_addr_ton);
        assert_npi("source_addr_npi", o.source_addr_npi, theirs.source_addr_npi);
        assert_cstr("source_addr", o.source_addr, &theirs.source_addr);
        assert_ton("dest_addr_ton", o.dest_addr_ton, theirs.dest_addr_ton);
        assert_npi("dest_addr_npi", o.dest_addr_npi, theirs.dest_addr_npi);
        assert_cstr("destination_addr", o.destination_addr, &theirs.destination_addr);
        assert_eq!(o.esm_class.0, u8::from(theirs.esm_class), "esm_class");
        assert_eq!(
            o.registered_delivery,
            u8::from(theirs.registered_delivery),
            "registered_delivery"
        );
        assert_eq!(o.data_coding, u8::from(theirs.data_coding), "data_coding");
        assert_tlvs(o.tlvs, theirs.tlvs(), &model.params);
    }
}

proptest! {
    #![proptest_config(config(CASES_SUBMIT_SM_RESP))]
    #[test]
    fn submit_sm_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        model in sm_resp(),
    ) {
        let theirs = rs::pdus::SubmitSmResp::new(
            cstring(&model.message_id),
            model.params.iter().map(Param::submission_response).collect(),
        );
        let command = command(status, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::SubmitSmResp(o) = &ours.pdu else { unexpected(&ours.pdu, "submit_sm_resp") };
        assert_sm_resp_fields!(o, &theirs, &model);
    }
}

proptest! {
    #![proptest_config(config(CASES_DELIVER_SM_RESP))]
    #[test]
    fn deliver_sm_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        model in sm_resp(),
    ) {
        let theirs = rs::pdus::DeliverSmResp::new(
            cstring(&model.message_id),
            model.params.iter().map(Param::delivery_response).collect(),
        );
        let command = command(status, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::DeliverSmResp(o) = &ours.pdu else { unexpected(&ours.pdu, "deliver_sm_resp") };
        assert_sm_resp_fields!(o, &theirs, &model);
    }
}

proptest! {
    #![proptest_config(config(CASES_DATA_SM_RESP))]
    #[test]
    fn data_sm_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        model in sm_resp(),
    ) {
        let theirs = rs::pdus::DataSmResp::new(
            cstring(&model.message_id),
            model.params.iter().map(Param::delivery_response).collect(),
        );
        let command = command(status, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::DataSmResp(o) = &ours.pdu else { unexpected(&ours.pdu, "data_sm_resp") };
        assert_sm_resp_fields!(o, &theirs, &model);
    }
}

proptest! {
    #![proptest_config(config(CASES_QUERY_SM))]
    #[test]
    fn query_sm_fields_match_rusmpp(
        seq in sequence_number(),
        message_id in text(64),
        source in address(20),
    ) {
        let theirs = rs::pdus::QuerySm::new(
            cstring(&message_id),
            rv::Ton::from(source.ton),
            rv::Npi::from(source.npi),
            cstring(&source.addr),
        );
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::QuerySm(o) = &ours.pdu else { unexpected(&ours.pdu, "query_sm") };
        assert_cstr("message_id", o.message_id, &theirs.message_id);
        assert_ton("source_addr_ton", o.source_addr_ton, theirs.source_addr_ton);
        assert_npi("source_addr_npi", o.source_addr_npi, theirs.source_addr_npi);
        assert_cstr("source_addr", o.source_addr, &theirs.source_addr);
    }
}

proptest! {
    #![proptest_config(config(CASES_QUERY_SM_RESP))]
    #[test]
    fn query_sm_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        message_id in text(64),
        final_date in time_text(),
        message_state in any::<u8>(),
        error_code in any::<u8>(),
    ) {
        let theirs = rs::pdus::QuerySmResp::new(
            cstring(&message_id),
            time(&final_date),
            rv::MessageState::from(message_state),
            error_code,
        );
        let command = command(status, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::QuerySmResp(o) = &ours.pdu else { unexpected(&ours.pdu, "query_sm_resp") };
        assert_cstr("message_id", o.message_id, &theirs.message_id);
        assert_cstr("final_date", o.final_date, &theirs.final_date);
        assert_eq!(o.message_state, u8::from(theirs.message_state), "message_state");
        assert_eq!(o.error_code, theirs.error_code, "error_code");
    }
}

/// submit_multi_resp with `params` as its TLVs (SMPP 5; 3.4 gives it none).
fn check_submit_multi_resp(
    seq: u32,
    status: u32,
    message_id: &str,
    unsuccess: &[UnsuccessSme],
    params: &[Param],
) {
    let theirs = rs::pdus::SubmitMultiResp::new(
        cstring(message_id),
        unsuccess
            .iter()
            .map(|u| {
                rv::UnsuccessSme::new(
                    rv::Ton::from(u.destination.ton),
                    rv::Npi::from(u.destination.npi),
                    cstring(&u.destination.addr),
                    rs::CommandStatus::from(u.error_status_code),
                )
            })
            .collect(),
        params.iter().map(Param::submission_response).collect(),
    );
    let command = command(status, seq, theirs.clone());
    let frame = encode_and_check_with_rusmpp(&command);
    let ours = decode_and_check_header(&frame, &command);
    let Pdu::SubmitMultiResp(o) = &ours.pdu else {
        unexpected(&ours.pdu, "submit_multi_resp")
    };
    assert_cstr("message_id", o.message_id, &theirs.message_id);
    assert_eq!(
        o.unsuccess_sme.len(),
        usize::from(theirs.no_unsuccess()),
        "no_unsuccess"
    );
    assert_eq!(
        o.unsuccess_sme.len(),
        theirs.unsuccess_sme().len(),
        "unsuccess_sme count"
    );
    for (i, (o, t)) in o
        .unsuccess_sme
        .iter()
        .zip(theirs.unsuccess_sme())
        .enumerate()
    {
        let field = |name: &str| format!("unsuccess_sme[{i}].{name}");
        assert_ton(&field("dest_addr_ton"), o.dest_addr_ton, t.dest_addr_ton);
        assert_npi(&field("dest_addr_npi"), o.dest_addr_npi, t.dest_addr_npi);
        assert_cstr(
            &field("destination_addr"),
            o.destination_addr,
            &t.destination_addr,
        );
        assert_eq!(
            o.error_status_code.0,
            u32::from(t.error_status_code),
            "{}",
            field("error_status_code")
        );
    }
    assert_tlvs(o.tlvs, theirs.tlvs(), params);
}

proptest! {
    #![proptest_config(config(CASES_SUBMIT_MULTI_RESP))]
    #[test]
    fn submit_multi_resp_fields_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        message_id in text(64),
        unsuccess in vec(unsuccess_sme(), 0..=3),
    ) {
        // SMPP 3.4 §4.5.2 gives submit_multi_resp no TLVs, so none here.
        check_submit_multi_resp(seq, status, &message_id, &unsuccess, &[]);
    }
}

proptest! {
    #![proptest_config(config(CASES_SUBMIT_MULTI_RESP))]
    /// SMPP 5 puts TLVs after the unsuccess_sme list; carriers send them to 3.4 clients too.
    #[test]
    fn submit_multi_resp_with_tlvs_matches_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        message_id in text(64),
        unsuccess in vec(unsuccess_sme(), 0..=3),
        params in response_params(),
    ) {
        check_submit_multi_resp(seq, status, &message_id, &unsuccess, &params);
    }
}

proptest! {
    #![proptest_config(config(CASES_ALERT_NOTIFICATION))]
    #[test]
    fn alert_notification_fields_match_rusmpp(
        seq in sequence_number(),
        source in address(64),
        esme in address(64),
        ms_availability_status in proptest::option::of(any::<u8>()),
    ) {
        let theirs = rs::pdus::AlertNotification::new(
            rv::Ton::from(source.ton),
            rv::Npi::from(source.npi),
            cstring(&source.addr),
            rv::Ton::from(esme.ton),
            rv::Npi::from(esme.npi),
            cstring(&esme.addr),
            ms_availability_status.map(rv::MsAvailabilityStatus::from),
        );
        let command = command(0, seq, theirs.clone());
        let frame = encode_and_check_with_rusmpp(&command);
        let ours = decode_and_check_header(&frame, &command);
        let Pdu::AlertNotification(o) = &ours.pdu else {
            unexpected(&ours.pdu, "alert_notification")
        };
        assert_ton("source_addr_ton", o.source_addr_ton, theirs.source_addr_ton);
        assert_npi("source_addr_npi", o.source_addr_npi, theirs.source_addr_npi);
        assert_cstr("source_addr", o.source_addr, &theirs.source_addr);
        assert_ton("esme_addr_ton", o.esme_addr_ton, theirs.esme_addr_ton);
        assert_npi("esme_addr_npi", o.esme_addr_npi, theirs.esme_addr_npi);
        assert_cstr("esme_addr", o.esme_addr, &theirs.esme_addr);
        let params: Vec<Param> =
            ms_availability_status.map(Param::MsAvailabilityStatus).into_iter().collect();
        assert_tlvs(o.tlvs, tlv_slice(theirs.ms_availability_status_tlv()), &params);
    }
}

proptest! {
    #![proptest_config(config(CASES_HEADER_ONLY))]
    #[test]
    fn header_only_pdus_match_rusmpp(
        seq in sequence_number(),
        status in response_status(),
        kind in header_only(),
    ) {
        let (status, theirs, expected) = match kind {
            HeaderOnly::EnquireLink => (0, rs::Pdu::EnquireLink, Pdu::EnquireLink),
            HeaderOnly::EnquireLinkResp => (status, rs::Pdu::EnquireLinkResp, Pdu::EnquireLinkResp),
            HeaderOnly::Unbind => (0, rs::Pdu::Unbind, Pdu::Unbind),
            HeaderOnly::UnbindResp => (status, rs::Pdu::UnbindResp, Pdu::UnbindResp),
            HeaderOnly::GenericNack => (status, rs::Pdu::GenericNack, Pdu::GenericNack),
        };
        let command = command(status, seq, theirs);
        let frame = encode_and_check_with_rusmpp(&command);
        assert_eq!(frame.len(), 16, "{kind:?} is a bare header");
        let ours = decode_and_check_header(&frame, &command);
        assert_eq!(ours.pdu, expected);
    }
}
