//! Problems and praise in the comments, clause by clause: `Оператор был вежлив, но долго
//! пришлось ждать на линии.` is praise (`вежлив`) *and* a problem (`долго ждать на линии`),
//! whatever the score.
//!
//! A comment is split at sentence ends, commas and contrast words (`но`, `but`, `lekin`). Each
//! clause's words are looked up in the [lexicons](super::lexicon) (Russian, Uzbek in both
//! scripts, English): problem words count −1, praise words +1, negated ones the other way
//! (`не дозвонился`, `yaxshi emas`, `not rude at all`). The sum decides; a clause with no lexicon
//! word (or a tie) takes the side opposite to the clause before a contrast word, else the
//! score's: 1–2 a problem, 4–5 praise, 3 neither. So the score is a prior, not the rule.
//!
//! Findings are counted per comment (one comment saying it twice counts once) and grouped by
//! the labels of their lexicon words (`долго ждал` and `ждать долго` are one finding); each is
//! shown as its most common wording when most of them read so, else as its labels.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::lexicon::{LEXICON, Lexicon, Polarity, normalise};
use super::stats;
use crate::store::Rating;

/// A negation reaches the first lexicon word within this many words after it.
const NEGATION_REACH: usize = 3;
/// A phrase quotes at most this many words.
const PHRASE_WORDS: usize = 7;

/// Which side of the ledger a clause is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Problem,
    Praise,
}

impl Side {
    fn opposite(self) -> Side {
        match self {
            Side::Problem => Side::Praise,
            Side::Praise => Side::Problem,
        }
    }

    /// The side a score leans to: 1–2 problem, 4–5 praise, 3 none.
    fn of_score(score: u8) -> Option<Side> {
        match score {
            0..=2 => Some(Side::Problem),
            3 => None,
            _ => Some(Side::Praise),
        }
    }
}

/// One classified clause of a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub side: Side,
    /// What findings are grouped by: the sorted labels (or, without lexicon words, the
    /// content words).
    pub key: String,
    /// The labels in the order written (`долго ждать`, `не дозвониться`).
    pub lemma: String,
    /// The clause's wording, trimmed to its point (`долго ждать на линии`).
    pub phrase: String,
}

/// A word or number of a comment.
#[derive(Debug, Clone)]
struct Token {
    /// Lower case as written (for phrases).
    text: String,
    /// As the lexicon lists words.
    norm: String,
    number: bool,
}

/// A lexicon word found in a clause: the tokens it spans and what it counts as.
#[derive(Debug, Clone)]
struct Hit {
    start: usize,
    end: usize,
    /// None: an expect word, not negated (counts neither way).
    side: Option<Side>,
    lemma: String,
}

/// The clauses of one comment with a rating of `score`, classified; clauses that say nothing
/// (only fillers or stopwords, or a neutral score and no lexicon word) are left out.
pub fn clauses(score: u8, comment: &str) -> Vec<Clause> {
    let lexicon = &*LEXICON;
    let mut out = Vec::new();
    let mut before_contrast: Option<Side> = None;
    for (after_contrast, tokens) in split(lexicon, comment) {
        let hits = hits(lexicon, &tokens);
        let sum: i32 = hits
            .iter()
            .map(|h| match h.side {
                Some(Side::Problem) => -1,
                Some(Side::Praise) => 1,
                None => 0,
            })
            .sum();
        let side = match sum.signum() {
            -1 => Some(Side::Problem),
            1 => Some(Side::Praise),
            _ if after_contrast && before_contrast.is_some() => before_contrast.map(Side::opposite),
            _ => Side::of_score(score),
        };
        let content: Vec<&Token> = tokens
            .iter()
            .filter(|t| !t.number && is_content(lexicon, &t.norm))
            .collect();
        let (Some(side), false) = (side, hits.is_empty() && content.is_empty()) else {
            before_contrast = None;
            continue;
        };
        before_contrast = Some(side);
        let (key, lemma) = if hits.iter().any(|h| h.side == Some(side)) {
            let mut labels: Vec<&str> = Vec::new();
            for h in hits.iter().filter(|h| h.side == Some(side)) {
                if !labels.contains(&h.lemma.as_str()) {
                    labels.push(&h.lemma);
                }
            }
            let mut sorted = labels.clone();
            sorted.sort_unstable();
            (sorted.join("|"), labels.join(" "))
        } else {
            let words: Vec<&str> = content.iter().map(|t| t.norm.as_str()).collect();
            let mut sorted = words.clone();
            sorted.sort_unstable();
            sorted.dedup();
            (format!("~{}", sorted.join("|")), words.join(" "))
        };
        out.push(Clause {
            side,
            key,
            lemma,
            phrase: phrase(lexicon, &tokens, &hits),
        });
    }
    out
}

