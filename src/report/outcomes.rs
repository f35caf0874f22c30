//! How the surveys of a range ended: rated, not understood, no response, opted out, fatigue,
//! errored, or still open. Counted per survey conversation on the day it was created, like
//! `surveys_sent`, so `rated + not_understood + no_response + errored + open + other` is
//! `surveys_sent`; `opted_out` and `fatigue` are events that sent nothing (the number had
//! opted out, or had a survey days before).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Outcomes of survey events that sent nothing.
const NOT_SENT: [&str; 2] = ["opted_out", "fatigue"];

/// The `outcomes` of a CSI report (SPEC.md "Report JSON").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    pub rated: u64,
    pub not_understood: u64,
    pub no_response: u64,
    pub opted_out: u64,
    pub fatigue: u64,
    /// A hook of the flow failed.
    pub errored: u64,
    /// Sent and not finished yet (waiting for an answer).
    #[serde(default)]
    pub open: u64,
    /// Outcomes a changed flow finishes with that are none of the above.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Counts `n` conversations that finished with `outcome`.
    pub fn add(&mut self, outcome: &str, n: u64) {
        let slot = match outcome {
            "rated" => &mut self.rated,
            "not_understood" => &mut self.not_understood,
            "no_response" => &mut self.no_response,
            "opted_out" => &mut self.opted_out,
            "fatigue" => &mut self.fatigue,
            "error" | "errored" => &mut self.errored,
            other => self.other.entry(other.to_owned()).or_default(),
        };
        *slot += n;
    }

    /// Sets `open` from the surveys sent: those not accounted for by an ending.
    pub fn close(&mut self, surveys_sent: u64) {
        let ended = self.rated
            + self.not_understood
            + self.no_response
            + self.errored
            + self.other.values().sum::<u64>();
        self.open = surveys_sent.saturating_sub(ended);
    }

    /// Every row with its count, for the table and the exports (`other` last).
    pub fn rows(&self) -> Vec<(String, u64)> {
        let mut rows: Vec<(String, u64)> = [
            ("rated", self.rated),
            ("not_understood", self.not_understood),
            ("no_response", self.no_response),
            ("errored", self.errored),
            ("open", self.open),
            ("opted_out", self.opted_out),
            ("fatigue", self.fatigue),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        rows.extend(self.other.iter().map(|(k, v)| (k.clone(), *v)));
        rows
    }

    /// Whether an outcome row is of events that sent nothing.
    pub fn not_sent(name: &str) -> bool {
        NOT_SENT.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up_to_the_surveys_sent() {
        let mut o = Outcomes::default();
        for (name, n) in [
            ("rated", 8),
            ("not_understood", 1),
            ("opted_out", 2),
            ("error", 1),
        ] {
            o.add(name, n);
        }
        o.add("custom", 1);
        o.close(12);
        assert_eq!(o.open, 1);
        let sent: u64 = (o.rows().iter())
            .filter(|(k, _)| !Outcomes::not_sent(k))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(sent, 12);
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"rated": 8, "not_understood": 1, "no_response": 0, "opted_out": 2,
                "fatigue": 0, "errored": 1, "open": 1, "other": {"custom": 1}})
        );
    }
}
