//! Log output that keeps subscribers' numbers out of log files: every line written is scanned
//! for MSISDN-like digit runs (11 to 15 digits, optionally after `+`) and their middle digits
//! are masked, whichever code or flow script logged them (`998901234567` → `99890*****67`).
//!
//! Redaction happens at the writer, not at each log call, so a script's `log("from " + msg.from)`
//! or an error that quotes a number is covered too. `SMSFLOW_LOG_MSISDN=full` turns it off
//! (for a lab, never for production logs).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Digit runs this long are taken for MSISDNs (E.164 allows up to 15; national formats of
/// fewer than 11 digits and ids such as conversation numbers stay readable).
const MIN_DIGITS: usize = 11;
const MAX_DIGITS: usize = 15;

/// Wraps a [`MakeWriter`] so that everything it writes is redacted.
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

pub struct RedactingWriter<W>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // tracing's fmt layer writes one whole event per call, so a number is never split.
        self.0.write_all(&redact_msisdns(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Masks all but the first five and last two digits of every MSISDN-like digit run.
pub fn redact_msisdns(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    let mut i = 0;
    while i < out.len() {
        if !out[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < out.len() && out[i].is_ascii_digit() {
            i += 1;
        }
        let len = i - start;
        let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let standalone =
            !glued(start.checked_sub(1).and_then(|p| out.get(p))) && !glued(out.get(i));
        if (MIN_DIGITS..=MAX_DIGITS).contains(&len) && standalone {
            for b in &mut out[start + 5..i - 2] {
                *b = b'*';
            }
        }
    }
    out
}

/// Whether logs should be redacted (the default).
pub fn redaction_enabled() -> bool {
    std::env::var("SMSFLOW_LOG_MSISDN").map_or(true, |v| v != "full")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(s: &str) -> String {
        String::from_utf8(redact_msisdns(s.as_bytes())).unwrap()
    }

    #[test]
    fn msisdns_lose_their_middle_digits() {
        assert_eq!(
            redact("to=998901234567 from \"+998931112233\":"),
            "to=99890*****67 from \"+99893*****33\":"
        );
    }

    #[test]
    fn short_numbers_ids_and_timestamps_stay() {
        for kept in [
            "conversation=1234567",
            "2026-11-22T17:55:01.123456Z",
            "short code 5700",
            "id=0123456789",
            "hash ab12345678901234cd",
            "1234567890123456789",
        ] {
            assert_eq!(redact(kept), kept);
        }
    }
}