/// Words that carry meaning: not a stopword, filler or structure word.
fn is_content(lexicon: &Lexicon, norm: &str) -> bool {
    !(lexicon.stop.contains(norm)
        || lexicon.filler.contains(norm)
        || lexicon.keep.contains(norm)
        || lexicon.negate.contains(norm)
        || lexicon.intensifier.contains(norm))
}

/// The comment's clauses as tokens, each with whether a contrast word opened it.
fn split(lexicon: &Lexicon, comment: &str) -> Vec<(bool, Vec<Token>)> {
    let mut clauses: Vec<(bool, Vec<Token>)> = vec![(false, Vec::new())];
    let mut word = String::new();
    let mut number = false;
    let chars: Vec<char> = comment.chars().collect();
    let flush = |word: &mut String, number: bool, clauses: &mut Vec<(bool, Vec<Token>)>| {
        if word.is_empty() {
            return;
        }
        let text = std::mem::take(word);
        let norm = normalise(&text);
        if lexicon.contrast.contains(&norm) {
            clauses.push((true, Vec::new()));
            return;
        }
        if let Some((_, last)) = clauses.last_mut() {
            last.push(Token { text, norm, number });
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        let joins = |c: char| {
            // An apostrophe or hyphen between two letters is part of the word (koʻp, из-за).
            !word.is_empty() && !number && next.is_alphabetic() && is_joiner(c)
        };
        if c.is_alphabetic() && !number {
            word.extend(c.to_lowercase());
        } else if c.is_ascii_digit() && (number || word.is_empty()) {
            number = true;
            word.push(c);
        } else if joins(c) {
            word.push(if c == '-' { '-' } else { 'ʼ' });
        } else {
            flush(&mut word, number, &mut clauses);
            number = false;
            if c.is_alphanumeric() {
                // A letter right after digits (or the reverse) starts a new token.
                number = c.is_ascii_digit();
                word.extend(c.to_lowercase());
            } else if matches!(
                c,
                '.' | '!' | '?' | ';' | '…' | ',' | '\n' | '(' | ')' | ':'
            ) && clauses.last().is_some_and(|(_, t)| !t.is_empty())
            {
                clauses.push((false, Vec::new()));
            }
        }
    }
    flush(&mut word, number, &mut clauses);
    clauses.retain(|(_, tokens)| !tokens.is_empty());
    clauses
}

fn is_joiner(c: char) -> bool {
    matches!(c, '-' | '\'' | '’' | '‘' | '`' | 'ʻ' | 'ʼ' | '´' | 'ʹ')
}

/// The lexicon words of a clause, negations applied.
fn hits(lexicon: &Lexicon, tokens: &[Token]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    // The negation word and where it stands; where a wish word stands.
    let mut negation: Option<(usize, String)> = None;
    let mut wish: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
        let w = t.norm.as_str();
        if t.number {
            continue;
        }
        if let Some((at, _)) = &negation
            && i - at > NEGATION_REACH
        {
            negation = None;
        }
        if lexicon.negate.contains(w) {
            negation = Some((i, negation_word(w).to_owned()));
            continue;
        }
        if lexicon.wish.contains(w) {
            wish = Some(i);
            continue;
        }
        let previous_hit = hits.last_mut().filter(|h| h.end + 1 == i);
        // Uzbek negates after the word: yaxshi emas, yordam bermadi.
        let verb = lexicon.negated_verb(w);
        if lexicon.negate_after.contains(w) || verb.is_some() {
            if let Some(h) = previous_hit {
                h.side = Some(negated(h.side));
                h.lemma = format!("{} {w}", h.lemma);
                h.end = i;
            } else if let Some(e) = verb.and_then(|stem| lexicon.entry(stem)) {
                // qoniqmadim: the negated form of a listed word.
                hits.push(Hit {
                    start: i,
                    end: i,
                    side: Some(negated(side_of(e.polarity))),
                    lemma: w.to_owned(),
                });
            } else {
                let start = if i > 0 && is_content(lexicon, &tokens[i - 1].norm) {
                    i - 1
                } else {
                    i
                };
                let lemma = (start..=i)
                    .map(|j| tokens[j].norm.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                hits.push(Hit {
                    start,
                    end: i,
                    side: Some(Side::Problem),
                    lemma,
                });
            }
            continue;
        }
        let Some(entry) = lexicon.entry(w) else {
            continue;
        };
        let side = side_of(entry.polarity);
        if let Some(at) = wish.take().filter(|at| i - at <= NEGATION_REACH)
            && side == Some(Side::Praise)
            && negation.is_none()
        {
            // "можно быстрее": what is wished for is missing.
            hits.push(Hit {
                start: at,
                end: i,
                side: Some(Side::Problem),
                lemma: format!("{} {}", tokens[at].norm, entry.label),
            });
            continue;
        }
        hits.push(match negation.take() {
            Some((at, not)) => Hit {
                start: at,
                end: i,
                side: Some(negated(side)),
                lemma: format!("{not} {}", entry.label),
            },
            None => Hit {
                start: i,
                end: i,
                side,
                lemma: entry.label.clone(),
            },
        });
    }
    hits
}

fn side_of(polarity: Polarity) -> Option<Side> {
    match polarity {
        Polarity::Problem => Some(Side::Problem),
        Polarity::Praise => Some(Side::Praise),
        Polarity::Expect => None,
    }
}

/// Negated: a problem is praise, praise a problem, and an expectation not met a problem.
fn negated(side: Option<Side>) -> Side {
    side.map_or(Side::Problem, Side::opposite)
}

/// How a negation reads in a label: English contractions as `not`.
fn negation_word(w: &str) -> &str {
    if w.ends_with("nt") || w == "cannot" {
        "not"
    } else {
        w
    }
}

/// The words of the clause that make its point: from the first to the last lexicon word, then
/// what they are about (`на линии`, `40 минут`); stopwords inside dropped unless they follow
/// a negation (`не было проблем`) or are prepositions. A clause without lexicon words quotes
/// its first content words.
fn phrase(lexicon: &Lexicon, tokens: &[Token], hits: &[Hit]) -> String {
    let content = |t: &Token| t.number || is_content(lexicon, &t.norm);
    let (mut start, mut end) = match (hits.first(), hits.iter().map(|h| h.end).max()) {
        (Some(first), Some(last)) => (
            hits.iter().map(|h| h.start).min().unwrap_or(first.start),
            last,
        ),
        _ => {
            let words: Vec<&str> = (tokens.iter())
                .filter(|t| content(t))
                .take(PHRASE_WORDS)
                .map(|t| t.text.as_str())
                .collect();
            return words.join(" ");
        }
    };
    // What it is about: up to two words after it.
    let mut added = 0;
    while added < 2 && end + 1 < tokens.len() {
        let next = &tokens[end + 1];
        let about = content(next)
            || (lexicon.keep.contains(&next.norm) && tokens.get(end + 2).is_some_and(content));
        if !about || lexicon.entry(&next.norm).is_some() {
            break;
        }
        end += 1;
        added += usize::from(content(next));
    }
    if start > 0 && content(&tokens[start - 1]) && lexicon.entry(&tokens[start - 1].norm).is_none()
    {
        start -= 1;
    }
    let in_hit = |i: usize| hits.iter().any(|h| h.start <= i && i <= h.end);
    let mut words: Vec<&str> = Vec::new();
    for i in start..=end {
        let t = &tokens[i];
        let after_negation = i > 0 && lexicon.negate.contains(&tokens[i - 1].norm);
        let keep = in_hit(i)
            || content(t)
            || lexicon.keep.contains(&t.norm)
            || lexicon.negate.contains(&t.norm)
            || after_negation;
        if keep && (in_hit(i) || !lexicon.filler.contains(&t.norm)) {
            words.push(&t.text);
        }
    }
    words.truncate(PHRASE_WORDS);
    words.join(" ")
}

/// A problem or a praise as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How it is most often worded, or its lemma when wordings vary.
    pub term: String,
    /// Its lexicon labels in order (`долго ждать`).
    pub lemma: String,
    /// Comments that say it.
    pub count: u64,
    /// Of the comments analysed, 0–100.
    pub share: f64,
    /// Some of those comments, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// The top problems and praise of some comments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub problems: Vec<Finding>,
    pub praise: Vec<Finding>,
}

