//! What the comments say: the words and word pairs most often found in negative (1–2) and in
//! positive (4–5) comments, each with the form it is usually written in and a few example
//! comments.
//!
//! Comments are Russian, Uzbek (Latin, with `oʻ`/`gʻ` written with any apostrophe, and
//! Cyrillic) and English. Each comment is split into words (letters, plus an apostrophe between
//! letters), lowercased (Russian `ё` as `е`), stripped of the lexicons' stopwords
//! (`src/report/lexicon/`), and
//! stemmed: Russian and English with the Snowball stemmers (rust-stemmers), Uzbek with a light
//! suffix stripper (plural and case endings; there is no maintained Uzbek stemmer). A negation
//! stays with its word: `не дозвонился` counts as one term `не дозвон`, `yaxshi emas` as
//! `yaxshi emas`. A term counts once per comment (document frequency), so one long rant
//! repeating a word cannot outweigh five customers saying it once.
//!
//! Next to these per-score terms, `problems` and `praise` come from the comments' clauses,
//! whatever the score ([`clauses`]): what a manager acts on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use super::clauses::{self, Finding};
use super::lexicon::{LEXICON, normalise};

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

use crate::store::Rating;

/// Terms (and bigrams) listed per polarity.
pub const TOP_TERMS: usize = 10;
/// Example comments kept per listed term.
pub const EXAMPLES: usize = 3;
/// Example comments are cut to this many characters.
pub const EXAMPLE_CHARS: usize = 160;
/// A bigram must occur in this many comments to be listed.
pub const MIN_BIGRAM: u64 = 2;

/// The comment analysis of a CSI report. `*_terms` and `*_bigrams` are `[term, comments]`
/// pairs, most frequent first; a term is a stem (`долг` for долго/долгое), a bigram two stems
/// separated by a space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comments {
    /// Comments with a 1–2 rating that had any text.
    pub negative_comments: u64,
    /// Comments with a 4–5 rating that had any text.
    pub positive_comments: u64,
    /// How many of those the terms were counted in (all, up to [`MAX_ANALYSED`]; beyond it
    /// a random sample): the terms' counts are out of this many.
    #[serde(default)]
    pub analysed: u64,
    pub negative_terms: Vec<(String, u64)>,
    pub positive_terms: Vec<(String, u64)>,
    pub negative_bigrams: Vec<(String, u64)>,
    pub positive_bigrams: Vec<(String, u64)>,
    /// For every listed negative term and bigram: its usual spelling and example comments.
    pub negative_examples: BTreeMap<String, Examples>,
    pub positive_examples: BTreeMap<String, Examples>,
    /// Comments with any text, whatever the score (3 included).
    #[serde(default)]
    pub commented: u64,
    /// Of those, how many the problems and praise were found in (all, up to
    /// [`MAX_ANALYSED`]): their `share`s are out of this many.
    #[serde(default)]
    pub clauses_analysed: u64,
    /// What the comments complain about, clause by clause, whatever the score
    /// ([`clauses`]); most common first.
    #[serde(default)]
    pub problems: Vec<Finding>,
    /// What they praise.
    #[serde(default)]
    pub praise: Vec<Finding>,
}

/// How a term is usually written, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Examples {
    /// The most frequent surface form (`долго` for the stem `долг`).
    pub word: String,
    /// Up to [`EXAMPLES`] comments containing it, newest first.
    pub comments: Vec<String>,
}

impl Comments {
    /// `" (terms from a sample of N)"` when the terms were counted in a sample, else empty.
    pub fn sample_note(&self) -> String {
        if self.clauses_analysed < self.commented {
            format!(" (from a random sample of {})", self.clauses_analysed)
        } else {
            String::new()
        }
    }

    /// The readable form of a listed term: its usual spelling, else the stem.
    pub fn word<'a>(&'a self, negative: bool, term: &'a str) -> &'a str {
        let examples = if negative {
            &self.negative_examples
        } else {
            &self.positive_examples
        };
        examples
            .get(term)
            .map(|e| e.word.as_str())
            .filter(|w| !w.is_empty())
            .unwrap_or(term)
    }
}

/// Comments whose terms are counted per report, at most: beyond it a random sample, drawn
/// from the records themselves so the same report gives the same terms (a few microseconds
/// each; 5 000 put a term's share within ±1.4 points at 95 %, and keep a report over
/// millions of ratings well under a tenth of a second).
pub const MAX_ANALYSED: usize = 5_000;

