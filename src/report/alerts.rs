//! Emergency alerts per person: for each number an alert went to, how many alerts, how many
//! SMS that took (re-sends after a failed or missing receipt included), how often the receipt
//! failed, and how long delivery and the `OK` took (median and p90, nearest rank). Part of the
//! incident report (`alert_recipients`); pure, over the calls' latest records.
//!
//! The fields read are the ones `scripts/alert.rhai` records in its incident (`kind: "alert"`):
//! `people`, each `{msisdn, sends, failed, deliver_seconds, ack_seconds}`, the seconds from the
//! press (null when it did not happen). A record without `people` adds nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats;
use crate::store::Incident;

/// What one person's alerts took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertRecipient {
    pub msisdn: String,
    /// Alerts sent to this number.
    pub alerts: u64,
    /// SMS sent for them, re-sends included.
    pub sends: u64,
    /// Receipts that said the SMS failed.
    pub failed: u64,
    /// Alerts delivered to the handset (a delivered receipt, or an `OK`).
    pub delivered: u64,
    /// Nearest-rank median and p90 of the time from the press to delivery; null when none.
    pub median_deliver_seconds: Option<f64>,
    pub p90_deliver_seconds: Option<f64>,
    /// Alerts this person answered `OK`.
    pub acknowledged: u64,
    /// Median and p90 of the time from the press to this person's `OK`.
    pub median_ack_seconds: Option<f64>,
    pub p90_ack_seconds: Option<f64>,
}

/// What the CSV and the workbook call [`AlertRecipient::figures`], in order (after the
/// number).
pub const FIGURES: [&str; 9] = [
    "alerts",
    "sends",
    "failed",
    "delivered",
    "median_deliver_seconds",
    "p90_deliver_seconds",
    "acknowledged",
    "median_ack_seconds",
    "p90_ack_seconds",
];

impl AlertRecipient {
    /// Its figures in the order of [`FIGURES`]: counts as numbers, `None` for no time.
    pub fn figures(&self) -> [Option<f64>; 9] {
        let n = |x: u64| Some(x as f64);
        [
            n(self.alerts),
            n(self.sends),
            n(self.failed),
            n(self.delivered),
            self.median_deliver_seconds,
            self.p90_deliver_seconds,
            n(self.acknowledged),
            self.median_ack_seconds,
            self.p90_ack_seconds,
        ]
    }
}

/// Per person, over the alerts among `calls` (each call's latest record); most alerts first,
/// then by number.
pub fn recipients<'a>(calls: impl IntoIterator<Item = &'a Incident>) -> Vec<AlertRecipient> {
    #[derive(Default)]
    struct Acc {
        row: AlertRecipient,
        deliver: Vec<f64>,
        ack: Vec<f64>,
    }
    let mut by_number: BTreeMap<String, Acc> = BTreeMap::new();
    for call in calls {
        if call.fields.get("kind").and_then(|k| k.as_str()) != Some("alert") {
            continue;
        }
        let Some(people) = call.fields.get("people").and_then(|p| p.as_array()) else {
            continue;
        };
        for p in people {
            let Some(msisdn) = p.get("msisdn").and_then(|m| m.as_str()) else {
                continue;
            };
            let count = |name: &str| p.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
            let seconds = |name: &str| {
                (p.get(name).and_then(|v| v.as_f64())).filter(|s| s.is_finite() && *s >= 0.0)
            };
            let acc = by_number.entry(msisdn.to_owned()).or_default();
            acc.row.alerts += 1;
            acc.row.sends += count("sends");
            acc.row.failed += count("failed");
            if let Some(s) = seconds("deliver_seconds") {
                acc.row.delivered += 1;
                acc.deliver.push(s);
            }
            if let Some(s) = seconds("ack_seconds") {
                acc.row.acknowledged += 1;
                acc.ack.push(s);
            }
        }
    }
    let mut out: Vec<AlertRecipient> = by_number
        .into_iter()
        .map(|(msisdn, mut acc)| {
            (acc.row.median_deliver_seconds, acc.row.p90_deliver_seconds) =
                stats::median_p90(&mut acc.deliver);
            (acc.row.median_ack_seconds, acc.row.p90_ack_seconds) = stats::median_p90(&mut acc.ack);
            AlertRecipient { msisdn, ..acc.row }
        })
        .collect();
    out.sort_by(|a, b| {
        b.alerts
            .cmp(&a.alerts)
            .then_with(|| a.msisdn.cmp(&b.msisdn))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(people: serde_json::Value) -> Incident {
        Incident {
            conversation: 1,
            at: 0,
            updated_at: 0,
            fields: json!({"kind": "alert", "state": "closed", "people": people}),
        }
    }

    #[test]
    fn per_person_counts_and_times() {
        let a = alert(json!([
            {"msisdn": "1", "sends": 1, "failed": 0, "deliver_seconds": 5.0, "ack_seconds": 20.0},
            {"msisdn": "2", "sends": 3, "failed": 2, "deliver_seconds": 60.0, "ack_seconds": null},
        ]));
        let b = alert(json!([
            {"msisdn": "1", "sends": 2, "failed": 1, "deliver_seconds": 40.0, "ack_seconds": 45.0},
            {"msisdn": "2", "sends": 3, "failed": 3, "deliver_seconds": null, "ack_seconds": null},
        ]));
        let not_alert = Incident {
            fields: json!({"kind": "manager_call", "people": [{"msisdn": "9"}]}),
            ..alert(json!([]))
        };
        let r = recipients([&a, &b, &not_alert]);
        assert_eq!(r.len(), 2, "{r:?}");
        let one = &r[0];
        assert_eq!(
            (
                one.msisdn.as_str(),
                one.alerts,
                one.sends,
                one.failed,
                one.delivered
            ),
            ("1", 2, 3, 1, 2)
        );
        assert_eq!(
            (one.median_deliver_seconds, one.p90_deliver_seconds),
            (Some(5.0), Some(40.0))
        );
        assert_eq!((one.acknowledged, one.median_ack_seconds), (2, Some(20.0)));
        let two = &r[1];
        assert_eq!(
            (two.sends, two.failed, two.delivered, two.acknowledged),
            (6, 5, 1, 0)
        );
        assert_eq!(
            (two.median_deliver_seconds, two.median_ack_seconds),
            (Some(60.0), None)
        );
    }
}
