//! What a survey's scale means in the reports (SPEC.md "Survey kinds"): which scores are
//! positive and negative, and for NPS the promoters, passives, detractors and the score itself.
//!
//! | kind | scale | positive | negative | headline |
//! |---|---|---|---|---|
//! | `csat` | 1–5 | 4–5 | 1–2 | average, positive % |
//! | `nps` | 0–10 | promoters 9–10 | detractors 0–6 | NPS = promoters % − detractors % |
//! | `ces` | 1–7 | easy 5–7 | hard 1–3 | average, easy % |
//!
//! For a scale of another length the top and bottom fifths (rounded outwards) are positive
//! and negative, so CSAT on 1–5 keeps its 4–5 and 1–2.

use std::ops::RangeInclusive;

use super::stats::{self, Scores};
pub use crate::flow::api::Scale;

/// How the NPS interval is computed, as the report states it.
pub const NPS_CI_METHOD: &str = "95% Wald interval of promoters % − detractors %: \
    1.96·√((p+d−(p−d)²)/n), the multinomial variance of a difference of two shares";

/// The scores counted as positive (CSAT 4–5, NPS promoters 9–10, CES easy 5–7).
pub fn positive(scale: &Scale) -> RangeInclusive<u8> {
    match scale.kind.as_str() {
        "nps" => 9.max(scale.min)..=scale.max,
        "ces" if scale.max - scale.min == 6 => scale.max - 2..=scale.max,
        _ => scale.max - fifth(scale)..=scale.max,
    }
}

/// The scores counted as negative (CSAT 1–2, NPS detractors 0–6, CES hard 1–3).
pub fn negative(scale: &Scale) -> RangeInclusive<u8> {
    match scale.kind.as_str() {
        "nps" => scale.min..=6.min(scale.max),
        "ces" if scale.max - scale.min == 6 => scale.min..=scale.min + 2,
        _ => scale.min..=scale.min + fifth(scale),
    }
}

/// The scores between the negative and the positive ones (CSAT 3, NPS passives 7–8, CES 4);
/// `None` when there are none.
pub fn middle(scale: &Scale) -> Option<RangeInclusive<u8>> {
    let (low, high) = (*negative(scale).end(), *positive(scale).start());
    (high > low + 1).then(|| low + 1..=high - 1)
}

/// What a kind calls its positive, middle and negative scores, in the reports' headers,
/// cards and tables: NPS has promoters, passives and detractors, CES easy and hard answers,
/// CSAT (and any other scale) positive and negative ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words {
    pub positive: &'static str,
    pub middle: &'static str,
    pub negative: &'static str,
}

pub fn words(scale: &Scale) -> Words {
    let (positive, middle, negative) = match scale.kind.as_str() {
        "nps" => ("promoters", "passives", "detractors"),
        "ces" => ("easy", "neutral", "hard"),
        _ => ("positive", "neutral", "negative"),
    };
    Words {
        positive,
        middle,
        negative,
    }
}

/// `word` with its first letter in capitals, for a header or a card.
pub fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `Promoters (9–10)`: a word of [`words`] and its scores, for a header or a card.
pub fn named(word: &str, scores: &RangeInclusive<u8>) -> String {
    format!(
        "{} ({}–{})",
        capitalised(word),
        scores.start(),
        scores.end()
    )
}

/// The width − 1 of the top and bottom fifths: 1 on a 1–5 scale (4–5, 1–2).
fn fifth(scale: &Scale) -> u8 {
    let len = u32::from(scale.max - scale.min) + 1;
    (len.div_ceil(5) as u8).saturating_sub(1).max(1)
}

/// NPS of some scores: the score, its interval and the three shares (0–100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nps {
    pub nps: f64,
    pub ci95: Option<[f64; 2]>,
    pub promoters_pct: f64,
    pub passives_pct: f64,
    pub detractors_pct: f64,
}

/// The NPS of `scores` on `scale`; `None` without scores.
pub fn nps(scores: &Scores, scale: &Scale) -> Option<Nps> {
    if scores.n == 0 {
        return None;
    }
    let n = scores.n as f64;
    let p = scores.count_in(positive(scale)) as f64 / n;
    let d = scores.count_in(negative(scale)) as f64 / n;
    let ci95 = (scores.n >= 2).then(|| {
        let half = 1.96 * ((p + d - (p - d).powi(2)).max(0.0) / n).sqrt();
        [
            stats::round((100.0 * (p - d - half)).max(-100.0), 1),
            stats::round((100.0 * (p - d + half)).min(100.0), 1),
        ]
    });
    Some(Nps {
        nps: stats::round(100.0 * (p - d), 1),
        ci95,
        promoters_pct: stats::round(100.0 * p, 1),
        passives_pct: stats::round(100.0 * (1.0 - p - d), 1),
        detractors_pct: stats::round(100.0 * d, 1),
    })
}

/// Where a score leans: `Some(true)` positive, `Some(false)` negative, `None` neither.
pub fn leaning(scale: &Scale, score: u8) -> Option<bool> {
    if positive(scale).contains(&score) {
        Some(true)
    } else if negative(scale).contains(&score) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(kind: &str, min: u8, max: u8) -> Scale {
        Scale {
            kind: kind.to_owned(),
            min,
            max,
        }
    }

    #[test]
    fn each_kind_has_its_positive_and_negative_scores() {
        let csat = Scale::default();
        assert_eq!((positive(&csat), negative(&csat)), (4..=5, 1..=2));
        let nps_scale = scale("nps", 0, 10);
        assert_eq!(
            (positive(&nps_scale), negative(&nps_scale)),
            (9..=10, 0..=6)
        );
        let ces = scale("ces", 1, 7);
        assert_eq!((positive(&ces), negative(&ces)), (5..=7, 1..=3));
        assert_eq!(leaning(&nps_scale, 8), None);
        assert_eq!(middle(&nps_scale), Some(7..=8));
        assert_eq!(middle(&csat), Some(3..=3));
        assert_eq!(middle(&scale("csat", 1, 2)), None);
        assert_eq!(words(&nps_scale).negative, "detractors");
        assert_eq!(named(words(&ces).positive, &positive(&ces)), "Easy (5–7)");
        assert_eq!(leaning(&nps_scale, 6), Some(false));
    }

    #[test]
    fn nps_of_known_answers() {
        // 4 promoters, 2 passives, 2 detractors: 50 % − 25 % = 25.
        let mut s = Scores::default();
        for x in [10, 9, 9, 10, 8, 7, 3, 0] {
            s.add(x);
        }
        let n = nps(&s, &scale("nps", 0, 10)).unwrap();
        assert_eq!(n.nps, 25.0);
        assert_eq!(
            (n.promoters_pct, n.passives_pct, n.detractors_pct),
            (50.0, 25.0, 25.0)
        );
        // p = .5, d = .25: √((.75 − .0625) / 8) = 0.2932; ± 57.5 points.
        assert_eq!(n.ci95, Some([-32.5, 82.5]));
        assert_eq!(nps(&Scores::default(), &scale("nps", 0, 10)), None);
    }
}
