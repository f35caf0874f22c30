//! The event fields a flow requires, declared in the script and checked before anything is
//! created: a survey event without `msisdn` is a 422 naming the field, not an errored
//! conversation with the engine's text.
//!
//! A flow declares them with `fn event_fields()` returning a map from field to kind:
//!
//! ```rhai
//! fn event_fields() {
//!     #{ msisdn: "msisdn", operator: "string?", comment: "bool?" }
//! }
//! ```
//!
//! Kinds: `msisdn` (digits, optional `+`), `string`, `bool`, `int`, `map`, `array`, `levels`
//! (a non-empty array of non-empty arrays of MSISDNs), `msisdns` (a non-empty array of
//! MSISDNs), `duration` (`"3m"` or seconds). A trailing `?` makes the field optional (absent or
//! `null`). Fields not declared are allowed.
//!
//! Alternatives: a key `"levels|phones"` with kinds `"levels|msisdns"` wants at least one of
//! the fields, each of its kind when present (a staff call's chain of levels, or a flat list of
//! numbers); `"levels|phones: missing (give levels or phones)"` otherwise.

use rhai::Map;
use serde_json::Value;

use super::api::normalize_msisdn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Msisdn,
    String,
    Bool,
    Int,
    Map,
    Array,
    Levels,
    Msisdns,
    Duration,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "msisdn" => Kind::Msisdn,
            "string" => Kind::String,
            "bool" => Kind::Bool,
            "int" => Kind::Int,
            "map" => Kind::Map,
            "array" => Kind::Array,
            "levels" => Kind::Levels,
            "msisdns" => Kind::Msisdns,
            "duration" => Kind::Duration,
            _ => return None,
        })
    }

    /// Why `value` is not of this kind, if it is not.
    fn check(self, value: &Value) -> Result<(), String> {
        let msisdn = |v: &Value| v.as_str().and_then(normalize_msisdn).is_some();
        let ok = match self {
            Kind::Msisdn => msisdn(value),
            Kind::String => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::Int => value.is_i64() || value.is_u64(),
            Kind::Map => value.is_object(),
            Kind::Array => value.is_array(),
            Kind::Levels => value.as_array().is_some_and(|levels| {
                !levels.is_empty()
                    && levels.iter().all(|level| {
                        level
                            .as_array()
                            .is_some_and(|l| !l.is_empty() && l.iter().all(msisdn))
                    })
            }),
            Kind::Msisdns => value
                .as_array()
                .is_some_and(|l| !l.is_empty() && l.iter().all(msisdn)),
            Kind::Duration => {
                value.is_u64()
                    || value
                        .as_str()
                        .is_some_and(|t| humantime::parse_duration(t).is_ok())
            }
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Kind::Msisdn => "not an MSISDN (international digits, optional +)".to_owned(),
            Kind::Levels => "must be a non-empty array of non-empty arrays of MSISDNs".to_owned(),
            Kind::Msisdns => "must be a non-empty array of MSISDNs".to_owned(),
            Kind::Duration => "must be a duration such as \"3m\", or seconds".to_owned(),
            other => format!("must be {}", other.article()),
        })
    }

    fn article(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "true or false",
            Kind::Int => "an integer",
            Kind::Map => "an object",
            Kind::Array => "an array",
            Kind::Msisdn | Kind::Levels | Kind::Msisdns | Kind::Duration => "",
        }
    }
}

/// What `fn event_fields()` declares; empty when a flow declares nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSchema {
    /// In field order (of each entry's first name).
    fields: Vec<Field>,
}

/// One declared entry: a field, or alternatives of which one must be there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    /// (name, kind) of each alternative; one for a plain field.
    names: Vec<(String, Kind)>,
    required: bool,
}

impl EventSchema {
    /// The schema a flow's `event_fields()` returned, or why it is none.
    pub fn from_map(map: &Map) -> Result<EventSchema, String> {
        let mut fields = Vec::new();
        for (key, kind) in map {
            let text = kind.to_string();
            let (kinds, required) = match text.strip_suffix('?') {
                Some(kinds) => (kinds, false),
                None => (text.as_str(), true),
            };
            let names: Vec<&str> = key.split('|').map(str::trim).collect();
            let kinds: Vec<&str> = kinds.split('|').map(str::trim).collect();
            if names.len() != kinds.len() || names.iter().any(|n| n.is_empty()) {
                return Err(format!(
                    "{key}: {} alternatives but {} kinds ({text:?}; give one kind per field, \
                     e.g. \"levels|phones\": \"levels|msisdns\")",
                    names.len(),
                    kinds.len()
                ));
            }
            let mut entry = Field {
                names: Vec::new(),
                required,
            };
            for (name, kind) in names.iter().zip(&kinds) {
                let parsed = Kind::parse(kind).ok_or_else(|| {
                    format!(
                        "{name}: unknown kind {kind:?} (msisdn, string, bool, int, map, array, \
                         levels, msisdns, duration; a trailing ? makes it optional)"
                    )
                })?;
                entry.names.push(((*name).to_owned(), parsed));
            }
            fields.push(entry);
        }
        fields.sort_by(|a, b| a.names[0].0.cmp(&b.names[0].0));
        Ok(EventSchema { fields })
    }

