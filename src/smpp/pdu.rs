//! The inbound PDU types: what [`decode`](super::decode()) produces from one frame.
//!
//! Every string and octet field borrows from the frame, so decoding copies nothing; a caller
//! that keeps a field past the frame's lifetime copies it explicitly. Unknown values are kept,
//! never rejected: a `command_id` we do not decode becomes [`Pdu::Other`] (the session answers
//! it with `generic_nack`), an unknown status stays a [`CommandStatus`] with its number, an
//! unknown TLV tag stays a [`TlvValue::Other`] with its octets.
//!
//! Field names are the SMPP 3.4 names (§4, §5.3). Outbound PDUs are not built from these types:
//! see [`encode`](super::encode).

use std::fmt;

use super::udh::{ConcatInfo, UDHI, UserDataHeader};

mod tlv;
pub use tlv::{Tlv, TlvIter, TlvValue, Tlvs, tag};

/// Generates a `u32`-backed identifier enum that keeps unknown values in `Other`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty { $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this build has no name for; kept so it can be logged and answered.
            Other($repr),
        }

        impl $name {
            /// The value as it is on the wire.
            pub const fn value(self) -> $repr {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Other(value) => value,
                }
            }

            /// The name the SMPP specification uses (`"other"` for unknown values).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )*
                    Self::Other(_) => "other",
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Other(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.value()
            }
        }
    };
}

wire_enum! {
    /// `command_id` (SMPP 3.4 §5.1.2.1). Bit 31 marks responses.
    CommandId: u32 {
        GenericNack = 0x8000_0000 => "generic_nack",
        BindReceiver = 0x0000_0001 => "bind_receiver",
        BindReceiverResp = 0x8000_0001 => "bind_receiver_resp",
        BindTransmitter = 0x0000_0002 => "bind_transmitter",
        BindTransmitterResp = 0x8000_0002 => "bind_transmitter_resp",
        QuerySm = 0x0000_0003 => "query_sm",
        QuerySmResp = 0x8000_0003 => "query_sm_resp",
        SubmitSm = 0x0000_0004 => "submit_sm",
        SubmitSmResp = 0x8000_0004 => "submit_sm_resp",
        DeliverSm = 0x0000_0005 => "deliver_sm",
        DeliverSmResp = 0x8000_0005 => "deliver_sm_resp",
        Unbind = 0x0000_0006 => "unbind",
        UnbindResp = 0x8000_0006 => "unbind_resp",
        ReplaceSm = 0x0000_0007 => "replace_sm",
        ReplaceSmResp = 0x8000_0007 => "replace_sm_resp",
        CancelSm = 0x0000_0008 => "cancel_sm",
        CancelSmResp = 0x8000_0008 => "cancel_sm_resp",
        BindTransceiver = 0x0000_0009 => "bind_transceiver",
        BindTransceiverResp = 0x8000_0009 => "bind_transceiver_resp",
        Outbind = 0x0000_000B => "outbind",
        EnquireLink = 0x0000_0015 => "enquire_link",
        EnquireLinkResp = 0x8000_0015 => "enquire_link_resp",
        SubmitMulti = 0x0000_0021 => "submit_multi",
        SubmitMultiResp = 0x8000_0021 => "submit_multi_resp",
        AlertNotification = 0x0000_0102 => "alert_notification",
        DataSm = 0x0000_0103 => "data_sm",
        DataSmResp = 0x8000_0103 => "data_sm_resp",
    }
}

impl CommandId {
    /// Whether this is a response (bit 31 set); responses are never answered.
    pub const fn is_response(self) -> bool {
        self.value() & 0x8000_0000 != 0
    }
}

/// `command_status` (SMPP 3.4 §5.1.3). A newtype rather than an enum: carriers use many
/// vendor-specific values, and every value must survive to logs and metrics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandStatus(pub u32);

