//! The response feed as a terminal table, CSV or JSON (`smsflow report responses`).

use std::fmt::Write;

use crate::report::feed::Page;

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
