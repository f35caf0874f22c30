//! The response feed as a terminal table, CSV or JSON (`smsflow report responses`).

use std::fmt::Write;

use crate::report::feed::Page;
use crate::report::open_calls::OpenPage;

/// A comment in the table is cut to this many characters.
const COMMENT_CHARS: usize = 48;

/// One page (or all of them, gathered) in `format`: `table`, `csv` or `json`.
pub fn render(page: &Page, format: super::Format) -> Result<Vec<u8>, super::RenderError> {
    use super::Format;
    Ok(match format {
        Format::Table => table(page).into_bytes(),
        Format::Csv => csv(page).into_bytes(),
        Format::Json => {
            let mut bytes = serde_json::to_vec_pretty(page)
                .map_err(|e| super::RenderError::Other(e.to_string()))?;
            bytes.push(b'\n');
            bytes
        }
        Format::Html | Format::Xlsx => {
            return Err(super::RenderError::Other(
                "the response feed is a table, CSV or JSON (the dashboard and the XLSX \
                 report carry the newest responses)"
                    .to_owned(),
            ));
        }
    })
}

fn table(page: &Page) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:<12} {:<8} {:<12} comment",
        "at (UTC)", "score", "operator", "channel", "msisdn"
    );
    for r in &page.items {
        let at: String = r.at.chars().take(19).collect::<String>().replace('T', " ");
        let mut comment: String = r.comment.chars().take(COMMENT_CHARS).collect();
        if r.comment.chars().count() > COMMENT_CHARS {
            comment.pop();
            comment.push('…');
        }
        let _ = writeln!(
            out,
            "{at:<20} {:>5} {:<12} {:<8} {:<12} {}",
            r.score,
            cut(&r.operator, 12),
            cut(&r.channel, 8),
            r.msisdn,
            comment.replace(['\n', '\r'], " ")
        );
    }
    if page.items.is_empty() {
        let _ = writeln!(out, "(no responses)");
    }
    if let Some(next) = &page.next {
        let _ = writeln!(out, "more: --cursor {next}");
    }
    out
}

/// `text` in at most `width` characters, the last an ellipsis when it was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

fn csv(page: &Page) -> String {
    let mut out = super::csv::BOM.to_owned();
    let header = [
        "at",
        "conversation",
        "flow",
        "score",
        "operator",
        "channel",
        "msisdn",
        "comment",
    ];
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in &page.items {
        let cells = [
            r.at.clone(),
            r.conversation.to_string(),
            r.flow.clone(),
            r.score.to_string(),
            r.operator.clone(),
            r.channel.clone(),
            r.msisdn.clone(),
            r.comment.clone(),
        ];
        let cells: Vec<String> = cells.iter().map(|c| super::csv::quote(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The open calls (`smsflow report incidents --open`) in `format`: `table`, `csv` or `json`.
pub fn open_calls(page: &OpenPage, format: super::Format) -> Result<Vec<u8>, super::RenderError> {
    use super::Format;
    Ok(match format {
        Format::Table => open_table(page).into_bytes(),
        Format::Csv => {
            let mut out = String::from(super::csv::BOM);
            out.push_str("id,conversation,button,location,state,level,round,taken_by,started_at,age_seconds\r\n");
            for c in &page.items {
                let n = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
                let cells = [
                    super::csv::quote(&c.id),
                    c.conversation.to_string(),
                    super::csv::quote(&c.button),
                    super::csv::quote(&c.location),
                    c.state.clone(),
                    n(c.level),
                    n(c.round),
                    super::csv::quote(c.taken_by.as_deref().unwrap_or("")),
                    c.started_at.clone(),
                    c.age_seconds.to_string(),
                ];
                out.push_str(&cells.join(","));
                out.push_str("\r\n");
            }
            out.into_bytes()
        }
        Format::Json => {
            let mut bytes = serde_json::to_vec_pretty(page)
                .map_err(|e| super::RenderError::Other(e.to_string()))?;
            bytes.push(b'\n');
            bytes
        }
        Format::Html | Format::Xlsx => {
            return Err(super::RenderError::Other(
                "the open calls are a table, CSV or JSON (the dashboard shows them too)".to_owned(),
            ));
        }
    })
}

/// The page as a table for the terminal.
fn open_table(page: &OpenPage) -> String {
    let mut out = String::new();
    if page.items.is_empty() {
        out.push_str("No open calls.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<28} {:<13} {:>5} {:>5} {:<14} {:>8}",
        "button", "location", "state", "level", "round", "taken by", "age"
    );
    for c in &page.items {
        let or_dash = |v: Option<u64>| v.map_or("–".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:<28} {:<13} {:>5} {:>5} {:<14} {:>8}",
            cut(&c.button, 24),
            cut(&c.location, 28),
            c.state,
            or_dash(c.level),
            or_dash(c.round),
            c.taken_by.as_deref().unwrap_or("–"),
            age(c.age_seconds)
        );
    }
    out
}

fn age(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod open_tests {
    use super::*;

    #[test]
    fn ages_read_as_seconds_minutes_and_hours() {
        assert_eq!(age(59.0), "59 s");
        assert_eq!(age(3720.0), "1 h 2 min");
    }
}
