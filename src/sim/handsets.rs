//! Simulated subscribers and staff: they read the texts the service submits and answer some of
//! them, like people do (a rating, a rating with a comment, garbage, silence; an `OK`, late or
//! never; a `ГОТОВО` once the call is done, or none).
//!
//! A survey question is any text that names a scale (`от 0 до 10`, `0–10`, `1 to 7`, `1 dan 5
//! gacha`, `по 10-балльной шкале`): subscribers answer on that scale, so an operator's own
//! flow gets answers in its own words, not only the shipped survey's.
//!
//! Owns the classifier of MT texts ([`classify`], [`scale_named`]), the tables the replies are drawn from (the
//! `const`s below: edit those when the flows' texts change), and [`Handsets`], a sans-IO planner
//! that turns one MT into at most one planned reply; the simulator's front (`smsc.rs`) drives
//! it: waits the planned delay and injects the reply as an MO.
//!
//! Must not: read a clock or an unseeded random source in the planner (a reply is a function of
//! the seed, the recipient, the text and how many times that recipient got that text before,
//! so it does not depend on how texts to one number interleave: a supervisor called for two
//! ratings answers each call the same way whichever comes first), or talk SMPP (replies go
//! through [`super::SmscHandle::inject_mo`]).

use std::collections::HashMap;
use std::time::Duration;

use super::{Mo, SplitMix64, Submitted, SubscribersConfig, fnv1a};

/// A survey question names its scale: two numbers joined by one of these (compared in lower
/// case, spaces around them ignored): `от 0 до 10`, `0–10`, `1 to 7`, `1 dan 5 gacha`.
pub const RANGE_CONNECTORS: &[&str] = &["до", "to", "dan", "дан", "-", "–", "—", "..", "and", "и"];
/// … or its top score with one of these after it (`по 10-балльной шкале`, `a 7-point scale`):
/// the scale is then 1 to that number.
pub const POINTS_SUFFIXES: &[&str] = &["-балл", " балл", "-ball", " ball", "-point", " point"];
/// A scale's lowest score is one of these, its highest at least [`MIN_SCALE_TOP`] and at most
/// [`MAX_SCALE_TOP`]: other number pairs (dates, times, hours, `1-2 дня`) are no scale.
pub const SCALE_BOTTOMS: [u8; 2] = [0, 1];
pub const MIN_SCALE_TOP: u8 = 3;
pub const MAX_SCALE_TOP: u8 = 10;
/// The scale of a text that asks for a number again without naming one (the shipped survey's).
pub const DEFAULT_SCALE: Scale = Scale { min: 1, max: 5 };
/// The survey bot saying it did not understand the answer (checked before the survey markers:
/// its text asks for a rating too).
pub const NOT_UNDERSTOOD_MARKERS: &[&str] = &[
    "не удалось распознать",
    "не поняли",
    "didn't understand",
    "did not understand",
    "could not understand",
    "tushunilmadi",
    "тушунилмади",
];
/// An escalation asks staff to reply OK; compared in lower case, Latin `ok` and Cyrillic `ок`.
pub const ESCALATION_MARKERS: &[&str] = &[
    "ответьте ok",
    "ответьте ок",
    "ответьте «ok»",
    "ответьте «ок»",
    "ответьте \"ok\"",
    "отправьте ok",
    "отправьте ок",
    "reply ok",
    "reply with ok",
    "reply \"ok\"",
    "send ok",
    "ok deb javob",
    "ок деб жавоб",
];

/// A call taken, or a reminder, asks for ГОТОВО (escalation.rhai's resolve stage).
pub const RESOLVE_MARKERS: &[&str] = &["ответьте готово", "reply done", "javob bering: bajarildi"];

/// A follow-up asking what to improve (nps.rhai's detractors): compared in lower case.
pub const COMMENT_REQUEST_MARKERS: &[&str] = &[
    "что нам стоит улучшить",
    "что нам улучшить",
    "что можно улучшить",
    "what should we improve",
    "what could we improve",
    "what can we improve",
    "nimani yaxshilash",
    "нимани яхшилаш",
];

