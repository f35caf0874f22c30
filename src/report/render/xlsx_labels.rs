//! What the workbook calls its columns and rows (words, in the survey's scale's words, `, %`
//! after a percentage), which CSI fields it leaves out as repeats, and how a percentage is
//! stored in a percent cell.

use crate::report::scale::{self, Scale};

/// What a column (or a Summary row) is called in the workbook: words, not field names, in
/// the words of the survey's `scale` (NPS promoters, CES easy answers) and with `, %` after a
/// percentage.
pub(super) fn label(raw: &str, scale: &Scale) -> String {
    let words = scale::words(scale);
    let known = match raw {
        "key" => "Key",
        "surveys_sent" => "Surveys sent",
        "response_rate" => "Response rate",
        "ci95_low" => "95% CI low",
        "ci95_high" => "95% CI high",
        "positive_pct" => &scale::named(words.positive, &scale::positive(scale)),
        "negative_pct" => &scale::named(words.negative, &scale::negative(scale)),
        "easy_pct" => &scale::named("easy", &scale::positive(scale)),
        "promoters_pct" => "Promoters",
        "passives_pct" => "Passives",
        "detractors_pct" => "Detractors",
        "nps" => "NPS",
        "nps_ci95_low" => "NPS 95% CI low",
        "nps_ci95_high" => "NPS 95% CI high",
        "insufficient_sample" => "Too few responses",
        "previous_average" => "Previous average",
        "change_average" => "Change in average",
        "change_responses" => "Change in responses",
        "acknowledged_pct" => "Acknowledged",
        "escalated_pct" => "Escalated",
        "median_ack_seconds" => "Median time to ack (s)",
        "p90_ack_seconds" => "p90 time to ack (s)",
        "max_ack_seconds" => "Longest time to ack (s)",
        "msisdn" => "Number",
        "median_deliver_seconds" => "Median time to deliver (s)",
        "p90_deliver_seconds" => "p90 time to deliver (s)",
        "open" => "Open now",
        "ringing" => "Ringing (nobody took it yet)",
        "cancelled" => "Cancelled at the button",
        "median_resolve_seconds" => "Median time to resolve (s)",
        "p90_resolve_seconds" => "p90 time to resolve (s)",
        "share_pct" => "Share of comments",
        "levels_tried" => "Levels tried",
        "from_seconds" => "From (s)",
        "to_seconds" => "To (s)",
        "baseline_responses" => "Baseline responses",
        "lower_limit" => "Lower limit",
        "confidence_interval" => "Confidence interval",
        _ => "",
    };
    let name = if !known.is_empty() {
        known.to_owned()
    } else if let Some(score) = raw.strip_prefix("score_") {
        format!("Score {score}")
    } else if let Some(level) = raw.strip_prefix("acknowledged_at_level_") {
        format!("Acknowledged at level {level}")
    } else {
        scale::capitalised(&raw.replace('_', " "))
    };
    if is_percent(raw) {
        format!("{name}, %")
    } else {
        name
    }
}

/// Fields kept as 0–100 in the JSON that the workbook stores as fractions with a % format.
pub(super) fn is_percent(raw: &str) -> bool {
    raw.ends_with("_pct") || raw == "response_rate"
}

/// A percentage (0–100, rounded in the JSON) as the fraction a percent cell holds, without
/// the binary noise of the division: 33.3 is 0.333, not 0.33299999999999996. Six places keep
/// every digit the JSON has.
pub(super) fn fraction(pct: f64) -> f64 {
    (pct * 10_000.0).round() / 1_000_000.0
}

/// CSI fields the workbook leaves out as repeats under the scale's words: an NPS survey's
/// positive and negative shares are its promoters and detractors, a CES survey's positive
/// share is its easy one.
pub(super) fn repeated(raw: &str, scale: &Scale) -> bool {
    match scale.kind.as_str() {
        "nps" => matches!(raw, "positive_pct" | "negative_pct"),
        "ces" => raw == "easy_pct",
        _ => false,
    }
}