/// Analyses the comments of `ratings` (any order; examples prefer the newest).
pub fn analyse<'a>(ratings: impl IntoIterator<Item = &'a Rating>) -> Comments {
    let mut commented: Vec<&Rating> = ratings
        .into_iter()
        .filter(|r| !r.comment.trim().is_empty())
        .collect();
    let all = commented.len() as u64;
    let (all_negative, all_positive) = (
        commented.iter().filter(|r| r.score <= 2).count() as u64,
        commented.iter().filter(|r| r.score > 3).count() as u64,
    );
    let commented = sample(&mut commented);
    let found = clauses::findings(commented, TOP_TERMS, EXAMPLES, shorten);
    let ratings: Vec<&Rating> = commented.iter().copied().filter(|r| r.score != 3).collect();
    let analysed = ratings.len() as u64;
    let mut negative = Side::default();
    let mut positive = Side::default();
    for r in &ratings {
        let side = if r.score <= 2 {
            &mut negative
        } else {
            &mut positive
        };
        side.add(&r.comment);
    }
    let (negative_terms, negative_bigrams, negative_examples) = negative.top();
    let (positive_terms, positive_bigrams, positive_examples) = positive.top();
    Comments {
        negative_comments: all_negative,
        positive_comments: all_positive,
        analysed,
        negative_terms,
        positive_terms,
        negative_bigrams,
        positive_bigrams,
        negative_examples,
        positive_examples,
        commented: all,
        clauses_analysed: commented.len() as u64,
        problems: found.problems,
        praise: found.praise,
    }
}

/// At most [`MAX_ANALYSED`] of `ratings`, newest first: the ones with the smallest hash of
/// (conversation, time), random yet the same for the same records.
pub fn sample<'a, 'r>(ratings: &'a mut Vec<&'r Rating>) -> &'a [&'r Rating] {
    if ratings.len() > MAX_ANALYSED {
        let draw = |r: &&Rating| splitmix64(r.conversation ^ (r.at as u64).rotate_left(32));
        ratings.select_nth_unstable_by_key(MAX_ANALYSED, draw);
        ratings.truncate(MAX_ANALYSED);
    }
    ratings.sort_by_key(|r| std::cmp::Reverse(r.at));
    ratings
}

/// A 64-bit mix (SplitMix64's finaliser): neighbouring inputs give unrelated outputs.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

type Ranked = Vec<(String, u64)>;

/// Counts of one polarity.
#[derive(Default)]
struct Side {
    comments: Vec<String>,
    terms: HashMap<String, u64>,
    bigrams: HashMap<String, u64>,
    /// term or bigram → surface form → occurrences
    forms: HashMap<String, HashMap<String, u64>>,
    /// term or bigram → indexes into `comments`, in order (newest first)
    seen_in: HashMap<String, Vec<usize>>,
}

impl Side {
    fn add(&mut self, comment: &str) {
        let index = self.comments.len();
        self.comments.push(comment.trim().to_owned());
        let tokens = terms(comment);
        let mut seen = HashSet::new();
        for t in &tokens {
            *self
                .forms
                .entry(t.term.clone())
                .or_default()
                .entry(t.word.clone())
                .or_default() += 1;
            if seen.insert(t.term.clone()) {
                *self.terms.entry(t.term.clone()).or_default() += 1;
                self.seen_in.entry(t.term.clone()).or_default().push(index);
            }
        }
        for pair in tokens.windows(2) {
            let term = format!("{} {}", pair[0].term, pair[1].term);
            let word = format!("{} {}", pair[0].word, pair[1].word);
            *self
                .forms
                .entry(term.clone())
                .or_default()
                .entry(word)
                .or_default() += 1;
            if seen.insert(term.clone()) {
                *self.bigrams.entry(term.clone()).or_default() += 1;
                self.seen_in.entry(term).or_default().push(index);
            }
        }
    }

    fn top(&self) -> (Ranked, Ranked, BTreeMap<String, Examples>) {
        let rank = |counts: &HashMap<String, u64>, min: u64| -> Ranked {
            let mut v: Ranked = counts
                .iter()
                .filter(|(_, n)| **n >= min)
                .map(|(t, n)| (t.clone(), *n))
                .collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(TOP_TERMS);
            v
        };
        let terms = rank(&self.terms, 1);
        let bigrams = rank(&self.bigrams, MIN_BIGRAM);
        let mut examples = BTreeMap::new();
        for (term, _) in terms.iter().chain(&bigrams) {
            let word = self
                .forms
                .get(term)
                .and_then(|forms| {
                    forms
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                        .map(|(w, _)| w.clone())
                })
                .unwrap_or_default();
            let comments = self
                .seen_in
                .get(term)
                .map(|ix| {
                    let mut out: Vec<String> = Vec::new();
                    for &i in ix {
                        let c = shorten(&self.comments[i]);
                        if !out.contains(&c) {
                            out.push(c);
                        }
                        if out.len() == EXAMPLES {
                            break;
                        }
                    }
                    out
                })
                .unwrap_or_default();
            examples.insert(term.clone(), Examples { word, comments });
        }
        (terms, bigrams, examples)
    }
}

