//! `[buttons]`: which flow a call button's press goes to. A data concentrator posts every press
//! to `POST /api/v1/buttons`; the press's `button.type` (and its `action`, `call` or `cancel`)
//! picks the flow here.
//!
//! ```toml
//! [buttons]
//! 101 = "complaint"                                # every press of type 101
//! 104 = { call = "escalation", cancel = "complaint" }   # per action
//! 102 = ""                                         # no route for type 102
//! ```
//!
//! The shipped routes ([`ButtonRoutes::shipped`]) stay unless the file names their type: a
//! key replaces its type's route, `""` removes it (a table's `call = ""` only that action).
//! Checked when the config is read: a type is a number, a flow a flow name, an action `call` or
//! `cancel`. Whether the flow is loaded is the service's business (flows are hot-reloaded).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// What a press asks for: the `action` of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Call someone (the default when a press carries no `action`).
    Call,
    /// The cancel button: in a restaurant a complaint without a call; at a ward's bed the
    /// call is over.
    Cancel,
}

impl Action {
    pub const ALL: [Action; 2] = [Action::Call, Action::Cancel];

    pub fn name(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Cancel => "cancel",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == text)
    }
}

/// One type's flows, per action (`None`: that action has no route).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeRoute {
    pub call: Option<String>,
    pub cancel: Option<String>,
}

impl TypeRoute {
    fn every(flow: &str) -> TypeRoute {
        TypeRoute {
            call: Some(flow.to_owned()),
            cancel: Some(flow.to_owned()),
        }
    }

    pub fn of(&self, action: Action) -> Option<&str> {
        match action {
            Action::Call => self.call.as_deref(),
            Action::Cancel => self.cancel.as_deref(),
        }
    }

    fn is_empty(&self) -> bool {
        self.call.is_none() && self.cancel.is_none()
    }

    /// `complaint` for one flow, `call → escalation, cancel → complaint` for two.
    fn describe(&self) -> String {
        match (&self.call, &self.cancel) {
            (Some(a), Some(b)) if a == b => a.clone(),
            _ => Action::ALL
                .iter()
                .filter_map(|a| self.of(*a).map(|f| format!("{} → {f}", a.name())))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The routes in effect: the shipped ones with the file's on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonRoutes {
    routes: BTreeMap<u32, TypeRoute>,
}

impl Default for ButtonRoutes {
    fn default() -> Self {
        ButtonRoutes::shipped()
    }
}

/// Why a press has no flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No route for the type at all.
    Type,
    /// The type has routes, not for this action.
    Action,
}

impl ButtonRoutes {
    /// Type 101 (restaurants and shops) → `complaint` (a cancel press is a complaint, a call
    /// press calls the manager), 102 (wards) → `escalation`, 103 (alerts) → `alert`.
    pub fn shipped() -> ButtonRoutes {
        let routes = [(101, "complaint"), (102, "escalation"), (103, "alert")]
            .into_iter()
            .map(|(t, flow)| (t, TypeRoute::every(flow)))
            .collect();
        ButtonRoutes { routes }
    }

    /// The flow a press of `button_type` with `action` goes to.
    pub fn flow(&self, button_type: u32, action: Action) -> Result<&str, NoRoute> {
        let route = self.routes.get(&button_type).ok_or(NoRoute::Type)?;
        route.of(action).ok_or(NoRoute::Action)
    }

    /// Every route, `101 → complaint, 104 → call → escalation, cancel → complaint`: what an
    /// unrouted press's error lists.
    pub fn describe(&self) -> String {
        if self.routes.is_empty() {
            return "none: [buttons] removed them all".to_owned();
        }
        (self.routes.iter())
            .map(|(t, r)| format!("{t} → {}", r.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The flows some route names, for a warning at start about those not loaded.
    pub fn flows(&self) -> Vec<(u32, Action, &str)> {
        let mut out = Vec::new();
        for (t, route) in &self.routes {
            for action in Action::ALL {
                if let Some(flow) = route.of(action) {
                    out.push((*t, action, flow));
                }
            }
        }
        out
    }
}

/// `[buttons]` as the file has it: each key a type, each value a flow or a table per action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ButtonsConfig {
    entries: BTreeMap<String, Entry>,
}

/// One key's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Flow(String),
    Actions(BTreeMap<Action, String>),
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entry, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a flow name, or a table of actions (`{ call = \"escalation\", cancel = \
                     \"complaint\" }`)",
                )
            }

