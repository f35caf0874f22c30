//! The demo's restaurant evening (issue 28): the buttons of a restaurant's tables pressed as
//! guests press them, through the shipped `complaint` flow (button type 101), exactly as
//! `POST /api/v1/buttons` hands a press to it. A cancel press is a complaint: registered, and
//! the manager is texted the table and the order; nobody is called. A call press calls the
//! manager (the deputy when nobody answers within the ack timeout). The demo prints the
//! service quality audit of them.

use std::time::Duration;

use crate::flow::engine::{EngineError, FlowEngine};
use crate::store::{ConversationId, Millis};

/// Where the tables are (the audit's group).
pub const LOCATION: &str = "ресторан, зал 1";
/// Each half of the hall has its manager on duty, and a deputy a manager call goes to next
/// (one manager with two calls at once would have to name the call's code in the OK).
const MANAGERS: [[&str; 2]; 2] = [
    ["998913000001", "998913000011"],
    ["998913000002", "998913000012"],
];
/// Tables up to this one are the first half's.
const FIRST_HALF: u32 = 6;

/// The evening's presses, in order: table, what was pressed, what the table had ordered (the
/// snapshot's `info`, imported by the concentrator from the till).
pub const PRESSES: [(u32, &str, &str); 6] = [
    (7, "cancel", "плов, чай"),
    (12, "cancel", "шашлык, лепёшка"),
    (3, "call", "лагман, компот"),
    (12, "cancel", "шашлык, лепёшка, компот"),
    (5, "cancel", "манты"),
    (9, "call", "самса, чай"),
];

/// Presses of each kind in [`PRESSES`]: (complaints, manager calls).
pub fn counts() -> (usize, usize) {
    let calls = PRESSES.iter().filter(|(_, a, _)| *a == "call").count();
    (PRESSES.len() - calls, calls)
}

/// Posts the evening's presses at `now`; the press conversations, in order.
pub fn press_all(
    engine: &FlowEngine,
    now: Millis,
    ack_timeout: Duration,
) -> Result<Vec<ConversationId>, EngineError> {
    let mut presses = Vec::new();
    for (i, (table, action, order)) in PRESSES.into_iter().enumerate() {
        let id = format!("table-{i}");
        let [manager, deputy] = MANAGERS[usize::from(table > FIRST_HALF)];
        let event = serde_json::json!({
            "id": id,
            "button": {"id": table, "name": format!("Стол {table}"), "location": LOCATION,
                       "type": 101},
            "concentrator": {"host": "HALL-PC-1", "ip": "10.0.0.21", "user": "hall"},
            "levels": [[manager], [deputy]],
            "info": {"order": order},
            "action": action,
            "notify": "immediate",
            "ack_timeout": humantime::format_duration(ack_timeout).to_string(),
        });
        let (step, _) = engine.start(now, "complaint", event, Some(&id))?;
        presses.push(step.conversation);
    }
    Ok(presses)
}