pub fn shorten(comment: &str) -> String {
    if comment.chars().count() <= EXAMPLE_CHARS {
        return comment.to_owned();
    }
    let mut s: String = comment.chars().take(EXAMPLE_CHARS - 1).collect();
    s.push('…');
    s
}

/// A counted term and the words it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Stem (with a negation, if any): what is counted.
    pub term: String,
    /// The lowercased words as written.
    pub word: String,
}

/// The terms of one comment, in order, stopwords dropped and negations attached.
pub fn terms(comment: &str) -> Vec<Token> {
    let lexicon = &*LEXICON;
    let words = words(comment);
    let uzbek_latin = is_uzbek_latin(&words);
    let uzbek_cyrillic = is_uzbek_cyrillic(&words);
    let mut out: Vec<Token> = Vec::new();
    let mut negation: Option<String> = None;
    for word in words {
        let norm = normalise(&word);
        if lexicon.negate.contains(&norm) || word.ends_with("nʼt") {
            negation = Some(word);
            continue;
        }
        if lexicon.negate_after.contains(&norm) {
            if let Some(last) = out.last_mut() {
                last.term = format!("{} {word}", last.term);
                last.word = format!("{} {word}", last.word);
            }
            continue;
        }
        if word.chars().count() < 2 || lexicon.stop.contains(&norm) {
            continue;
        }
        let stem = stem(&word, uzbek_latin, uzbek_cyrillic);
        out.push(match negation.take() {
            Some(not) => Token {
                term: format!("{not} {stem}"),
                word: format!("{not} {word}"),
            },
            None => Token { term: stem, word },
        });
    }
    out
}

/// Lowercased words: runs of letters, with an apostrophe between two letters kept (as `ʻ`
/// after o/g, the Uzbek oʻ gʻ; as `ʼ` otherwise).
pub fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphabetic() {
            current.extend(c.to_lowercase());
        } else if is_apostrophe(c)
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
        {
            let uzbek_letter = matches!(current.chars().last(), Some('o' | 'g'));
            current.push(if uzbek_letter { 'ʻ' } else { 'ʼ' });
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | '‘' | '`' | 'ʻ' | 'ʼ' | '´' | 'ʹ')
}

/// Whether the Latin words of a comment are Uzbek rather than English: more Uzbek marker
/// words (or `oʻ`/`gʻ`) than English stopwords.
fn is_uzbek_latin(words: &[String]) -> bool {
    let uzbek = words
        .iter()
        .filter(|w| LEXICON.uzbek.contains(&normalise(w)) || w.contains('ʻ'))
        .count();
    let english = words
        .iter()
        .filter(|w| LEXICON.english.contains(&normalise(w)))
        .count();
    uzbek > english
}

/// Whether the Cyrillic words of a comment are Uzbek rather than Russian: a letter only Uzbek
/// has (ў қ ғ ҳ) or an Uzbek marker word.
fn is_uzbek_cyrillic(words: &[String]) -> bool {
    words.iter().any(|w| {
        w.chars().any(|c| matches!(c, 'ў' | 'қ' | 'ғ' | 'ҳ'))
            || LEXICON.uzbek.contains(&normalise(w))
    })
}

static RUSSIAN: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::Russian));
static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// The stem of one lowercased word of a comment in Uzbek Latin or Uzbek Cyrillic (or not).
pub fn stem(word: &str, uzbek_latin: bool, uzbek_cyrillic: bool) -> String {
    let cyrillic = word.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c));
    let latin = word.chars().any(|c| c.is_ascii_alphabetic());
    if cyrillic && !latin {
        if uzbek_cyrillic {
            strip_suffix(word, UZ_CYRILLIC_SUFFIXES)
        } else {
            // Russian writes ё as е more often than not; Uzbek ё is a letter of its own.
            RUSSIAN.stem(&word.replace('ё', "е")).into_owned()
        }
    } else if latin && !cyrillic {
        if uzbek_latin {
            strip_suffix(word, UZ_LATIN_SUFFIXES)
        } else {
            ENGLISH.stem(word).into_owned()
        }
    } else {
        word.to_owned()
    }
}

/// Removes the longest suffix of `suffixes` that leaves at least three letters.
fn strip_suffix(word: &str, suffixes: &[&str]) -> String {
    let mut best: Option<&str> = None;
    for suffix in suffixes {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().count() >= 3
            && best.is_none_or(|b| stem.len() < b.len())
        {
            best = Some(stem);
        }
    }
    best.unwrap_or(word).to_owned()
}

// ---- word lists (the rest are in the lexicon files, src/report/lexicon/) ------------------

const UZ_LATIN_SUFFIXES: &[&str] = &[
    "larning", "lardan", "larga", "larda", "larni", "lari", "lar", "ning", "dagi", "dan", "da",
    "ga", "ka", "qa", "ni", "mi",
];