    /// The first problem with `event`, as `field: what is wrong`.
    pub fn check(&self, event: &Value) -> Result<(), String> {
        let Some(object) = event.as_object() else {
            return Err("the event must be a JSON object".to_owned());
        };
        for field in &self.fields {
            let mut present = 0;
            for (name, kind) in &field.names {
                if let Some(value) = object.get(name).filter(|v| !v.is_null()) {
                    present += 1;
                    kind.check(value).map_err(|why| format!("{name}: {why}"))?;
                }
            }
            if present == 0 && field.required {
                let names: Vec<&str> = field.names.iter().map(|(n, _)| n.as_str()).collect();
                return Err(match names.as_slice() {
                    [one] => format!("{one}: missing"),
                    many => format!("{}: missing (give {})", many.join("|"), many.join(" or ")),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(pairs: &[(&str, &str)]) -> EventSchema {
        let mut map = Map::new();
        for (field, kind) in pairs {
            map.insert((*field).into(), (*kind).into());
        }
        EventSchema::from_map(&map).unwrap()
    }

    #[test]
    fn required_fields_and_kinds_are_checked_naming_the_field() {
        let s = schema(&[
            ("msisdn", "msisdn"),
            ("operator", "string?"),
            ("comment", "bool?"),
        ]);
        assert_eq!(s.check(&json!({"msisdn": "+998901234567"})), Ok(()));
        assert_eq!(s.check(&json!({})), Err("msisdn: missing".into()));
        assert_eq!(
            s.check(&json!({"msisdn": null})),
            Err("msisdn: missing".into())
        );
        assert!(
            s.check(&json!({"msisdn": "abc"}))
                .unwrap_err()
                .starts_with("msisdn: not an MSISDN")
        );
        assert_eq!(
            s.check(&json!({"msisdn": "998901234567", "operator": 7})),
            Err("operator: must be a string".into())
        );
        assert_eq!(
            s.check(&json!({"msisdn": "998901234567", "extra": [1]})),
            Ok(())
        );
        let s = schema(&[("levels", "levels"), ("ack_timeout", "duration?")]);
        assert_eq!(
            s.check(&json!({"levels": [["998901111111"]], "ack_timeout": "3m"})),
            Ok(())
        );
        assert!(s.check(&json!({"levels": []})).is_err());
        assert!(s.check(&json!({"levels": [[]]})).is_err());
        assert!(s.check(&json!({"levels": [["x"]]})).is_err());
        assert!(
            s.check(&json!({"levels": [["998901111111"]], "ack_timeout": "soon"}))
                .is_err()
        );
    }

    #[test]
    fn one_of_two_alternatives_is_required_each_of_its_kind() {
        let s = schema(&[("levels|phones", "levels|msisdns")]);
        assert_eq!(s.check(&json!({"phones": ["+998901111111"]})), Ok(()));
        assert_eq!(s.check(&json!({"levels": [["998901111111"]]})), Ok(()));
        assert_eq!(
            s.check(&json!({})),
            Err("levels|phones: missing (give levels or phones)".into())
        );
        assert_eq!(
            s.check(&json!({"phones": []})),
            Err("phones: must be a non-empty array of MSISDNs".into())
        );
        let optional = schema(&[("levels|phones", "levels|msisdns?")]);
        assert_eq!(optional.check(&json!({})), Ok(()));
        let mut map = Map::new();
        map.insert("levels|phones".into(), "levels".into());
        assert!(
            EventSchema::from_map(&map)
                .unwrap_err()
                .contains("2 alternatives but 1 kinds")
        );
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let mut map = Map::new();
        map.insert("msisdn".into(), "phone".into());
        assert!(
            EventSchema::from_map(&map)
                .unwrap_err()
                .contains("unknown kind \"phone\"")
        );
    }
}