/// Share of survey questions answered with a valid rating.
pub const VALID_RATING_SHARE: f64 = 0.70;
/// Share answered with garbage; the rest (about 20 %) get no answer at all.
pub const GARBAGE_SHARE: f64 = 0.10;
/// Share of valid ratings that come with a comment.
pub const COMMENT_SHARE: f64 = 0.50;
/// Weights of five levels of satisfaction, worst first: skewed positive, as real CSI is. On a
/// 1–5 scale a level is a score; a wider scale is cut into five bands of (nearly) equal width
/// (0–10: 0–1, 2–3, 4–5, 6–7, 8–10) and the score drawn within its level's band.
pub const SCORE_WEIGHTS: [u32; 5] = [7, 9, 14, 28, 42];
/// Share of "not understood" answers that get one more reply, a bare digit.
pub const RETRY_AFTER_NOT_UNDERSTOOD_SHARE: f64 = 0.60;
/// Share of follow-ups asking what to improve that get an answer (a complaint, no score).
pub const COMMENT_REQUEST_ANSWER_SHARE: f64 = 0.60;
/// Share of escalations a staff member acknowledges; the rest are never answered, so the
/// service escalates.
pub const STAFF_ACK_SHARE: f64 = 0.80;
/// Share of calls taken that staff also report done; the rest get a reminder, and go up.
pub const STAFF_DONE_SHARE: f64 = 0.85;
/// Share of staff who copy the call's code into the reply (`OK 315`) when the text names one.
/// Asked to pick one of several calls ("Ответьте OK и номер вызова"), everyone names the
/// first: a bare OK again would only get the list again.
pub const STAFF_CODE_SHARE: f64 = 0.5;

/// Ways of writing a bare rating, with weights. Placeholders: `{d}` ASCII digits, `{max}` the
/// scale's top, `{fw}` full-width digits, `{ru}` Russian word, `{uz}` Uzbek word (Latin),
/// `{uzc}` Uzbek word (Cyrillic); a word form is written with digits for a score the word
/// tables below do not hold.
pub const BARE_FORMS: &[(&str, u32)] = &[
    ("{d}", 50),
    ("{fw}", 5),
    ("{ru}", 8),
    ("{uz}", 8),
    ("{uzc}", 4),
    ("оценка: {d}", 6),
    ("{d}/{max}", 5),
    ("{d} из {max}", 3),
    ("baho {d}", 4),
    ("{d}!", 4),
    (" {d} ", 3),
];
pub const RUSSIAN_WORDS: [&str; 5] = ["один", "два", "три", "четыре", "пять"];
pub const UZBEK_WORDS: [&str; 5] = ["bir", "ikki", "uch", "to'rt", "besh"];
pub const UZBEK_CYRILLIC_WORDS: [&str; 5] = ["бир", "икки", "уч", "тўрт", "беш"];

/// Ratings with a comment, per level (index 0 is score 1 of 1–5), in Russian, Uzbek (Latin
/// and Cyrillic) and English. Each starts with its score, replaced by the score drawn on
/// another scale.
pub const COMMENTS: [&[&str]; 5] = [
    &[
        "1 очень плохо, никто не помог",
        "1. Ждал 20 минут, так и не ответили",
        "1 juda yomon, hech kim yordam bermadi",
        "1 - жуда ёмон",
        "1 terrible, nobody helped",
    ],
    &[
        "2 - долго ждал",
        "2. Долго пришлось ждать на линии, вопрос не решили",
        "2 uzoq kutdim",
        "2, operator was rude",
    ],
    &[
        "3 ok",
        "3. Нормально, но долго",
        "3 yomon emas",
        "3 - так себе",
        "3 average",
    ],
    &[
        "4. Оператор был вежлив, но долго пришлось ждать на линии.",
        "4 yaxshi, rahmat",
        "4 - хорошо, но можно быстрее",
        "4 good, thanks",
        "4 яхши",
    ],
    &[
        "5 rahmat, juda yaxshi",
        "5! Спасибо, всё отлично",
        "5. Оператор вежливый, быстро помог",
        "5 раҳмат, жуда яхши",
        "5 excellent service",
        "5 спасибо",
    ],
];
/// Replies that are no rating.
pub const GARBAGE: &[&str] = &[
    "hello?",
    "кто это",
    "45",
    "0",
    "🤔",
    "?",
    "10",
    "что это?",
    "👍",
    "allo",
];
/// How staff acknowledge.
pub const STAFF_ACKS: &[&str] = &["OK", "ok", "ок", "ОК", "+", "да", "Ok"];
/// How staff say a call is done.
pub const STAFF_DONES: &[&str] = &["ГОТОВО", "готово", "Готово", "done", "bajarildi"];