const UZ_CYRILLIC_SUFFIXES: &[&str] = &[
    "ларнинг",
    "лардан",
    "ларга",
    "ларда",
    "ларни",
    "лари",
    "лар",
    "нинг",
    "даги",
    "дан",
    "да",
    "га",
    "ка",
    "қа",
    "ни",
    "ми",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn terms_of(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|t| t.term).collect()
    }

    #[test]
    fn russian_is_stemmed_and_stopwords_go() {
        assert_eq!(
            terms_of("Оператор был вежлив, но долго пришлось ждать на линии."),
            ["оператор", "вежл", "долг", "ждат", "лин"]
        );
        // Snowball is a stemmer, not a lemmatiser: ждать/ждали/жду keep different stems.
        assert_eq!(terms_of("Ждали ДОЛГО!"), ["ждал", "долг"]);
        assert_eq!(terms_of("всё ещё жду"), ["жду"]);
    }

    #[test]
    fn negations_stay_with_their_word() {
        assert_eq!(terms_of("не дозвонился"), ["не дозвон"]);
        assert_eq!(terms_of("did not help at all"), ["not help"]);
        assert_eq!(terms_of("xizmat yaxshi emas"), ["xizmat", "yaxshi emas"]);
    }

    #[test]
    fn uzbek_latin_apostrophes_are_one_letter() {
        // Four spellings of oʻ: ASCII, U+2018, U+2019, U+02BB.
        for text in ["ko'p kutdim", "ko‘p kutdim", "ko’p kutdim", "koʻp kutdim"] {
            assert_eq!(words(text), ["koʻp", "kutdim"], "{text}");
        }
        assert_eq!(
            terms_of("Operatorlar juda xushmuomala"),
            ["operator", "xushmuomala"]
        );
        assert_eq!(words("ma'lumot"), ["maʼlumot"]);
    }

    #[test]
    fn uzbek_cyrillic_and_english() {
        assert_eq!(terms_of("Хизматдан қониқдим"), ["хизмат", "қониқдим"]);
        assert_eq!(terms_of("жуда ёмон"), ["ёмон"]);
        assert_eq!(terms_of("Всё плохо, ждём"), ["плох", "ждем"]);
        assert_eq!(
            terms_of("The operator was very helpful and polite"),
            ["oper", "help", "polit"]
        );
    }

    #[test]
    fn top_terms_count_comments_not_repeats() {
        let rating = |at, score, comment: &str| Rating {
            conversation: at as u64,
            flow: "survey".into(),
            at,
            msisdn: "998901234567".into(),
            score,
            operator: "op-1".into(),
            channel: "call".into(),
            comment: comment.into(),
        };
        let ratings = [
            rating(1, 1, "Долго ждал, долго, долго!"),
            rating(2, 2, "Очень долго ждать"),
            rating(3, 5, "Вежливый оператор"),
            rating(4, 4, "вежливо и быстро"),
            rating(5, 3, "долго"),
        ];
        let c = analyse(&ratings);
        assert_eq!(c.negative_comments, 2);
        assert_eq!(c.negative_terms[0], ("долг".to_owned(), 2));
        assert_eq!(c.positive_terms[0], ("вежлив".to_owned(), 2));
        let ex = &c.negative_examples["долг"];
        assert_eq!(ex.word, "долго");
        assert_eq!(
            ex.comments,
            ["Очень долго ждать", "Долго ждал, долго, долго!"]
        );
        assert_eq!(c.word(true, "долг"), "долго");
    }

    #[test]
    fn many_comments_are_counted_in_an_even_sample_and_totalled_whole() {
        let ratings: Vec<Rating> = (0..12_000)
            .map(|i| Rating {
                conversation: i,
                flow: "survey".into(),
                at: i as i64,
                msisdn: "998901234567".into(),
                score: 1,
                operator: "op-1".into(),
                channel: "call".into(),
                comment: if i % 2 == 0 {
                    "долго ждать"
                } else {
                    "грубый оператор"
                }
                .into(),
            })
            .collect();
        let c = analyse(&ratings);
        assert_eq!(c.negative_comments, 12_000, "the total is every comment");
        assert_eq!(c.analysed as usize, MAX_ANALYSED);
        let long = c
            .negative_terms
            .iter()
            .find(|(t, _)| t == "долг")
            .expect("listed")
            .1;
        // About half of the sample, as of the whole (±3 % of it).
        let half = MAX_ANALYSED as u64 / 2;
        assert!(
            long.abs_diff(half) < MAX_ANALYSED as u64 * 3 / 100,
            "{long} of {MAX_ANALYSED}"
        );
        assert!(c.sample_note().contains("5000"), "{}", c.sample_note());
    }
}
