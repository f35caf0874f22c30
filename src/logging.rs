//! Log output that keeps subscribers' numbers out of log files: every line written is scanned
//! for MSISDN-like digit runs (11 to 15 digits, optionally after `+`, the groups optionally
//! joined by `-`, or by spaces after a `+`) and their middle digits are masked, whichever code
//! or flow script logged them (`998901234567` → `99890*****67`, `99890-123-45-67` →
//! `99890-***-**-67`). A flow's `log()` is also masked for the conversation's own parties
//! written shorter (`901234567`, `1234567` of `998901234567`): see [`redact_parties`].
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
        let plus = out[i] == b'+' && out.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !out[i].is_ascii_digit() && !plus {
            i += 1;
            continue;
        }
        let start = i;
        if plus {
            i += 1;
        }
        // Digits, and single separators between digits: `-`, or a space after a `+`.
        let mut digits = Vec::new();
        while i < out.len() {
            if out[i].is_ascii_digit() {
                digits.push(i);
                i += 1;
            } else if (out[i] == b'-' || (plus && out[i] == b' '))
                && out.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let standalone =
            !glued(start.checked_sub(1).and_then(|p| out.get(p))) && !glued(out.get(i));
        if (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && standalone {
            for &d in &digits[5..digits.len() - 2] {
                out[d] = b'*';
            }
        }
    }
    out
}

/// Masks, in a flow's `log()` line, the numbers of `parties` (the conversation's MSISDNs)
/// written shorter than 11 digits: a standalone run of 5 or more digits that ends one of
/// them (the national `901234567`, the local `1234567`) keeps only its last two digits.
pub fn redact_parties(text: &str, parties: &[String]) -> String {
    let mut out = text.as_bytes().to_vec();
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
        let run = &text.as_bytes()[start..i];
        let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let standalone =
            !glued(start.checked_sub(1).and_then(|p| out.get(p))) && !glued(out.get(i));
        let a_party = (5..MIN_DIGITS).contains(&run.len())
            && (parties.iter()).any(|p| p.len() > run.len() && p.as_bytes().ends_with(run));
        if standalone && a_party {
            for b in &mut out[start..i - 2] {
                *b = b'*';
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
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
    fn msisdns_written_with_separators_are_masked_too() {
        assert_eq!(
            redact("call 99890-123-45-67 now"),
            "call 99890-***-**-67 now"
        );
        assert_eq!(redact("+998 90 123 45 67."), "+998 90 *** ** 67.");
        for kept in ["2026-11-22 17:55:01", "ids 1234 5678 9012", "v1-2-3", "4-4"] {
            assert_eq!(redact(kept), kept);
        }
    }

    #[test]
    fn a_party_written_short_is_masked_in_a_flow_log() {
        let parties = vec!["998901234567".to_owned()];
        assert_eq!(
            redact_parties(
                "reached 901234567 and 1234567, order 5700 and 4242",
                &parties
            ),
            "reached *******67 and *****67, order 5700 and 4242"
        );
        assert_eq!(
            redact_parties("ticket 88812345", &parties),
            "ticket 88812345"
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