            fn visit_str<E: de::Error>(self, flow: &str) -> Result<Entry, E> {
                Ok(Entry::Flow(flow.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                let mut actions = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let action = Action::parse(&name).ok_or_else(|| {
                        de::Error::custom(format!(
                            "unknown action `{name}` (a press is `call` or `cancel`)"
                        ))
                    })?;
                    actions.insert(action, map.next_value::<String>()?);
                }
                Ok(Entry::Actions(actions))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl ButtonsConfig {
    /// The shipped routes with the file's on top, or `(key, message)` relative to
    /// `[buttons]`.
    pub fn resolve(&self) -> Result<ButtonRoutes, (String, String)> {
        let mut routes = ButtonRoutes::shipped();
        for (key, entry) in &self.entries {
            let button_type: u32 = key.trim().parse().map_err(|_| {
                (
                    key.clone(),
                    format!(
                        "\"{key}\" is not a button type: the key is the number the \
                         concentrator sends as button.type (e.g. 101 = \"complaint\")"
                    ),
                )
            })?;
            let flow = |action: Option<Action>, flow: &str| -> Result<Option<String>, _> {
                let at = match action {
                    Some(a) => format!("{key}.{}", a.name()),
                    None => key.clone(),
                };
                check_flow(flow).map_err(|why| (at, why))
            };
            let route = match entry {
                Entry::Flow(f) => match flow(None, f)? {
                    Some(f) => TypeRoute::every(&f),
                    None => TypeRoute::default(),
                },
                Entry::Actions(actions) => {
                    let of = |a: Action| actions.get(&a).map(|f| flow(Some(a), f));
                    TypeRoute {
                        call: of(Action::Call).transpose()?.flatten(),
                        cancel: of(Action::Cancel).transpose()?.flatten(),
                    }
                }
            };
            match route.is_empty() {
                true => routes.routes.remove(&button_type),
                false => routes.routes.insert(button_type, route),
            };
        }
        Ok(routes)
    }
}

/// A flow's name as `scripts_dir` names files (`complaint` for `complaint.rhai`), or `""`
/// for no route.
fn check_flow(flow: &str) -> Result<Option<String>, String> {
    if flow.is_empty() {
        return Ok(None);
    }
    let ok = flow
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "\"{flow}\" is not a flow name (the stem of a file in service.scripts_dir: letters, \
             digits, _ and -; \"\" for no route)"
        ));
    }
    Ok(Some(flow.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Result<ButtonRoutes, (String, String)> {
        let c: ButtonsConfig = toml::from_str(text).unwrap();
        c.resolve()
    }

    #[test]
    fn the_shipped_routes_stay_unless_a_key_replaces_or_removes_them() {
        let r = routes("").unwrap();
        assert_eq!(r.flow(101, Action::Cancel), Ok("complaint"));
        assert_eq!(r.flow(102, Action::Call), Ok("escalation"));
        assert_eq!(r.flow(103, Action::Call), Ok("alert"));
        assert_eq!(r.flow(104, Action::Call), Err(NoRoute::Type));

        let r = routes(
            "102 = \"\"\n104 = { call = \"escalation\", cancel = \"complaint\" }\n\
             105 = { call = \"alert\" }\n",
        )
        .unwrap();
        assert_eq!(r.flow(102, Action::Call), Err(NoRoute::Type));
        assert_eq!(r.flow(104, Action::Cancel), Ok("complaint"));
        assert_eq!(r.flow(105, Action::Cancel), Err(NoRoute::Action));
        assert_eq!(
            r.describe(),
            "101 → complaint; 103 → alert; 104 → call → escalation, cancel → complaint; \
             105 → call → alert"
        );
    }

    #[test]
    fn a_bad_type_flow_or_action_names_the_key() {
        let e = routes("abc = \"complaint\"\n").unwrap_err();
        assert_eq!(e.0, "abc");
        assert!(e.1.contains("not a button type"), "{e:?}");
        let e = routes("101 = { call = \"bad name\" }\n").unwrap_err();
        assert_eq!(e.0, "101.call");
        assert!(e.1.contains("not a flow name"), "{e:?}");
        let e = toml::from_str::<ButtonsConfig>("101 = { hold = \"x\" }\n").unwrap_err();
        assert!(e.message().contains("unknown action `hold`"), "{e}");
    }
}
