//! The comment lexicons: the data files in `src/report/lexicon/` (their README says the
//! format and how to extend them), parsed once into lookup tables. Words are looked up
//! normalised by [`normalise`]: lower case, `ё` as `е`, apostrophes inside a word left out
//! except Uzbek `oʻ`/`gʻ`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// The files, compiled in.
const FILES: [(&str, &str); 3] = [
    ("ru.txt", include_str!("lexicon/ru.txt")),
    ("uz.txt", include_str!("lexicon/uz.txt")),
    ("en.txt", include_str!("lexicon/en.txt")),
];

/// Which side a word takes a clause to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    Problem,
    Praise,
    /// Neither alone; a problem when negated (`дозвонился`).
    Expect,
}

/// A problem, praise or expect word: its side and the label the report shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub polarity: Polarity,
    pub label: String,
}

/// Every lexicon file merged.
#[derive(Debug, Default)]
pub struct Lexicon {
    words: HashMap<String, Entry>,
    prefixes: HashMap<String, Entry>,
    longest_prefix: usize,
    pub negate: HashSet<String>,
    pub negate_after: HashSet<String>,
    negate_suffixes: Vec<String>,
    pub intensifier: HashSet<String>,
    /// Words that wish for what a praise word names (`можно быстрее`, `could be faster`).
    pub wish: HashSet<String>,
    pub contrast: HashSet<String>,
    pub keep: HashSet<String>,
    pub filler: HashSet<String>,
    pub stop: HashSet<String>,
    /// English function words (also in `stop`).
    pub english: HashSet<String>,
    pub uzbek: HashSet<String>,
}

/// The lexicon of the compiled-in files.
pub static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut lexicon = Lexicon::default();
    for (name, text) in FILES {
        // The files are part of the source and tested (`every_shipped_file_parses`).
        if let Err(e) = lexicon.add(text) {
            panic!("src/report/lexicon/{name}:{e}");
        }
    }
    lexicon
});

impl Lexicon {
    /// Adds the directives of one file; an error is `line: what is wrong`.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let Some(directive) = fields.next() else {
                continue;
            };
            let error = |what: &str| format!("{}: {what}", n + 1);
            let polarity = match directive {
                "problem" => Some(Polarity::Problem),
                "praise" => Some(Polarity::Praise),
                "expect" => Some(Polarity::Expect),
                _ => None,
            };
            if let Some(polarity) = polarity {
                let label = fields.next().ok_or_else(|| error("a label is missing"))?;
                let patterns: Vec<&str> = fields.collect();
                if patterns.is_empty() {
                    return Err(error(&format!("{label:?} has no patterns")));
                }
                for pattern in patterns {
                    self.add_pattern(pattern, polarity, label);
                }
                continue;
            }
            let set = match directive {
                "negate" => &mut self.negate,
                "negate_after" => &mut self.negate_after,
                "intensifier" => &mut self.intensifier,
                "wish" => &mut self.wish,
                "contrast" => &mut self.contrast,
                "keep" => &mut self.keep,
                "filler" => &mut self.filler,
                "stop" => &mut self.stop,
                "uzbek" => &mut self.uzbek,
                "english" => {
                    let words: Vec<String> = fields.map(normalise).collect();
                    self.stop.extend(words.iter().cloned());
                    self.english.extend(words);
                    continue;
                }
                "negate_suffix" => {
                    self.negate_suffixes.extend(fields.map(normalise));
                    continue;
                }
                other => return Err(error(&format!("unknown directive {other:?}"))),
            };
            set.extend(fields.map(normalise));
        }
        // Longest first, so `мадим` is tried before `мади`.
        self.negate_suffixes
            .sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        Ok(())
    }

    fn add_pattern(&mut self, pattern: &str, polarity: Polarity, label: &str) {
        let entry = Entry {
            polarity,
            label: label.replace('_', " "),
        };
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                let prefix = normalise(prefix);
                self.longest_prefix = self.longest_prefix.max(prefix.chars().count());
                self.prefixes.insert(prefix, entry);
            }
            None => {
                self.words.insert(normalise(pattern), entry);
            }
        }
    }

    /// The entry a normalised word matches: the whole word, else its longest listed prefix.
    pub fn entry(&self, word: &str) -> Option<&Entry> {
        if let Some(e) = self.words.get(word) {
            return Some(e);
        }
        let ends: Vec<usize> = word
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take(self.longest_prefix)
            .collect();
        ends.iter()
            .rev()
            .find_map(|&end| self.prefixes.get(&word[..end]))
    }

    /// For a negated verb (`bermadi`): what is left of it without its negative suffix, when
    /// that leaves at least two letters.
    pub fn negated_verb<'a>(&self, word: &'a str) -> Option<&'a str> {
        self.negate_suffixes.iter().find_map(|suffix| {
            word.strip_suffix(suffix.as_str())
                .filter(|stem| stem.chars().count() >= 2)
        })
    }
}

/// A word as the lexicon lists it: lower case, `ё` as `е`, `ʻ` kept after o/g (Uzbek), any
/// other apostrophe dropped (`didnʼt` → `didnt`).
pub fn normalise(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars().flat_map(char::to_lowercase) {
        match c {
            'ё' => out.push('е'),
            '\'' | '’' | '‘' | '`' | 'ʻ' | 'ʼ' | '´' | 'ʹ' => {
                if matches!(out.chars().last(), Some('o' | 'g')) {
                    out.push('ʻ');
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_file_parses() {
        for (name, text) in FILES {
            let mut l = Lexicon::default();
            l.add(text).unwrap_or_else(|e| panic!("{name}:{e}"));
            assert!(!l.words.is_empty() || !l.prefixes.is_empty(), "{name}");
        }
        assert!(LEXICON.stop.contains("и"));
    }

    #[test]
    fn the_longest_match_wins() {
        let l = &*LEXICON;
        assert_eq!(l.entry("невежливо").unwrap().polarity, Polarity::Problem);
        assert_eq!(l.entry("вежливая").unwrap().polarity, Polarity::Praise);
        assert_eq!(l.entry("недолго").unwrap().polarity, Polarity::Praise);
        assert_eq!(l.entry("долго").unwrap().label, "долго");
        assert_eq!(l.entry(&normalise("Ждём")).unwrap().label, "ждать");
        assert_eq!(l.entry("operator"), None);
        assert_eq!(l.entry(&normalise("zo'r")).unwrap().label, "zoʻr");
        assert_eq!(l.negated_verb("bermadi"), Some("ber"));
        assert_eq!(l.negated_verb("qoniqmadim"), Some("qoniq"));
        assert_eq!(l.negated_verb("madi"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let mut l = Lexicon::default();
        assert_eq!(
            l.add("# ok\nproblem долго\n").unwrap_err(),
            "2: \"долго\" has no patterns"
        );
        assert_eq!(
            l.add("praize x y").unwrap_err(),
            "1: unknown directive \"praize\""
        );
    }
}
