//! What one hook call has spent of the limits that count as it goes ([`super::limits`]):
//! bytes the step will write, SMS parts, log lines; the size of the state it leaves; and the
//! per-flow log rate.
//!
//! Errors here are plain text; the host functions make script errors of them.

use std::time::Duration;

use rhai::Dynamic;

use super::limits::{
    LOG_LINES_PER_MINUTE, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, MAX_PARTS_PER_HOOK,
    MAX_PARTS_PER_MESSAGE, MAX_STATE_BYTES, MAX_STEP_BYTES, RECORD_OVERHEAD,
};
use crate::smpp::text::Cost;
use crate::store::Millis;

/// The running totals of one hook call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    /// Bytes the step writes, besides the state.
    pub written: usize,
    /// SMS parts of the messages sent.
    pub parts: usize,
    /// Log lines kept.
    pub log_lines: usize,
}

impl Budget {
    /// One more thing of `bytes` for the store, asked for by `function`.
    pub fn charge(&mut self, function: &str, bytes: usize) -> Result<(), String> {
        let written = self.written + bytes + RECORD_OVERHEAD;
        if written > MAX_STEP_BYTES {
            return Err(format!(
                "{function}: this step would write more than {MAX_STEP_BYTES} bytes (the \
                 per-step write limit: messages, payloads, records and state together)"
            ));
        }
        self.written = written;
        Ok(())
    }

    /// One more message of `cost`.
    pub fn send(&mut self, cost: &Cost) -> Result<(), String> {
        let what = format!("{} chars of {}", cost.units, cost.alphabet.name());
        if cost.parts > MAX_PARTS_PER_MESSAGE {
            return Err(format!(
                "send: the text is {} SMS parts ({what}), at most {MAX_PARTS_PER_MESSAGE} parts \
                 per message ({} chars of {}; the per-message limit)",
                cost.parts,
                cost.alphabet.capacity(MAX_PARTS_PER_MESSAGE),
                cost.alphabet.name()
            ));
        }
        let parts = self.parts + cost.parts;
        if parts > MAX_PARTS_PER_HOOK {
            return Err(format!(
                "send: this text's {} parts ({what}) make {parts} in this hook call, at most \
                 {MAX_PARTS_PER_HOOK} parts per hook call (the per-hook segment limit)",
                cost.parts
            ));
        }
        self.parts = parts;
        Ok(())
    }

    /// The line to log for `text`, cut to [`MAX_LOG_LINE_BYTES`], or `None` when this hook
    /// call has logged its [`MAX_LOG_LINES`].
    pub fn log_line(&mut self, text: &str) -> Option<String> {
        if self.log_lines >= MAX_LOG_LINES {
            return None;
        }
        self.log_lines += 1;
        Some(cut(text))
    }
}

/// `text` within [`MAX_LOG_LINE_BYTES`], on a character boundary, saying how much was cut.
fn cut(text: &str) -> String {
    if text.len() <= MAX_LOG_LINE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end)
}

/// Why the state a hook left cannot be kept: more than [`MAX_STATE_BYTES`] of JSON. Measured
/// without encoding it, and given up as soon as it is over: a map of 9 000 copies of one
/// 32 KiB string is small in memory and 295 MB as JSON.
pub fn check_state(state: &Dynamic) -> Result<usize, String> {
    json_size(state, MAX_STATE_BYTES).ok_or_else(|| {
        format!(
            "the state would be more than {MAX_STATE_BYTES} bytes of JSON (the state limit per \
             conversation); keep less in `this`"
        )
    })
}

/// Why a step that writes `state` bytes of state besides what its hook asked for is too big.
pub fn check_step(budget: &Budget, state: usize) -> Result<(), String> {
    let total = budget.written + state;
    if total > MAX_STEP_BYTES {
        return Err(format!(
            "this step would write more than {MAX_STEP_BYTES} bytes (the per-step write \
             limit: {state} of state and {} of messages, payloads and records)",
            budget.written
        ));
    }
    Ok(())
}

/// Nesting the size walk follows; deeper is over any limit (and serde would follow it too).
const MAX_DEPTH: usize = 64;

/// The length of `value` as JSON (near enough: floats by their display), or `None` once it
/// passes `max` or nests deeper than `MAX_DEPTH`.
pub fn json_size(value: &Dynamic, max: usize) -> Option<usize> {
    let mut size = 0;
    add_json_size(value, 0, &mut size, max)?;
    Some(size)
}

