//! Values serde accepts but that cannot work: `enquire_link_interval = "0s"` floods the
//! carrier, `response_timeout = "0s"` never binds, `window = 1000000000` is a typo. Each key
//! has a range; an error names the key, the range and the value.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::Config;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `[[smsc]]` durations: (key, allowed).
const SMSC_DURATIONS: [(&str, RangeInclusive<Duration>); 4] = [
    // Carriers ask for 30–60 s; under a second is a flood, over an hour lets NATs drop the link.
    ("enquire_link_interval", secs(1)..=secs(3600)),
    // A response within 100 ms is a LAN at best; past 5 min a dead link goes unnoticed.
    ("response_timeout", millis(100)..=secs(300)),
    ("reconnect_min", millis(10)..=secs(3600)),
    ("reconnect_max", millis(10)..=secs(3600)),
];

/// `[[smsc]]` counts: (key, allowed).
const SESSIONS: RangeInclusive<u64> = 1..=64;
/// SMPP windows are tens to a few hundred; thousands of unacknowledged PDUs is a typo.
const WINDOW: RangeInclusive<u64> = 1..=10_000;
const TPS: RangeInclusive<u64> = 0..=100_000;

const REDELIVERY_WINDOW: RangeInclusive<Duration> = secs(1)..=secs(24 * 3600);
/// Under 100 ms nothing in flight can finish; over 10 min a stop is a hang by another name.
const SHUTDOWN_TIMEOUT: RangeInclusive<Duration> = millis(100)..=secs(600);
const HTTP_TIMEOUTS: RangeInclusive<Duration> = millis(100)..=secs(600);
const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=65_536;
const MAX_BODY: RangeInclusive<u64> = 1024..=16 * 1024 * 1024;
/// Up to 1 TiB; 0 turns the check off.
const MIN_FREE_SPACE: RangeInclusive<u64> = 0..=1 << 40;

/// Checks every bounded key of `config`.
pub(super) fn check(config: &Config) -> Result<(), (String, String)> {
    for (i, smsc) in config.smsc.iter().enumerate() {
        let key = |k: &str| format!("smsc[{i}].{k}");
        let durations = [
            smsc.enquire_link_interval,
            smsc.response_timeout,
            smsc.reconnect_min,
            smsc.reconnect_max,
        ];
        for ((name, range), value) in SMSC_DURATIONS.iter().zip(durations) {
            duration(key(name), range, value)?;
        }
        count(key("sessions"), &SESSIONS, smsc.sessions.into())?;
        count(key("window"), &WINDOW, smsc.window.into())?;
        count(key("tps"), &TPS, smsc.tps.into())?;
    }
    let service = &config.service;
    duration(
        "service.redelivery_window".into(),
        &REDELIVERY_WINDOW,
        service.redelivery_window,
    )?;
    count(
        "service.min_free_space".into(),
        &MIN_FREE_SPACE,
        service.min_free_space as u64,
    )?;
    duration(
        "service.shutdown_timeout".into(),
        &SHUTDOWN_TIMEOUT,
        service.shutdown_timeout,
    )?;
    let http = &config.http;
    duration(
        "http.header_read_timeout".into(),
        &HTTP_TIMEOUTS,
        http.header_read_timeout,
    )?;
    duration(
        "http.request_timeout".into(),
        &HTTP_TIMEOUTS,
        http.request_timeout,
    )?;
    count(
        "http.max_connections".into(),
        &MAX_CONNECTIONS,
        http.max_connections as u64,
    )?;
    count("http.max_body".into(), &MAX_BODY, http.max_body as u64)
}

fn duration(
    key: String,
    range: &RangeInclusive<Duration>,
    value: Duration,
) -> Result<(), (String, String)> {
    let show = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
    within(key, range, value, show)
}

fn count(key: String, range: &RangeInclusive<u64>, value: u64) -> Result<(), (String, String)> {
    within(key, range, value, |n| n.to_string())
}

fn within<T: PartialOrd + Copy, S: Display>(
    key: String,
    range: &RangeInclusive<T>,
    value: T,
    show: impl Fn(T) -> S,
) -> Result<(), (String, String)> {
    if range.contains(&value) {
        return Ok(());
    }
    Err((
        key,
        format!(
            "{} is out of range (allowed {} to {})",
            show(value),
            show(*range.start()),
            show(*range.end())
        ),
    ))
}
