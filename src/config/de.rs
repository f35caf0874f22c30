//! serde deserializers for the value kinds the file uses: durations, ports, sizes, socket
//! addresses, time zones; each error says how to write the value.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration string like \"500ms\", \"30s\", \"3m\" or \"24h\"")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format!(
                    "invalid duration \"{text}\": {e} (write it like \"500ms\", \"30s\", \"3m\" \
                     or \"24h\")"
                ))
            })
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

pub(super) fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let value = i64::deserialize(deserializer)?;
    u16::try_from(value)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| de::Error::custom(format!("port {value} is out of range (use 1..=65535)")))
}

/// A byte size: a number of bytes, or a string like `"64KiB"`, `"1MiB"`, `"512B"`. One too
/// large to count saturates, so the key's range check says it is out of range.
pub(super) fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"64KiB\" or \"1MiB\"")
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<usize, E> {
            u64::try_from(n)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .map_err(|_| E::custom(format!("{n} is not a size ({SIZE_HINT})")))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<usize, E> {
            parse_size(text)
                .ok_or_else(|| E::custom(format!("\"{text}\" is not a size ({SIZE_HINT})")))
        }
    }
    deserializer.deserialize_any(SizeVisitor)
}

const SIZE_HINT: &str = "write a number of bytes or e.g. \"64KiB\", \"1MiB\" or \"4096B\"";

/// Digits and a unit; `None` if it is not that, `usize::MAX` if it is more than that.
pub(super) fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        "TiB" | "TB" | "T" => 1 << 40,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    // All digits: a parse error can only be overflow.
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes));
    Some(
        bytes
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or(usize::MAX),
    )
}

pub(super) fn socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid socket address \"{text}\" (write IP:PORT, e.g. \"127.0.0.1:8080\" or \
             \"[::1]:8080\")"
        ))
    })
}

pub(super) fn timezone<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<jiff::tz::TimeZone, D::Error> {
    let name = String::deserialize(deserializer)?;
    jiff::tz::TimeZone::get(&name).map_err(|_| {
        de::Error::custom(format!(
            "unknown time zone \"{name}\" (use an IANA name such as \"Asia/Tashkent\" or \
             \"UTC\")"
        ))
    })
}
