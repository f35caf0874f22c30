//! Simulated subscribers and staff: they read the texts the service submits and answer some of
//! them, like people do (a rating, a rating with a comment, garbage, silence; an `OK`, late or
//! never; a `ГОТОВО` once the call is done, or none).
//!
//! Owns the classifier of MT texts ([`classify`]), the tables the replies are drawn from (the
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

/// A survey question contains one of these …
pub const SURVEY_MARKERS: &[&str] = &["Оцените", "оцените", "Rate", "rate", "Baholang", "baholang"];
/// … and one of these (the scale).
pub const SCALE_MARKERS: &[&str] = &["1 до 5", "1 to 5", "1 dan 5", "1 дан 5"];
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

/// Share of survey questions answered with a valid rating.
pub const VALID_RATING_SHARE: f64 = 0.70;
/// Share answered with garbage; the rest (about 20 %) get no answer at all.
pub const GARBAGE_SHARE: f64 = 0.10;
/// Share of valid ratings that come with a comment.
pub const COMMENT_SHARE: f64 = 0.50;
/// Weights of the scores 1..=5: skewed positive, as real CSI is.
pub const SCORE_WEIGHTS: [u32; 5] = [7, 9, 14, 28, 42];
/// Share of "not understood" answers that get one more reply, a bare digit.
pub const RETRY_AFTER_NOT_UNDERSTOOD_SHARE: f64 = 0.60;
/// Share of escalations a staff member acknowledges; the rest are never answered, so the
/// service escalates.
pub const STAFF_ACK_SHARE: f64 = 0.80;
/// Share of calls taken that staff also report done; the rest get a reminder, and go up.
pub const STAFF_DONE_SHARE: f64 = 0.85;

/// Ways of writing a bare rating, with weights. Placeholders: `{d}` ASCII digit, `{fw}`
/// full-width digit, `{ru}` Russian word, `{uz}` Uzbek word (Latin), `{uzc}` Uzbek word
/// (Cyrillic).
pub const BARE_FORMS: &[(&str, u32)] = &[
    ("{d}", 50),
    ("{fw}", 5),
    ("{ru}", 8),
    ("{uz}", 8),
    ("{uzc}", 4),
    ("оценка: {d}", 6),
    ("{d}/5", 5),
    ("{d} из 5", 3),
    ("baho {d}", 4),
    ("{d}!", 4),
    (" {d} ", 3),
];
pub const FULL_WIDTH_DIGITS: [&str; 5] = ["１", "２", "３", "４", "５"];
pub const RUSSIAN_WORDS: [&str; 5] = ["один", "два", "три", "четыре", "пять"];
pub const UZBEK_WORDS: [&str; 5] = ["bir", "ikki", "uch", "to'rt", "besh"];
pub const UZBEK_CYRILLIC_WORDS: [&str; 5] = ["бир", "икки", "уч", "тўрт", "беш"];

/// Ratings with a comment, per score (index 0 is score 1), in Russian, Uzbek (Latin and
/// Cyrillic) and English.
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

/// What an MT text asks of its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtKind {
    /// A rating request: answered by a subscriber.
    SurveyQuestion,
    /// The survey bot did not understand the answer: some subscribers try once more.
    NotUnderstood,
    /// A staff call asking for `OK`.
    Escalation,
    /// A call taken (or a reminder) asking for `ГОТОВО` when done.
    ResolveRequest,
    /// Confirmations, thanks, anything else: no answer.
    NoReply,
}