/// The scores a question asks for, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub min: u8,
    pub max: u8,
}

impl Scale {
    pub fn contains(&self, score: u8) -> bool {
        (self.min..=self.max).contains(&score)
    }
}

/// What an MT text asks of its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtKind {
    /// A rating request on the scale it names: answered by a subscriber.
    SurveyQuestion(Scale),
    /// The survey bot did not understand the answer: some subscribers try once more, on the
    /// scale the text names ([`DEFAULT_SCALE`] when it names none).
    NotUnderstood(Scale),
    /// A follow-up asking what to improve: some subscribers say.
    CommentRequest,
    /// A staff call asking for `OK`.
    Escalation,
    /// A call taken (or a reminder) asking for `ГОТОВО` when done.
    ResolveRequest,
    /// Confirmations, thanks, anything else: no answer.
    NoReply,
}

/// Classifies an MT text by the marker tables above. Staff texts are told apart first, so a
/// call for "Палата 1-5" is no survey.
pub fn classify(text: &str) -> MtKind {
    let has = |markers: &[&str], text: &str| markers.iter().any(|m| text.contains(m));
    let lower = text.to_lowercase();
    if has(NOT_UNDERSTOOD_MARKERS, &lower) {
        MtKind::NotUnderstood(scale_named(&lower).unwrap_or(DEFAULT_SCALE))
    } else if has(ESCALATION_MARKERS, &lower) {
        MtKind::Escalation
    } else if has(RESOLVE_MARKERS, &lower) {
        MtKind::ResolveRequest
    } else if has(COMMENT_REQUEST_MARKERS, &lower) {
        MtKind::CommentRequest
    } else if let Some(scale) = scale_named(&lower) {
        MtKind::SurveyQuestion(scale)
    } else {
        MtKind::NoReply
    }
}

/// The first rating scale `text` (in lower case) names: two numbers joined by one of
/// [`RANGE_CONNECTORS`], or a top score followed by one of [`POINTS_SUFFIXES`]; only pairs
/// that can be a scale count (see [`SCALE_BOTTOMS`]).
pub fn scale_named(text: &str) -> Option<Scale> {
    let numbers = numbers(text);
    let is_scale = |min: u32, max: u32| {
        SCALE_BOTTOMS.iter().any(|&b| u32::from(b) == min)
            && (u32::from(MIN_SCALE_TOP)..=u32::from(MAX_SCALE_TOP)).contains(&max)
    };
    let scale = |min: u32, max: u32| -> Option<Scale> {
        Some(Scale {
            min: u8::try_from(min).ok()?,
            max: u8::try_from(max).ok()?,
        })
    };
    for (i, &(value, _, end)) in numbers.iter().enumerate() {
        let rest = text.get(end..).unwrap_or_default();
        if POINTS_SUFFIXES.iter().any(|s| rest.starts_with(s)) && is_scale(1, value) {
            return scale(1, value);
        }
        let Some(&(next, next_start, _)) = numbers.get(i + 1) else {
            continue;
        };
        let between = text.get(end..next_start).unwrap_or_default().trim();
        if RANGE_CONNECTORS.contains(&between) && is_scale(value, next) {
            return scale(value, next);
        }
    }
    None
}