macro_rules! statuses {
    ($( $(#[$meta:meta])* $name:ident = $value:literal, )*) => {
        impl CommandStatus {
            $( $(#[$meta])* pub const $name: Self = Self($value); )*

            /// The specification's name, e.g. `"ESME_RTHROTTLED"`, if the value has one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

statuses! {
    /// No error.
    ESME_ROK = 0x0000_0000,
    /// Message length is invalid.
    ESME_RINVMSGLEN = 0x0000_0001,
    /// Command length is invalid.
    ESME_RINVCMDLEN = 0x0000_0002,
    /// Invalid command ID.
    ESME_RINVCMDID = 0x0000_0003,
    /// Incorrect bind status for the given command.
    ESME_RINVBNDSTS = 0x0000_0004,
    /// ESME already in bound state.
    ESME_RALYBND = 0x0000_0005,
    /// Invalid priority flag.
    ESME_RINVPRTFLG = 0x0000_0006,
    /// Invalid registered delivery flag.
    ESME_RINVREGDLVFLG = 0x0000_0007,
    /// System error.
    ESME_RSYSERR = 0x0000_0008,
    /// Invalid source address.
    ESME_RINVSRCADR = 0x0000_000A,
    /// Invalid destination address.
    ESME_RINVDSTADR = 0x0000_000B,
    /// Message ID is invalid.
    ESME_RINVMSGID = 0x0000_000C,
    /// Bind failed.
    ESME_RBINDFAIL = 0x0000_000D,
    /// Invalid password.
    ESME_RINVPASWD = 0x0000_000E,
    /// Invalid system ID.
    ESME_RINVSYSID = 0x0000_000F,
    /// Cancel SM failed.
    ESME_RCANCELFAIL = 0x0000_0011,
    /// Replace SM failed.
    ESME_RREPLACEFAIL = 0x0000_0013,
    /// Message queue full: slow down.
    ESME_RMSGQFUL = 0x0000_0014,
    /// Invalid service type.
    ESME_RINVSERTYP = 0x0000_0015,
    /// Invalid esm_class field data.
    ESME_RINVESMCLASS = 0x0000_0043,
    /// Submit to distribution list failed.
    ESME_RSUBMITFAIL = 0x0000_0045,
    /// Invalid source address TON.
    ESME_RINVSRCTON = 0x0000_0048,
    /// Invalid source address NPI.
    ESME_RINVSRCNPI = 0x0000_0049,
    /// Invalid destination address TON.
    ESME_RINVDSTTON = 0x0000_0050,
    /// Invalid destination address NPI.
    ESME_RINVDSTNPI = 0x0000_0051,
    /// Invalid system_type field.
    ESME_RINVSYSTYP = 0x0000_0053,
    /// Invalid replace_if_present flag.
    ESME_RINVREPFLAG = 0x0000_0054,
    /// Invalid number of messages.
    ESME_RINVNUMMSGS = 0x0000_0055,
    /// Throttling error: the ESME exceeded its allowed message limits.
    ESME_RTHROTTLED = 0x0000_0058,
    /// Invalid scheduled delivery time.
    ESME_RINVSCHED = 0x0000_0061,
    /// Invalid message validity period.
    ESME_RINVEXPIRY = 0x0000_0062,
    /// Predefined message invalid or not found.
    ESME_RINVDFTMSGID = 0x0000_0063,
    /// ESME receiver temporary application error: the SMSC should retry.
    ESME_RX_T_APPN = 0x0000_0064,
    /// ESME receiver permanent application error.
    ESME_RX_P_APPN = 0x0000_0065,
    /// ESME receiver reject message error.
    ESME_RX_R_APPN = 0x0000_0066,
    /// query_sm request failed.
    ESME_RQUERYFAIL = 0x0000_0067,
    /// Error in the optional part of the PDU body.
    ESME_RINVOPTPARSTREAM = 0x0000_00C0,
    /// Optional parameter not allowed.
    ESME_ROPTPARNOTALLWD = 0x0000_00C1,
    /// Invalid parameter length.
    ESME_RINVPARLEN = 0x0000_00C2,
    /// Expected optional parameter missing.
    ESME_RMISSINGOPTPARAM = 0x0000_00C3,
    /// Invalid optional parameter value.
    ESME_RINVOPTPARAMVAL = 0x0000_00C4,
    /// Delivery failure (used for data_sm_resp).
    ESME_RDELIVERYFAILURE = 0x0000_00FE,
    /// Unknown error.
    ESME_RUNKNOWNERR = 0x0000_00FF,
}

impl CommandStatus {
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Whether the SMSC asks us to slow down rather than rejecting the message.
    pub const fn is_throttling(self) -> bool {
        matches!(self, Self::ESME_RTHROTTLED | Self::ESME_RMSGQFUL)
    }
}

impl fmt::Debug for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "CommandStatus(0x{:08x})", self.0),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08x})", self.0),
            None => write!(f, "0x{:08x}", self.0),
        }
    }
}

wire_enum! {
    /// Type of number (SMPP 3.4 §5.2.5).
    #[derive(Default)]
    Ton: u8 {
        #[default]
        Unknown = 0x00 => "unknown",
        International = 0x01 => "international",
        National = 0x02 => "national",
        NetworkSpecific = 0x03 => "network_specific",
        SubscriberNumber = 0x04 => "subscriber_number",
        Alphanumeric = 0x05 => "alphanumeric",
        Abbreviated = 0x06 => "abbreviated",
    }
}

wire_enum! {
    /// Numbering plan indicator (SMPP 3.4 §5.2.6).
    #[derive(Default)]
    Npi: u8 {
        #[default]
        Unknown = 0x00 => "unknown",
        Isdn = 0x01 => "isdn",
        Data = 0x03 => "data",
        Telex = 0x04 => "telex",
        LandMobile = 0x06 => "land_mobile",
        National = 0x08 => "national",
        Private = 0x09 => "private",
        Ermes = 0x0A => "ermes",
        Internet = 0x0E => "internet",
        WapClientId = 0x12 => "wap_client_id",
    }
}

/// `esm_class` (SMPP 3.4 §5.2.12): message mode, type and GSM features in one octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EsmClass(pub u8);

impl EsmClass {
    /// Message type bits 5..2 equal to this mean "SMSC delivery receipt".
    const TYPE_DELIVERY_RECEIPT: u8 = 0b0000_0100;
    /// Intermediate notifications carry delivery state too (SMPP 3.4 §5.2.12, value 0x20).
    const TYPE_INTERMEDIATE_NOTIFICATION: u8 = 0b0010_0000;
    const TYPE_MASK: u8 = 0b0011_1100;

    /// Whether `short_message` starts with a user data header.
    pub const fn udhi(self) -> bool {
        self.0 & UDHI != 0
    }

    /// Whether this deliver_sm reports on a message we sent rather than carrying an MO.
    pub const fn is_receipt(self) -> bool {
        let kind = self.0 & Self::TYPE_MASK;
        kind == Self::TYPE_DELIVERY_RECEIPT || kind == Self::TYPE_INTERMEDIATE_NOTIFICATION
    }
}

/// A C-octet string as it was on the wire, without its NUL, borrowed from the frame.
///
/// `MAX` is the specification's size including the NUL (e.g. 21 for `source_addr`). The
/// decoder accepts longer values, because carriers send them (see [`COctetStr::within_spec`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct COctetStr<'a, const MAX: usize>(&'a [u8]);

impl<'a, const MAX: usize> COctetStr<'a, MAX> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// The value as text; C-octet strings are ASCII in the specification, but carriers put
    /// Latin-1 in them too, so invalid UTF-8 is replaced rather than rejected.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }

    /// Whether the value fits the size the specification gives the field.
    pub const fn within_spec(&self) -> bool {
        self.0.len() < MAX
    }
}

