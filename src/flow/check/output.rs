//! What `smsflow check` prints: per file its load errors and tests (a failed test with what its
//! scripts printed), then what each text the tests sent costs in SMS (encoding, parts), and
//! the summary line last.

use std::fmt::Write as _;

use super::{Report, TestOutcome};
use crate::flow::runner::FlowError;
use crate::smpp::text::{self, Alphabet};

/// Characters of a text shown in the cost list: its start and its end (where texts of one
/// flow differ: a call's code), the middle elided.
const TEXT_START: usize = 48;
const TEXT_END: usize = 24;
/// Lines a failed test's `print()` output shows at most.
const PRINTED_SHOWN: usize = 50;

/// Prints a report the way `smsflow check` does, grouped by file (`color`: ANSI, for a
/// terminal); returns whether everything passed.
pub fn print(report: &Report, out: &mut impl std::io::Write, color: bool) -> std::io::Result<bool> {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let mut files: Vec<String> = (report.errors.iter().map(FlowError::origin))
        .chain(report.tests.iter().map(|t| t.origin.clone()))
        .collect();
    files.sort();
    files.dedup();
    for file in &files {
        writeln!(out, "{file}")?;
        for error in report.errors.iter().filter(|e| e.origin() == *file) {
            writeln!(out, "  {}  {error}", paint("31", "error"))?;
            if let FlowError::Compile {
                line,
                column,
                source_line,
                ..
            } = error
                && !source_line.is_empty()
            {
                // The line the parser stopped at, with a caret under the column.
                let gutter = format!("{line} | ");
                writeln!(out, "         {gutter}{source_line}")?;
                let pad = " ".repeat(gutter.len() + column.saturating_sub(1));
                writeln!(out, "         {pad}^")?;
            }
        }
        let tests: Vec<&TestOutcome> = (report.tests.iter())
            .filter(|t| t.origin == *file)
            .collect();
        for t in &tests {
            let sms = paint("2", &sms_of_test(t));
            match &t.failure {
                None => writeln!(out, "  {}     {}{sms}", paint("32", "ok"), t.test)?,
                Some(why) => {
                    writeln!(out, "  {}   {}: {why}", paint("31", "FAIL"), t.test)?;
                    for line in t.printed.iter().take(PRINTED_SHOWN) {
                        writeln!(out, "         {}", paint("2", line))?;
                    }
                    if t.printed.len() > PRINTED_SHOWN {
                        let more = t.printed.len() - PRINTED_SHOWN;
                        writeln!(
                            out,
                            "         {}",
                            paint("2", &format!("({more} more lines printed)"))
                        )?;
                    }
                }
            }
        }
        let costs = costs(&tests);
        if !costs.is_empty() {
            writeln!(
                out,
                "  {}",
                paint(
                    "2",
                    "SMS per text the tests sent (each part is billed as one SMS):"
                )
            )?;
            for line in costs {
                writeln!(out, "    {line}")?;
            }
        }
    }
    let failed = report.failed();
    let passed = report.tests.len() + report.errors.len() - failed;
    let summary = format!("{passed} passed, {failed} failed");
    let summary = if failed == 0 {
        paint("32", &summary)
    } else {
        paint("31", &summary)
    };
    writeln!(out, "{summary}")?;
    Ok(report.passed())
}

/// `  (2 messages, 5 SMS)` after a test that sent something: what its conversation cost.
fn sms_of_test(t: &TestOutcome) -> String {
    if t.sent.is_empty() {
        return String::new();
    }
    let parts: usize = t.sent.iter().map(|s| text::cost(s).parts).sum();
    let messages = t.sent.len();
    format!(
        "  ({messages} message{}, {parts} SMS)",
        if messages == 1 { "" } else { "s" }
    )
}

/// One line per distinct text the tests sent, in the order they first appear: its parts, its
/// encoding and length (and what a part less would hold, or what makes a text UCS-2 that
/// would otherwise be GSM-7), the text.
fn costs(tests: &[&TestOutcome]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for text in tests.iter().flat_map(|t| t.sent.iter()) {
        if !seen.contains(&text.as_str()) {
            seen.push(text);
        }
    }
    seen.into_iter()
        .map(|sent| {
            let cost = text::cost(sent);
            let mut line = format!(
                "{} SMS  {}, {} chars",
                cost.parts,
                cost.alphabet.name(),
                cost.units
            );
            if cost.parts > 1 {
                let fewer = cost.parts - 1;
                let _ = write!(line, " ({} fit in {fewer})", cost.alphabet.capacity(fewer));
            }
            // A few characters outside GSM 03.38 in a Latin text: name them, they cost the
            // shorter UCS-2 parts.
            let outside = sent.chars().filter(|c| cost.not_gsm7.contains(c)).count();
            if cost.alphabet == Alphabet::Ucs2 && outside <= 3 && cost.units > 10 {
                let chars: Vec<String> = cost.not_gsm7.iter().map(|c| format!("{c:?}")).collect();
                let _ = write!(line, ", UCS-2 because of {}", chars.join(" "));
            }
            format!("{line}  «{}»", elided(sent))
        })
        .collect()
}

/// `text`, its middle elided when it is longer than [`TEXT_START`] + [`TEXT_END`].
fn elided(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= TEXT_START + TEXT_END {
        return text.to_owned();
    }
    let start: String = chars[..TEXT_START].iter().collect();
    let end: String = chars[chars.len() - TEXT_END..].iter().collect();
    format!("{}…{}", start.trim_end(), end.trim_start())
}
