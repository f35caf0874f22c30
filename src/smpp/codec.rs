//! Length-prefixed framing: cuts a byte stream into whole PDUs, and writes PDUs out.
//!
//! Framing is the one place the wire layer is unforgiving: a `command_length` under 16 or over
//! the configured maximum means the stream can no longer be trusted to line up with PDU
//! boundaries, so the decoder fails and the connection must be closed. It checks the length
//! before buffering anything, so a hostile length cannot make us allocate. Everything inside a
//! well-framed PDU is [`decode`](super::decode())'s business and is answered, not fatal.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::pdu::Header;

/// The default cap on `command_length`: a submit_sm with a full 255-octet short_message and a
/// generous TLV area stays far below it, as does any real carrier's PDU. Rusmpp uses the same.
pub const DEFAULT_MAX_COMMAND_LENGTH: usize = 8192;

/// Why the stream cannot be framed (fatal for the connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// `command_length` is smaller than the header itself.
    #[error("command_length {command_length} is below the 16-octet minimum; framing lost")]
    TooShort { command_length: u32 },
    /// `command_length` is larger than we accept.
    #[error("command_length {command_length} exceeds the maximum of {max}; framing lost")]
    TooLong { command_length: u32, max: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// tokio-util codec: decodes into whole frames (`Bytes`, header included), encodes rusmpp
/// commands or pre-encoded frames.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_command_length: usize,
}

impl FrameCodec {
    pub fn new(max_command_length: usize) -> Self {
        Self {
            max_command_length: max_command_length.max(Header::LEN),
        }
    }

    pub fn max_command_length(&self) -> usize {
        self.max_command_length
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_COMMAND_LENGTH)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(length) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let command_length = u32::from_be_bytes(*length);
        let len = command_length as usize;
        if len < Header::LEN {
            return Err(FrameError::TooShort { command_length });
        }
        if len > self.max_command_length {
            return Err(FrameError::TooLong {
                command_length,
                max: self.max_command_length,
            });
        }
        if src.len() < len {
            // Reserve once for the rest of this frame instead of growing in steps.
            src.reserve(len - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl Encoder<&rusmpp::Command> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, command: &rusmpp::Command, dst: &mut BytesMut) -> Result<(), FrameError> {
        super::encode::write_command(command, dst);
        Ok(())
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.put(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xAA]);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.len(), 16);
        assert_eq!(&buf[..], &[0xAA]);
    }

    #[test]
    fn rejects_lengths_before_buffering() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0, 0, 0, 15][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooShort { command_length: 15 })
        ));
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLong {
                command_length: u32::MAX,
                max: 1024
            })
        ));
        // Nothing was reserved for the hostile length.
        assert!(buf.capacity() < 1024);
    }
}