/// Classifies an MT text by the marker tables above.
pub fn classify(text: &str) -> MtKind {
    let has = |markers: &[&str], text: &str| markers.iter().any(|m| text.contains(m));
    let lower = text.to_lowercase();
    if has(NOT_UNDERSTOOD_MARKERS, &lower) {
        MtKind::NotUnderstood
    } else if has(SURVEY_MARKERS, text) && has(SCALE_MARKERS, text) {
        MtKind::SurveyQuestion
    } else if has(ESCALATION_MARKERS, &lower) {
        MtKind::Escalation
    } else if has(RESOLVE_MARKERS, &lower) {
        MtKind::ResolveRequest
    } else {
        MtKind::NoReply
    }
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
            MtKind::SurveyQuestion => {
                let roll = rng.next_f64();
                let text = if roll < VALID_RATING_SHARE {
                    rating(&mut rng)
                } else if roll < VALID_RATING_SHARE + GARBAGE_SHARE {
                    (*rng.pick(GARBAGE)?).to_owned()
                } else {
                    return None;
                };
                (text, self.config.reply_delay.at(rng.next_f64()))
            }
            MtKind::NotUnderstood => {
                if rng.next_f64() >= RETRY_AFTER_NOT_UNDERSTOOD_SHARE {
                    return None;
                }
                let text = score(&mut rng).to_string();
                (text, self.config.reply_delay.at(rng.next_f64()))
            }
            MtKind::Escalation => {
                if rng.next_f64() >= STAFF_ACK_SHARE {
                    return None;
                }
                let text = (*rng.pick(STAFF_ACKS)?).to_owned();
                (text, self.config.ack_delay.at(rng.next_f64()))
            }
            MtKind::ResolveRequest => {
                if rng.next_f64() >= STAFF_DONE_SHARE {
                    return None;
                }
                let text = (*rng.pick(STAFF_DONES)?).to_owned();
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

/// A score 1..=5 drawn by [`SCORE_WEIGHTS`].
fn score(rng: &mut SplitMix64) -> u8 {
    let index = rng.weighted(SCORE_WEIGHTS.iter().copied());
    // `weighted` returns an index below SCORE_WEIGHTS.len() == 5.
    u8::try_from(index + 1).unwrap_or(5)
}

/// A valid rating: a comment from [`COMMENTS`] or a bare form from [`BARE_FORMS`].
fn rating(rng: &mut SplitMix64) -> String {
    let score = score(rng);
    let i = usize::from(score - 1);
    if rng.next_f64() < COMMENT_SHARE
        && let Some(comment) = COMMENTS.get(i).and_then(|c| rng.pick(c))
    {
        return (*comment).to_owned();
    }
    let form = BARE_FORMS[rng.weighted(BARE_FORMS.iter().map(|&(_, w)| w))].0;
    form.replace("{d}", &score.to_string())
        .replace("{fw}", FULL_WIDTH_DIGITS[i])
        .replace("{ru}", RUSSIAN_WORDS[i])
        .replace("{uzc}", UZBEK_CYRILLIC_WORDS[i])
        .replace("{uz}", UZBEK_WORDS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASK: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";
    const ASK_NO_COMMENT: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Ваш отзыв важен для нас!";
    const THANKS: &str =
        "Спасибо за вашу оценку! Мы ценим ваш отзыв и постараемся улучшить наше обслуживание.";
    const NOT_UNDERSTOOD: &str = "Извините, не удалось распознать ваш ответ. Пожалуйста, оцените нашу работу по шкале от 1 до 5.";

    fn mt(to: &str, text: &str) -> Submitted {
        Submitted {
            system_id: "smsflow".into(),
            source: "5700".into(),
            destination: to.into(),
            text: text.into(),
            message_ids: vec!["1".into()],
            data_coding: 8,
            registered_delivery: 1,
        }
    }

    #[test]
    fn classifies_the_spec_texts() {
        assert_eq!(classify(ASK), MtKind::SurveyQuestion);
        assert_eq!(classify(ASK_NO_COMMENT), MtKind::SurveyQuestion);
        assert_eq!(classify(THANKS), MtKind::NoReply);
        assert_eq!(classify(NOT_UNDERSTOOD), MtKind::NotUnderstood);
        assert_eq!(
            classify("Please rate our service from 1 to 5."),
            MtKind::SurveyQuestion
        );
    }

    #[test]
    fn classifies_escalations_in_latin_and_cyrillic_ok() {
        for text in [
            "Вызов: Палата 315, терапевтическое отделение. Ответьте OK, если идёте.",
            "Вызов: Палата 315. Ответьте ОК.",
            "Call: room 315. Reply OK to acknowledge.",
        ] {
            assert_eq!(classify(text), MtKind::Escalation, "{text}");
        }
        assert_eq!(classify("Вызов принят, спасибо."), MtKind::NoReply);
    }

    #[test]
    fn staff_report_most_taken_calls_done() {
        let taken = "Вы приняли вызов 100: Палата 315. Когда закончите, ответьте ГОТОВО 100";
        assert_eq!(classify(taken), MtKind::ResolveRequest);
        assert_eq!(
            classify("Вызов 100 (Палата 315) ещё не закрыт. Ответьте ГОТОВО 100, когда закончите."),
            MtKind::ResolveRequest
        );
        assert_eq!(
            classify("Вызов 100 (Палата 315) закрыт. Спасибо!"),
            MtKind::NoReply
        );
        let mut handsets = Handsets::new(SubscribersConfig::default(), 3);
        let done = (0..1000)
            .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), taken)))
            .inspect(|reply| assert!(STAFF_DONES.contains(&reply.mo.text.as_str())))
            .count();
        assert!((750..950).contains(&done), "{done}");
    }

    #[test]
    fn the_same_seed_plans_the_same_replies() {
        let plan = |seed| {
            let mut handsets = Handsets::new(SubscribersConfig::default(), seed);
            (0..50)
                .map(|i| handsets.on_mt(&mt(&format!("99890{i:07}"), ASK)))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
    }

    #[test]
    fn survey_replies_follow_the_shares() {
        let mut handsets = Handsets::new(SubscribersConfig::default(), 42);
        let n = 10_000;
        let mut replies = 0;
        let mut fives = 0;
        let mut ones = 0;
        for i in 0..n {
            let Some(reply) = handsets.on_mt(&mt(&format!("998{i:09}"), ASK)) else {
                continue;
            };
            replies += 1;
            assert_eq!(reply.mo.destination, "5700");
            let delay = reply.after;
            assert!(delay >= Duration::from_millis(200) && delay <= Duration::from_secs(2));
            let text = reply.mo.text.trim_start();
            fives += usize::from(
                text.starts_with('5') || text.starts_with("пять") || text.starts_with("besh"),
            );
            ones += usize::from(text.starts_with("1 ") || text.starts_with("1."));
        }
        // About 80 % answer (70 % ratings, 10 % garbage); 5 is the most common score.
        assert!((7_500..8_500).contains(&replies), "{replies}");
        assert!(fives > 3 * ones, "fives {fives}, ones {ones}");
    }

    #[test]
    fn staff_mostly_acknowledge_and_thanks_get_no_reply() {
        let mut handsets = Handsets::new(SubscribersConfig::default(), 3);
        let acks = (0..1000)
            .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), "Вызов. Ответьте OK.")))
            .inspect(|reply| assert!(STAFF_ACKS.contains(&reply.mo.text.as_str())))
            .count();
        assert!((700..900).contains(&acks), "{acks}");
        assert!(handsets.on_mt(&mt("998901234567", THANKS)).is_none());
    }

    #[test]
    fn bare_forms_fill_every_placeholder() {
        let mut rng = SplitMix64::new(5);
        for _ in 0..2_000 {
            let text = rating(&mut rng);
            assert!(!text.contains('{'), "{text}");
        }
    }
}
