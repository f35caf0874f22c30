//! `smsflow demo` end to end (the README's first command): simulator, pool, pipeline, flows.

use smsflow::service::demo::{self, DemoConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_surveys_and_staff_calls_to_a_report() {
    let report = demo::run(
        DemoConfig {
            surveys: 12,
            incidents: 2,
            seed: 7,
        },
        false,
    )
    .await
    .expect("the demo runs");
    assert_eq!(report.surveys_sent, 12);
    assert!(
        !report.ratings.is_empty(),
        "simulated subscribers answered: {report:?}"
    );
    assert!(report.ratings.iter().all(|r| (1..=5).contains(&r.score)));
    // Both posted incidents end acknowledged or unacknowledged, never left open.
    let posted: Vec<_> = report
        .incidents
        .iter()
        .filter(|i| {
            i.fields["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("inc-"))
        })
        .collect();
    assert_eq!(posted.len(), 2, "{:?}", report.incidents);
    let mut out = Vec::new();
    demo::print(&report, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("CSI survey") && out.contains("Staff calls"),
        "{out}"
    );
}