/// A staff reply `word`, with the code of the call `text` names when the member copies it
/// ([`STAFF_CODE_SHARE`]), always with the first of several listed.
fn with_code(rng: &mut SplitMix64, word: &str, text: &str) -> String {
    let codes = reply_codes_named(&text.to_lowercase());
    let code = match codes.as_slice() {
        [] => None,
        [code] => (rng.next_f64() < STAFF_CODE_SHARE).then_some(*code),
        [first, ..] => Some(*first),
    };
    match code {
        Some(code) => format!("{word} {code}"),
        None => word.to_owned(),
    }
}

/// The reply codes a staff text (in lower case) names: the numbers right after `ok`, `ок`,
/// `готово` or `done` ("Ответьте OK 315", "OK 100 — Палата 1; OK 101 — Палата 2").
pub fn reply_codes_named(text: &str) -> Vec<u32> {
    const WORDS: [&str; 4] = ["ok ", "ок ", "готово ", "done "];
    (numbers(text).into_iter())
        .filter(|&(_, start, _)| {
            let before = text.get(..start).unwrap_or_default();
            WORDS.iter().any(|w| before.ends_with(w))
        })
        .map(|(value, _, _)| value)
        .collect()
}

/// Every run of ASCII digits in `text`: its value (saturated) and byte range.
fn numbers(text: &str) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let mut run: Option<(u32, usize)> = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.to_digit(10).filter(|_| c.is_ascii_digit()), run) {
            (Some(d), Some((value, start))) => {
                run = Some((value.saturating_mul(10).saturating_add(d), start));
            }
            (Some(d), None) => run = Some((d, i)),
            (None, Some((value, start))) => {
                out.push((value, start, i));
                run = None;
            }
            (None, None) => {}
        }
    }
    out
}

/// A reply to send after a delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReply {
    pub after: Duration,
    pub mo: Mo,
}

/// Plans the replies of every simulated subscriber and staff member.
#[derive(Debug, Clone)]
pub struct Handsets {
    config: SubscribersConfig,
    seed: u64,
    /// How many times each recipient has had each text (by its hash), so the n-th copy of a
    /// text to a number always draws the same numbers however other traffic interleaves.
    received: HashMap<(String, u64), u64>,
}

impl Handsets {
    pub fn new(config: SubscribersConfig, seed: u64) -> Self {
        Self {
            config,
            seed,
            received: HashMap::new(),
        }
    }