impl<const MAX: usize> fmt::Debug for COctetStr<'_, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

impl<'a, const MAX: usize> From<&'a str> for COctetStr<'a, MAX> {
    fn from(value: &'a str) -> Self {
        Self(value.as_bytes())
    }
}

impl<const MAX: usize> PartialEq<str> for COctetStr<'_, MAX> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl<const MAX: usize> PartialEq<&str> for COctetStr<'_, MAX> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// The 16-octet header every PDU starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_length: u32,
    pub command_id: CommandId,
    pub command_status: CommandStatus,
    pub sequence_number: u32,
}

impl Header {
    pub const LEN: usize = 16;
}

/// One decoded PDU with its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub header: Header,
    pub pdu: Pdu<'a>,
}

impl Command<'_> {
    pub const fn command_id(&self) -> CommandId {
        self.header.command_id
    }

    pub const fn command_status(&self) -> CommandStatus {
        self.header.command_status
    }

    pub const fn sequence_number(&self) -> u32 {
        self.header.sequence_number
    }
}

/// A PDU body. Responses whose `command_status` is an error may arrive without a body
/// (SMPP 3.4 §4.4.2); they decode with empty fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pdu<'a> {
    BindTransmitter(Bind<'a>),
    BindReceiver(Bind<'a>),
    BindTransceiver(Bind<'a>),
    BindTransmitterResp(BindResp<'a>),
    BindReceiverResp(BindResp<'a>),
    BindTransceiverResp(BindResp<'a>),
    Outbind(Outbind<'a>),
    SubmitSm(Sm<'a>),
    SubmitSmResp(SmResp<'a>),
    DeliverSm(Sm<'a>),
    DeliverSmResp(SmResp<'a>),
    DataSm(DataSm<'a>),
    DataSmResp(SmResp<'a>),
    QuerySm(QuerySm<'a>),
    QuerySmResp(QuerySmResp<'a>),
    SubmitMultiResp(SubmitMultiResp<'a>),
    AlertNotification(AlertNotification<'a>),
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
    /// A `command_id` this decoder does not take apart: unknown ones, and operations an ESME
    /// never receives (cancel_sm, replace_sm, ...). The session answers with `generic_nack`
    /// ESME_RINVCMDID, or the matching response with an error for known requests.
    Other {
        command_id: CommandId,
        body: &'a [u8],
    },
}

/// bind_transmitter, bind_receiver, bind_transceiver (SMPP 3.4 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bind<'a> {
    pub system_id: COctetStr<'a, 16>,
    pub password: COctetStr<'a, 9>,
    pub system_type: COctetStr<'a, 13>,
    pub interface_version: u8,
    pub addr_ton: Ton,
    pub addr_npi: Npi,
    pub address_range: COctetStr<'a, 41>,
}

/// bind_*_resp (SMPP 3.4 §4.1): the SMSC's system_id and optionally `sc_interface_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindResp<'a> {
    pub system_id: COctetStr<'a, 16>,
    pub tlvs: Tlvs<'a>,
}

/// outbind (SMPP 3.4 §4.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outbind<'a> {
    pub system_id: COctetStr<'a, 16>,
    pub password: COctetStr<'a, 9>,
}

/// submit_sm and deliver_sm, which share one body layout (SMPP 3.4 §4.4.1, §4.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sm<'a> {
    pub service_type: COctetStr<'a, 6>,
    pub source_addr_ton: Ton,
    pub source_addr_npi: Npi,
    pub source_addr: COctetStr<'a, 21>,
    pub dest_addr_ton: Ton,
    pub dest_addr_npi: Npi,
    pub destination_addr: COctetStr<'a, 21>,
    pub esm_class: EsmClass,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: COctetStr<'a, 17>,
    pub validity_period: COctetStr<'a, 17>,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    pub short_message: &'a [u8],
    pub tlvs: Tlvs<'a>,
}

impl<'a> Sm<'a> {
    /// The user data: `message_payload` when present (it supersedes `short_message`), else
    /// `short_message`. Still includes the UDH if `esm_class` says there is one.
    pub fn user_data(&self) -> &'a [u8] {
        self.tlvs.message_payload().unwrap_or(self.short_message)
    }

    /// Where this part sits in a concatenated message: from the UDH when `esm_class` flags one,
    /// else from SAR TLVs. `None` for a message in one part.
    pub fn concat(&self) -> Option<ConcatInfo> {
        self.udh()
            .and_then(|udh| udh.concat())
            .or_else(|| self.tlvs.sar())
    }

    /// The user data without its UDH (the text octets of this part).
    ///
    /// A UDH that does not parse is left in place rather than guessed at, so no octet is lost.
    pub fn payload(&self) -> &'a [u8] {
        self.udh().map_or(self.user_data(), |udh| udh.payload)
    }

    /// The UDH, when `esm_class` flags one and it parses.
    pub fn udh(&self) -> Option<UserDataHeader<'a>> {
        if !self.esm_class.udhi() {
            return None;
        }
        UserDataHeader::parse(self.user_data()).ok()
    }
}

/// submit_sm_resp, deliver_sm_resp, data_sm_resp: the message id, plus any TLVs (SMPP 5 adds
/// some; 3.4 carriers send them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmResp<'a> {
    pub message_id: COctetStr<'a, 65>,
    pub tlvs: Tlvs<'a>,
}

/// data_sm (SMPP 3.4 §4.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataSm<'a> {
    pub service_type: COctetStr<'a, 6>,
    pub source_addr_ton: Ton,
    pub source_addr_npi: Npi,
    pub source_addr: COctetStr<'a, 65>,
    pub dest_addr_ton: Ton,
    pub dest_addr_npi: Npi,
    pub destination_addr: COctetStr<'a, 65>,
    pub esm_class: EsmClass,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub tlvs: Tlvs<'a>,
}

/// query_sm (SMPP 3.4 §4.8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuerySm<'a> {
    pub message_id: COctetStr<'a, 65>,
    pub source_addr_ton: Ton,
    pub source_addr_npi: Npi,
    pub source_addr: COctetStr<'a, 21>,
}

/// query_sm_resp (SMPP 3.4 §4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuerySmResp<'a> {
    pub message_id: COctetStr<'a, 65>,
    pub final_date: COctetStr<'a, 17>,
    pub message_state: u8,
    pub error_code: u8,
}

/// submit_multi_resp (SMPP 3.4 §4.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmitMultiResp<'a> {
    pub message_id: COctetStr<'a, 65>,
    pub unsuccess_sme: Vec<UnsuccessSme<'a>>,
    pub tlvs: Tlvs<'a>,
}

/// One destination submit_multi could not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsuccessSme<'a> {
    pub dest_addr_ton: Ton,
    pub dest_addr_npi: Npi,
    pub destination_addr: COctetStr<'a, 21>,
    pub error_status_code: CommandStatus,
}

/// alert_notification (SMPP 3.4 §4.12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertNotification<'a> {
    pub source_addr_ton: Ton,
    pub source_addr_npi: Npi,
    pub source_addr: COctetStr<'a, 65>,
    pub esme_addr_ton: Ton,
    pub esme_addr_npi: Npi,
    pub esme_addr: COctetStr<'a, 65>,
    pub tlvs: Tlvs<'a>,
}
