//! The SMPP 3.4 wire layer, free of I/O.
//!
//! # Glossary
//!
//! - **ESME**: External Short Message Entity, the application side (smsflow).
//! - **SMSC** (SMPP 5 says MC): the carrier's message centre we bind to.
//! - **PDU**: one SMPP message: a 16-octet header (`command_length`, `command_id`,
//!   `command_status`, `sequence_number`) and a body.
//! - **MT / MO**: mobile-terminated (we send, `submit_sm`) / mobile-originated (the subscriber
//!   sends, we receive `deliver_sm`).
//! - **TLV**: an optional parameter after the mandatory body fields (tag, length, value).
//! - **UDH**: user data header at the start of `short_message` (flagged by `esm_class` bit 6),
//!   here used for concatenation (IE 0x00 with an 8-bit reference, 0x08 with a 16-bit one).
//! - **SAR**: the TLV way of concatenating (`sar_msg_ref_num`, `sar_total_segments`,
//!   `sar_segment_seqnum`).
//! - **Delivery receipt**: a `deliver_sm` with the receipt bit in `esm_class`, reporting what
//!   became of a message we sent.
//!
//! # Modules
//!
//! - [`codec`]: length-prefixed framing; rejects bad `command_length` before buffering.
//! - [`pdu`]: the PDU types the decoder produces, borrowing from the frame.
//! - [`decode`](mod@decode): nom parsers over exactly one frame.
//! - [`encode`]: outbound PDUs built with rusmpp's types.
//! - [`text`]: GSM 03.38, UCS-2 and the other `data_coding` alphabets; MT segmentation.
//! - [`udh`]: user data header parsing and building.
//! - [`concat`](mod@concat): sans-IO reassembly of concatenated MO messages.
//! - [`receipt`]: delivery receipt parsing.
//! - [`session`]: the ESME session state machine, sans I/O (time and frames are inputs).

pub mod codec;
pub mod concat;
pub mod decode;
pub mod encode;
pub mod pdu;
pub mod receipt;
pub mod session;
pub mod text;
pub mod udh;

pub use codec::{FrameCodec, FrameError};
pub use decode::{DecodeError, decode};
pub use pdu::{Command, CommandId, CommandStatus, Pdu};
