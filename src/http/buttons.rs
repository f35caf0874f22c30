//! `POST /api/v1/buttons`: the one place a data concentrator posts every press of every
//! button. The snapshot's `button.type` and `action` (`call`, the default, or `cancel`) pick the
//! flow by `[buttons]` (101 → complaint, 102 → escalation, 103 → alert as shipped); from there
//! the press is an event of that flow, exactly as `POST /api/v1/flows/{flow}/events` takes it
//! (idempotency by `id`, joins, 202 once durable), and the answer names the flow.
//!
//! A press the routes cannot place is a 422 naming the field and every route configured, so the
//! concentrator's log says what to fix.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState, EventBody, kind, start_event};
use crate::config::buttons::{Action, ButtonRoutes, NoRoute};
use crate::flow::engine::FlowEngine;

pub(super) async fn press(
    State(state): State<Arc<ApiState>>,
    body: Result<EventBody, ApiError>,
) -> Result<Response, ApiError> {
    let EventBody(mut event) = body?;
    let flow = route(&state.buttons, &mut event)?;
    let mut answer = start_event(&state, flow.clone(), event).await?;
    answer["flow"] = json!(flow);
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Logs each `[buttons]` route to a flow that is not loaded (a press of that type would be a
/// 404 until its script is there; flows are hot-reloaded, so it is not an error at start).
pub fn warn_unloaded_routes(routes: &ButtonRoutes, engine: &FlowEngine) {
    for (button_type, action, flow) in routes.flows() {
        if engine.flow(flow).is_none() {
            tracing::warn!(
                "[buttons] routes {} presses of type {button_type} to flow \"{flow}\", which is \
                 not loaded (no {flow}.rhai in service.scripts_dir that passes its tests)",
                action.name()
            );
        }
    }
}

/// The flow `event` goes to; its `action` is written in (`call` when it had none), so the
/// flow sees what was pressed.
fn route(routes: &ButtonRoutes, event: &mut Map<String, Value>) -> Result<String, ApiError> {
    let invalid = |detail: String| ApiError::Invalid(detail);
    let button_type = match event.get("button") {
        None | Some(Value::Null) => {
            return Err(invalid(format!(
                "button: missing (the snapshot's button, whose type picks the flow: {})",
                routes.describe()
            )));
        }
        Some(Value::Object(button)) => button_type(button.get("type"), routes)?,
        Some(other) => {
            return Err(invalid(format!(
                "button: must be an object, not {}",
                kind(other)
            )));
        }
    };
    let action = match event.get("action") {
        None | Some(Value::Null) => Action::Call,
        Some(Value::String(text)) => Action::parse(text.trim()).ok_or_else(|| {
            invalid(format!(
                "action: {text:?} is not a press (use \"call\" or \"cancel\")"
            ))
        })?,
        Some(other) => {
            return Err(invalid(format!(
                "action: must be \"call\" or \"cancel\", not {}",
                kind(other)
            )));
        }
    };
    event.insert("action".into(), json!(action.name()));
    match routes.flow(button_type, action) {
        Ok(flow) => Ok(flow.to_owned()),
        Err(NoRoute::Type) => Err(invalid(format!(
            "button.type: {button_type} has no route in [buttons] (configured: {})",
            routes.describe()
        ))),
        Err(NoRoute::Action) => Err(invalid(format!(
            "action: button type {button_type} has no route for {:?} (configured: {})",
            action.name(),
            routes.describe()
        ))),
    }
}

/// `button.type`: a number, or digits in a string (`101`, `"101"`).
fn button_type(value: Option<&Value>, routes: &ButtonRoutes) -> Result<u32, ApiError> {
    let parsed = match value {
        None | Some(Value::Null) => {
            return Err(ApiError::Invalid(format!(
                "button.type: missing (it picks the flow: {})",
                routes.describe()
            )));
        }
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
        Some(_) => None,
    };
    parsed.ok_or_else(|| {
        ApiError::Invalid(format!(
            "button.type: {} is not a button type (a number such as 101)",
            value.map(Value::to_string).unwrap_or_default()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(body: Value) -> Result<(String, Value), String> {
        let Value::Object(mut event) = body else {
            panic!("an object")
        };
        route(&ButtonRoutes::shipped(), &mut event)
            .map(|flow| (flow, Value::Object(event)))
            .map_err(|e| e.detail())
    }

    #[test]
    fn a_press_goes_to_its_types_flow_with_its_action() {
        let (flow, event) =
            routed(json!({"button": {"type": 101, "name": "Стол 12"}, "action": "cancel"}))
                .unwrap();
        assert_eq!(
            (flow.as_str(), &event["action"]),
            ("complaint", &json!("cancel"))
        );
        let (flow, event) = routed(json!({"button": {"type": "102"}})).unwrap();
        assert_eq!(
            (flow.as_str(), &event["action"]),
            ("escalation", &json!("call"))
        );
    }

    #[test]
    fn an_unrouted_or_malformed_press_names_the_field_and_the_routes() {
        let e = routed(json!({"button": {"type": 104}})).unwrap_err();
        assert_eq!(
            e,
            "button.type: 104 has no route in [buttons] (configured: 101 → complaint; \
             102 → escalation; 103 → alert)"
        );
        let e = routed(json!({"button": {"type": "abc"}})).unwrap_err();
        assert!(
            e.starts_with("button.type: \"abc\" is not a button type"),
            "{e}"
        );
        let e = routed(json!({"button": {"type": 101}, "action": "hold"})).unwrap_err();
        assert!(e.starts_with("action: \"hold\" is not a press"), "{e}");
        let e = routed(json!({"id": "x"})).unwrap_err();
        assert!(e.starts_with("button: missing"), "{e}");
        let e = routed(json!({"button": [1]})).unwrap_err();
        assert_eq!(e, "button: must be an object, not an array");
    }
}