#[derive(Default)]
struct Group {
    lemma: String,
    count: u64,
    forms: HashMap<String, u64>,
    /// Indexes into the comments, newest first.
    examples: Vec<usize>,
}

/// The `top` problems and praise of `ratings` (newest first), each with up to `examples`
/// example comments (cut by `shorten`).
pub fn findings(
    ratings: &[&Rating],
    top: usize,
    examples: usize,
    shorten: impl Fn(&str) -> String,
) -> Findings {
    let mut groups: HashMap<(bool, String), Group> = HashMap::new();
    let mut analysed = 0u64;
    for (index, r) in ratings.iter().enumerate() {
        if r.comment.trim().is_empty() {
            continue;
        }
        analysed += 1;
        let mut counted: Vec<(bool, String)> = Vec::new();
        for clause in clauses(r.score, &r.comment) {
            let id = (clause.side == Side::Problem, clause.key);
            let g = groups.entry(id.clone()).or_default();
            if g.lemma.is_empty() {
                g.lemma = clause.lemma;
            }
            *g.forms.entry(clause.phrase).or_default() += 1;
            if !counted.contains(&id) {
                g.count += 1;
                if g.examples.len() < examples {
                    g.examples.push(index);
                }
                counted.push(id);
            }
        }
    }
    let mut problems = Vec::new();
    let mut praise = Vec::new();
    for ((problem, _), g) in groups {
        let (form, n) = g
            .forms
            .iter()
            .max_by(|a, b| {
                (a.1.cmp(b.1))
                    .then_with(|| b.0.chars().count().cmp(&a.0.chars().count()))
                    .then_with(|| b.0.cmp(a.0))
            })
            .map(|(f, n)| (f.clone(), *n))
            .unwrap_or_default();
        let total: u64 = g.forms.values().sum();
        let term = if 2 * n >= total && !form.is_empty() {
            form
        } else {
            g.lemma.clone()
        };
        let finding = Finding {
            term,
            lemma: g.lemma,
            count: g.count,
            share: stats::round(100.0 * g.count as f64 / analysed.max(1) as f64, 1),
            examples: g
                .examples
                .iter()
                .map(|&i| shorten(&ratings[i].comment))
                .collect(),
        };
        if problem {
            problems.push(finding);
        } else {
            praise.push(finding);
        }
    }
    for list in [&mut problems, &mut praise] {
        list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.term.cmp(&b.term)));
        list.truncate(top);
    }
    Findings { problems, praise }
}

#[cfg(test)]
#[path = "clauses_tests.rs"]
mod tests;