fn add_json_size(value: &Dynamic, depth: usize, size: &mut usize, max: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        *size += 2 + map.len().saturating_sub(1);
        for (key, item) in map.iter() {
            *size += string_size(key) + 1;
            add_json_size(item, depth + 1, size, max)?;
        }
    } else if let Some(array) = value.read_lock::<rhai::Array>() {
        *size += 2 + array.len().saturating_sub(1);
        for item in array.iter() {
            add_json_size(item, depth + 1, size, max)?;
        }
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        *size += string_size(&text);
    } else if value.is_unit() {
        *size += 4;
    } else {
        *size += value.to_string().len();
    }
    (*size <= max).then_some(())
}

/// A JSON string's length: quotes, and escapes for quotes, backslashes and control characters.
fn string_size(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The log lines one flow may still write: a token bucket of [`LOG_LINES_PER_MINUTE`] that
/// refills continuously, with what it dropped since it last said so. Time is an input.
#[derive(Debug, Clone)]
pub struct LogRate {
    tokens: f64,
    at: Millis,
    /// Dropped since the last notice, and when that was.
    unreported: u64,
    noticed: Option<Millis>,
}

/// How often a flow's dropped lines are told in the log, at most.
pub const NOTICE_EVERY: Duration = Duration::from_secs(60);

impl LogRate {
    pub fn new(now: Millis) -> LogRate {
        LogRate {
            tokens: LOG_LINES_PER_MINUTE as f64,
            at: now,
            unreported: 0,
            noticed: None,
        }
    }

    /// Whether one more line may go out at `now`.
    pub fn admit(&mut self, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.at).max(0) as f64;
        let per_ms = LOG_LINES_PER_MINUTE as f64 / 60_000.0;
        self.tokens = (self.tokens + elapsed * per_ms).min(LOG_LINES_PER_MINUTE as f64);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts `n` lines dropped at `now`; returns the count to tell the log now (the first
    /// drop at once, then at most once per [`NOTICE_EVERY`]), resetting it.
    pub fn dropped(&mut self, now: Millis, n: u64) -> Option<u64> {
        self.unreported += n;
        let due = (self.noticed)
            .is_none_or(|at| now.saturating_sub(at) >= NOTICE_EVERY.as_millis() as i64);
        if !due || self.unreported == 0 {
            return None;
        }
        self.noticed = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_is_the_length_of_the_json() {
        for json in [
            serde_json::json!({"a": 1, "b": [true, null, "x\"y\n"], "c": {"d": -17}}),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!("Оценка: 5\u{1}"),
            serde_json::json!({"levels": [["998901111111"], ["998902222222", "998903333333"]]}),
        ] {
            let value = rhai::serde::to_dynamic(&json).unwrap();
            assert_eq!(
                json_size(&value, usize::MAX),
                Some(json.to_string().len()),
                "{json}"
            );
        }
    }

    #[test]
    fn json_size_gives_up_once_over() {
        let big = Dynamic::from("x".repeat(32 * 1024));
        let mut map = rhai::Map::new();
        for i in 0..9000 {
            map.insert(format!("k{i}").into(), big.clone());
        }
        assert_eq!(json_size(&map.into(), MAX_STATE_BYTES), None);
        let mut deep = Dynamic::from(1_i64);
        for _ in 0..100 {
            deep = Dynamic::from_array(vec![deep]);
        }
        assert_eq!(json_size(&deep, usize::MAX), None);
    }

    #[test]
    fn a_long_log_line_is_cut_on_a_character_boundary() {
        let mut budget = Budget::default();
        let line = budget.log_line(&"ж".repeat(1000)).unwrap();
        assert!(line.ends_with("… [976 bytes cut]"), "{line}");
        assert!(line.len() < MAX_LOG_LINE_BYTES + 30);
        for _ in 1..MAX_LOG_LINES {
            assert!(budget.log_line("x").is_some());
        }
        assert_eq!(budget.log_line("x"), None);
    }

    #[test]
    fn a_flow_logs_a_minute_of_lines_then_at_the_rate() {
        let mut rate = LogRate::new(0);
        let first = (0..1000).filter(|_| rate.admit(0)).count();
        assert_eq!(first, LOG_LINES_PER_MINUTE);
        // Half a minute later, half a minute's worth.
        let later = (0..1000).filter(|_| rate.admit(30_000)).count();
        assert_eq!(later, LOG_LINES_PER_MINUTE / 2);
        // A clock that goes back gives nothing extra.
        assert!(!rate.admit(10_000));
    }

    #[test]
    fn dropped_lines_are_told_at_once_then_once_a_minute() {
        let mut rate = LogRate::new(0);
        assert_eq!(rate.dropped(1_000, 5), Some(5));
        assert_eq!(rate.dropped(2_000, 7), None);
        assert_eq!(rate.dropped(30_000, 1), None);
        assert_eq!(rate.dropped(61_000, 2), Some(10));
        assert_eq!(rate.dropped(62_000, 0), None);
    }
}
