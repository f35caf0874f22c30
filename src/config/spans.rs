//! Where an error is in the file (line and dotted key path), and serde's messages rewritten
//! in smsflow's voice.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Rewrites serde's messages in smsflow's voice; `key` is where the span pointed.
pub(super) fn describe(message: &str, key: Option<String>) -> (Option<String>, String) {
    // serde's `unknown_field`: "unknown field `windw`, expected one of `a`, `b`" (or
    // "expected `a`", or "there are no fields").
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let suggestion = known
            .iter()
            .map(|k| (strsim::levenshtein(field, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min();
        let hint = match suggestion {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None if known.is_empty() => "remove it".to_owned(),
            None => format!("expected one of {}", quote_list(&known)),
        };
        // The span points at the key itself; without one, name the key from the message.
        let key = key.or_else(|| Some(field.to_owned()));
        return (key, format!("unknown key ({hint})"));
    }
    // serde's `unknown_variant`: "unknown variant `trx`, expected `transceiver` or `pair`".
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once("`, expected ")
    {
        return (key, format!("unknown value \"{value}\" (use {expected})"));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let key = Some(match key {
            Some(table) => format!("{table}.{field}"),
            None => field.to_owned(),
        });
        return (key, "missing key".to_owned());
    }
    (key, message.trim_end().to_owned())
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Where each key of the document is: its dotted path, the key's span and the value's span.
pub(super) struct Spans<'t> {
    text: &'t str,
    pub(super) entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'t> Spans<'t> {
    pub(super) fn new(text: &'t str, document: &DeTable<'_>) -> Self {
        let mut spans = Spans {
            text,
            entries: Vec::new(),
        };
        spans.table("", document);
        spans
    }

    fn table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.entries.push((path.clone(), key.span(), value.span()));
            self.value(&path, key.span(), value.get_ref());
        }
    }

    fn value(&mut self, path: &str, key_span: Range<usize>, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.table(path, table),
            DeValue::Array(array) => {
                for (i, item) in array.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    // An array of tables' element spans its `[[header]]`; for a key inside
                    // an inline array the key's own line is the best anchor.
                    let span = if item.span().is_empty() {
                        key_span.clone()
                    } else {
                        item.span()
                    };
                    self.entries
                        .push((item_path.clone(), span.clone(), span.clone()));
                    self.value(&item_path, span, item.get_ref());
                }
            }
            _ => {}
        }
    }

    /// The line and key path of an error span: the key whose name is the span, else the
    /// narrowest value that contains it.
    pub(super) fn at(&self, span: &Range<usize>) -> (Option<usize>, Option<String>) {
        let line = Some(line_of(self.text, span.start));
        if let Some((path, _, _)) = self.entries.iter().find(|(_, k, _)| k == span) {
            return (line, Some(path.clone()));
        }
        let narrowest = self
            .entries
            .iter()
            .filter(|(_, _, v)| v.start <= span.start && span.end <= v.end)
            .min_by_key(|(_, _, v)| v.len());
        (line, narrowest.map(|(path, _, _)| path.clone()))
    }

    /// The value of `path` as the file writes it (`"400d"` with its quotes, `1024`), if the
    /// file has the key.
    pub(super) fn written(&self, path: &str) -> Option<&'t str> {
        let (_, _, value) = self.entries.iter().find(|(p, _, _)| p == path)?;
        self.text.get(value.clone())
    }

    /// The line of `path`, or of its nearest parent present in the file (a key that was
    /// left out is reported at its table).
    pub(super) fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some((_, k, _)) = self.entries.iter().find(|(p, _, _)| p == path) {
                return Some(line_of(self.text, k.start));
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}
