//! JSON bodies whose objects name each key once. serde_json keeps the last of two equal keys
//! (`{"msisdn": "A", "msisdn": "B"}` is B), so a body can mean one thing to the system that
//! signed or logged it and another to us; such a body is refused, naming the key and where
//! it is. The check is the deserialization itself (a visitor building the
//! [`serde_json::Value`]), so it costs no second pass over the body.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value in which no object repeats a key.
pub(super) struct Unique(pub Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
        At(None).deserialize(deserializer).map(Unique)
    }
}

/// Where a value is, for the message: `None` at the top, else a path like
/// `"button"` or `"levels"[0]`.
struct At(Option<String>);

impl At {
    fn key(&self, key: &str) -> At {
        let key = serde_json::to_string(key).unwrap_or_default();
        At(Some(match &self.0 {
            None => key,
            Some(path) => format!("{path}.{key}"),
        }))
    }

    fn index(&self, i: usize) -> At {
        At(Some(match &self.0 {
            None => format!("[{i}]"),
            Some(path) => format!("{path}[{i}]"),
        }))
    }
}

impl<'de> DeserializeSeed<'de> for At {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::from(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.index(items.len()))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let key = serde_json::to_string(&key).unwrap_or_default();
                let within = match &self.0 {
                    None => "the body".to_owned(),
                    Some(path) => path.clone(),
                };
                return Err(de::Error::custom(format!(
                    "duplicate key {key} in {within} (a JSON object names each key once)"
                )));
            }
            let value = map.next_value_seed(self.key(&key))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, String> {
        serde_json::from_str::<Unique>(text)
            .map(|u| u.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_same_values_as_serde_json_without_repeated_keys() {
        let text = r#"{"id": 7, "x": -1, "f": 1.5, "big": 18446744073709551615, "s": "ф",
                       "n": null, "b": true, "a": [1, {"k": [2]}], "o": {}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn a_repeated_key_is_refused_with_its_place() {
        let e = parse(r#"{"msisdn": "1", "msisdn": "2"}"#).unwrap_err();
        assert!(e.starts_with("duplicate key \"msisdn\" in the body"), "{e}");
        let e = parse(r#"{"button": {"id": 1, "id": 2}}"#).unwrap_err();
        assert!(e.starts_with("duplicate key \"id\" in \"button\""), "{e}");
        let e = parse(r#"{"levels": [[], [{"a": 1, "a": 1}]]}"#).unwrap_err();
        assert!(
            e.starts_with("duplicate key \"a\" in \"levels\"[1][0]"),
            "{e}"
        );
        let e = parse(r#"{"a": 1, "\u0061": 2}"#).unwrap_err();
        assert!(e.starts_with("duplicate key \"a\" in the body"), "{e}");
        // Equal keys in different objects are not repeats.
        assert!(parse(r#"{"a": {"id": 1}, "b": {"id": 1}}"#).is_ok());
    }
}