    /// The reply `mt`'s recipient will send, if any.
    pub fn on_mt(&mut self, mt: &Submitted) -> Option<PlannedReply> {
        let text = fnv1a(mt.text.as_bytes());
        let count = (self.received)
            .entry((mt.destination.clone(), text))
            .or_default();
        *count += 1;
        let mut rng = SplitMix64::new(
            self.seed
                ^ fnv1a(mt.destination.as_bytes())
                ^ text.rotate_left(29)
                ^ count.wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let (text, after) = match classify(&mt.text) {
            MtKind::SurveyQuestion(scale) => {
                let roll = rng.next_f64();
                let text = if roll < VALID_RATING_SHARE {
                    rating(&mut rng, scale)
                } else if roll < VALID_RATING_SHARE + GARBAGE_SHARE {
                    // Garbage on this scale: "10" is a rating of 0–10.
                    let garbage: Vec<&str> = (GARBAGE.iter().copied())
                        .filter(|g| !in_scale(g, scale))
                        .collect();
                    (*rng.pick(&garbage)?).to_owned()
                } else {
                    return None;
                };
                (text, self.config.reply_delay.at(rng.next_f64()))
            }
            MtKind::NotUnderstood(scale) => {
                if rng.next_f64() >= RETRY_AFTER_NOT_UNDERSTOOD_SHARE {
                    return None;
                }
                let text = score(&mut rng, scale).1.to_string();
                (text, self.config.reply_delay.at(rng.next_f64()))
            }
            MtKind::CommentRequest => {
                if rng.next_f64() >= COMMENT_REQUEST_ANSWER_SHARE {
                    return None;
                }
                // A complaint of the two worst levels, without its score.
                let level = usize::from(rng.next_u64() % 2 == 1);
                let comment = COMMENTS.get(level).and_then(|c| rng.pick(c))?;
                let text = comment.trim_start_matches(|c: char| {
                    c.is_ascii_digit() || c.is_whitespace() || ".,!-".contains(c)
                });
                (text.to_owned(), self.config.reply_delay.at(rng.next_f64()))
            }
            MtKind::Escalation => {
                if rng.next_f64() >= STAFF_ACK_SHARE {
                    return None;
                }
                let word = *rng.pick(STAFF_ACKS)?;
                let text = with_code(&mut rng, word, &mt.text);
                (text, self.config.ack_delay.at(rng.next_f64()))
            }
            MtKind::ResolveRequest => {
                if rng.next_f64() >= STAFF_DONE_SHARE {
                    return None;
                }
                let word = *rng.pick(STAFF_DONES)?;
                let text = with_code(&mut rng, word, &mt.text);
                (text, self.config.ack_delay.at(rng.next_f64()))
            }
            MtKind::NoReply => return None,
        };
        Some(PlannedReply {
            after,
            mo: Mo {
                source: mt.destination.clone(),
                destination: mt.source.clone(),
                text,
            },
        })
    }
}

/// Whether `text` is a bare number on `scale`.
fn in_scale(text: &str, scale: Scale) -> bool {
    text.trim().parse::<u8>().is_ok_and(|n| scale.contains(n))
}

/// A level of satisfaction (0 worst ..= 4 best) drawn by [`SCORE_WEIGHTS`], and a score of
/// its band on `scale`.
fn score(rng: &mut SplitMix64, scale: Scale) -> (usize, u8) {
    // `weighted` returns an index below SCORE_WEIGHTS.len() == 5.
    let level = rng.weighted(SCORE_WEIGHTS.iter().copied()).min(4);
    let width = u32::from(scale.max.saturating_sub(scale.min)) + 1;
    let band = |level: usize| u32::from(scale.min) + width * level as u32 / 5;
    let low = band(level);
    let high = band(level + 1).saturating_sub(1).max(low);
    // One draw more only where a band holds several scores: 1–5 draws as it always did.
    let score = match high - low {
        0 => low,
        span => low + (rng.next_u64() % u64::from(span + 1)) as u32,
    };
    (level, u8::try_from(score).unwrap_or(scale.max))
}

/// `score` in full-width digits (`１０`).
fn full_width(score: u8) -> String {
    (score.to_string().chars())
        .map(|d| char::from_u32(u32::from('０') + d.to_digit(10).unwrap_or(0)).unwrap_or(d))
        .collect()
}

/// A valid rating on `scale`: a comment from [`COMMENTS`] or a bare form from [`BARE_FORMS`].
fn rating(rng: &mut SplitMix64, scale: Scale) -> String {
    let (level, score) = score(rng, scale);
    let digits = score.to_string();
    if rng.next_f64() < COMMENT_SHARE
        && let Some(comment) = COMMENTS.get(level).and_then(|c| rng.pick(c))
    {
        // Each comment starts with the 1–5 score of its level: the score drawn instead.
        let text = comment.trim_start_matches(|c: char| c.is_ascii_digit());
        return format!("{digits}{text}");
    }
    let form = BARE_FORMS[rng.weighted(BARE_FORMS.iter().map(|&(_, w)| w))].0;
    let word = |words: &[&str; 5]| {
        (score.checked_sub(1))
            .and_then(|i| words.get(usize::from(i)))
            .map_or(digits.clone(), |w| (*w).to_owned())
    };
    form.replace("{d}", &digits)
        .replace("{max}", &scale.max.to_string())
        .replace("{fw}", &full_width(score))
        .replace("{ru}", &word(&RUSSIAN_WORDS))
        .replace("{uzc}", &word(&UZBEK_CYRILLIC_WORDS))
        .replace("{uz}", &word(&UZBEK_WORDS))
}

#[cfg(test)]
mod tests;
