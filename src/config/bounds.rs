//! Values serde accepts but that cannot work: `enquire_link_interval = "0s"` floods the
//! carrier, `response_timeout = "0s"` never binds, `window = 1000000000` is a typo. Each key
//! has a range; an error names the key, the value as the file writes it (`"400d"`) and the
//! range in the units people write (`"100ms" to "10m"`, `"1KiB" to "16MiB"`).

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
/// Under 100 ms nothing answers; past 2 min a hung receiver holds a delivery slot for nothing.
const WEBHOOK_TIMEOUT: RangeInclusive<Duration> = millis(100)..=secs(120);
/// Reports read the stream; under an hour its events are gone before one does.
const EXPORT_MIN_AGE: Duration = secs(3600);

/// The value of a key as the file writes it (`"400d"`, `1099511627776`), for messages;
/// `None` for a key the file leaves out (a default).
pub(super) type Written<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Checks every bounded key of `config`; messages quote a value as `written`.
pub(super) fn check(config: &Config, written: Written) -> Result<(), (String, String)> {
    let duration = |key: String, range: &RangeInclusive<Duration>, value: Duration| {
        within(range, value, written(&key), |d| quoted(duration_text(d))).map_err(|m| (key, m))
    };
    let count = |key: String, range: &RangeInclusive<u64>, value: u64| {
        within(range, value, written(&key), |n| n.to_string()).map_err(|m| (key, m))
    };
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
    let key = "service.min_free_space".to_owned();
    within(
        &MIN_FREE_SPACE,
        service.min_free_space as u64,
        written(&key),
        |n| quoted(size_text(n)),
    )
    .map_err(|m| (key, m))?;
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
    let key = "http.max_body".to_owned();
    within(&MAX_BODY, http.max_body as u64, written(&key), |n| {
        quoted(size_text(n))
    })
    .map_err(|m| (key, m))?;
    for (i, webhook) in config.webhook.iter().enumerate() {
        duration(
            format!("webhook[{i}].timeout"),
            &WEBHOOK_TIMEOUT,
            webhook.timeout,
        )?;
    }
    if let Some(export) = &config.export
        && export.max_age < EXPORT_MIN_AGE
    {
        let key = "export.max_age".to_owned();
        let value = shown(written(&key), || quoted(duration_text(export.max_age)));
        return Err((
            key,
            format!(
                "{value} is under an hour: events would be gone before a report reads them \
                 (allowed at least \"{}\")",
                duration_text(EXPORT_MIN_AGE)
            ),
        ));
    }
    Ok(())
}

/// `Err(message)` when `value` is outside `range`: the value as `written` (else `show`n),
/// and the range's ends `show`n.
fn within<T: PartialOrd + Copy, S: Display>(
    range: &RangeInclusive<T>,
    value: T,
    written: Option<String>,
    show: impl Fn(T) -> S,
) -> Result<(), String> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(format!(
        "{} is out of range (allowed {} to {})",
        shown(written, || show(value)),
        show(*range.start()),
        show(*range.end())
    ))
}

/// The value as the file writes it, else as we would write it.
pub(super) fn shown<S: Display>(written: Option<String>, show: impl FnOnce() -> S) -> String {
    written.unwrap_or_else(|| show().to_string())
}

fn quoted(text: String) -> String {
    format!("\"{text}\"")
}

/// A duration in the one unit that writes it exactly, the way people write config: `400d`,
/// `24h`, `10m`, `90s`, `100ms` (humantime would say `1year 1month 4days 7h 26m 24s` for
/// the first). Days only from 2 days on, so a day reads `24h`.
pub(super) fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    const UNITS: [(u128, &str); 4] = [(3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")];
    if ms >= 2 * 86_400_000 && ms.is_multiple_of(86_400_000) {
        return format!("{}d", ms / 86_400_000);
    }
    let (size, unit) = (UNITS.iter())
        .find(|(size, _)| ms.is_multiple_of(*size) && ms > 0)
        .unwrap_or(&(1, "ms"));
    format!("{}{unit}", ms / size)
}

/// A byte count in the largest binary unit that writes it exactly: `16MiB`, `1KiB`, `1000B`.
pub(super) fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    match UNITS
        .iter()
        .find(|(size, _)| bytes > 0 && bytes.is_multiple_of(*size))
    {
        Some((size, unit)) => format!("{}{unit}", bytes / size),
        None => format!("{bytes}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        let cases = [
            (secs(400 * 86_400), "400d"),
            (secs(86_400), "24h"),
            (secs(3600), "1h"),
            (secs(5400), "90m"),
            (secs(90), "90s"),
            (millis(100), "100ms"),
            (millis(1500), "1500ms"),
            (secs(0), "0ms"),
        ];
        for (d, text) in cases {
            assert_eq!(duration_text(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d, "{text}");
        }
        assert_eq!(size_text(16 << 20), "16MiB");
        assert_eq!(size_text(1024), "1KiB");
        assert_eq!(size_text(1000), "1000B");
        assert_eq!(size_text(1 << 40), "1TiB");
    }
}
