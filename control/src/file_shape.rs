//! What a save writes to config.json: the submitted config in the shape of the file on disk.
//! Keys the file has stay, in the file's order, even where they hold a default; a key the file
//! does not have is written only when its value differs from what the key reads as when left
//! out (so: what the operator set in the UI or the API), after the file's keys. Array entries
//! are matched to the file's by `id` or `name` (by position when they have neither), so a
//! hand-written entry keeps its keys when another is added or removed. The result always reads back as the submitted config;
//! where it would not (a schema this module does not know), the whole config is written.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use proxy::config::raw::RawConfig;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// config.json bytes for `submitted`, shaped after `on_disk` (the file's bytes, when there is a
/// file that is JSON).
pub fn shaped(submitted: &RawConfig, on_disk: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let full = to_json(submitted)?;
    let written = on_disk.and_then(|bytes| serde_json::from_slice::<Json>(bytes).ok());
    let shape = shape(
        &full,
        written.as_ref(),
        &mut Vec::new(),
        &mut Defaults::default(),
    );
    let bytes = pretty(&shape)?;
    if reads_back_as(&bytes, submitted) {
        return Ok(bytes);
    }
    tracing::warn!("config.json written whole: its shaped form would not read back the same");
    pretty(&full)
}

/// A JSON value that keeps the order of object keys as written (serde_json's own `Value` sorts
/// them without its `preserve_order` feature).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn first(&self) -> Option<&Json> {
        match self {
            Json::Array(items) => items.first(),
            _ => None,
        }
    }

    /// Equal in meaning: object keys in any order.
    fn same(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Null, Json::Null) => true,
            (Json::Bool(a), Json::Bool(b)) => a == b,
            (Json::Number(a), Json::Number(b)) => a == b,
            (Json::String(a), Json::String(b)) => a == b,
            (Json::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (Json::Object(a), Json::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| other.get(k).is_some_and(|w| v.same(w)))
            }
            _ => false,
        }
    }

    /// What identifies an array entry across saves: its `id`, else its `name`.
    fn identity(&self) -> Option<(&'static str, &str)> {
        ["id", "name"]
            .into_iter()
            .find_map(|key| match self.get(key) {
                Some(Json::String(value)) => Some((key, value.as_str())),
                _ => None,
            })
    }
}

/// What a key left out of the file reads as, for each kind of object in the config: the
/// object read from `{}` at the same place, found by reading a config that holds only that.
/// Places where that is not a config (inside a map of routes, an unknown key) have no defaults,
/// so nothing is left out there.
#[derive(Default)]
struct Defaults {
    by_place: HashMap<Vec<Step>, Option<Json>>,
}

/// A step down from the config's root: into an object's key, or into any entry of an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Entry,
}

impl Defaults {
    fn at(&mut self, place: &[Step]) -> Option<&Json> {
        if !self.by_place.contains_key(place) {
            let defaults = read_empty_object_at(place);
            self.by_place.insert(place.to_vec(), defaults);
        }
        self.by_place.get(place).and_then(Option::as_ref)
    }
}

fn read_empty_object_at(place: &[Step]) -> Option<Json> {
    let mut doc = Json::Object(Vec::new());
    for step in place.iter().rev() {
        doc = match step {
            Step::Key(key) => Json::Object(vec![(key.clone(), doc)]),
            Step::Entry => Json::Array(vec![doc]),
        };
    }
    let bytes = serde_json::to_vec(&doc).ok()?;
    let read = to_json(&proxy::config::parse_raw(&bytes).ok()?).ok()?;
    place
        .iter()
        .try_fold(&read, |node, step| match step {
            Step::Key(key) => node.get(key),
            Step::Entry => node.first(),
        })
        .cloned()
}

/// `full` in the shape of `written`; `place` is where both are in the config.
fn shape(
    full: &Json,
    written: Option<&Json>,
    place: &mut Vec<Step>,
    defaults: &mut Defaults,
) -> Json {
    match full {
        Json::Object(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            let by_key: HashMap<&str, &Json> =
                fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let mut kept = HashSet::new();
            if let Some(Json::Object(written)) = written {
                for (key, was) in written {
                    if let Some(value) = by_key.get(key.as_str()) {
                        place.push(Step::Key(key.clone()));
                        out.push((key.clone(), shape(value, Some(was), place, defaults)));
                        place.pop();
                        kept.insert(key.as_str());
                    }
                }
            }
            for (key, value) in fields {
                if kept.contains(key.as_str()) {
                    continue;
                }
                let default = defaults.at(place).and_then(|d| d.get(key));
                if default.is_some_and(|d| d.same(value)) {
                    continue;
                }
                place.push(Step::Key(key.clone()));
                out.push((key.clone(), shape(value, None, place, defaults)));
                place.pop();
            }
            Json::Object(out)
        }
        Json::Array(items) => {
            let written_items = match written {
                Some(Json::Array(items)) => items.as_slice(),
                _ => &[],
            };
            let mut counterparts = Counterparts::new(written_items);
            place.push(Step::Entry);
            let shaped = items
                .iter()
                .enumerate()
                .map(|(index, item)| shape(item, counterparts.take(item, index), place, defaults))
                .collect();
            place.pop();
            Json::Array(shaped)
        }
        scalar => scalar.clone(),
    }
}

/// The file's entries of one array, each given to at most one submitted entry.
struct Counterparts<'a> {
    written: &'a [Json],
    by_identity: HashMap<(&'static str, String), VecDeque<usize>>,
}

impl<'a> Counterparts<'a> {
    fn new(written: &'a [Json]) -> Counterparts<'a> {
        let mut by_identity: HashMap<_, VecDeque<usize>> = HashMap::new();
        for (index, entry) in written.iter().enumerate() {
            if let Some((key, value)) = entry.identity() {
                by_identity
                    .entry((key, value.to_string()))
                    .or_default()
                    .push_back(index);
            }
        }
        Counterparts {
            written,
            by_identity,
        }
    }

    /// The file's entry for `item`: the first one left with the same identity, or, for an
    /// entry without one, the file's entry at the same position when it has none either.
    fn take(&mut self, item: &Json, index: usize) -> Option<&'a Json> {
        match item.identity() {
            Some((key, value)) => {
                let found = self
                    .by_identity
                    .get_mut(&(key, value.to_string()))?
                    .pop_front()?;
                self.written.get(found)
            }
            None => self.written.get(index).filter(|w| w.identity().is_none()),
        }
    }
}

fn to_json(raw: &RawConfig) -> anyhow::Result<Json> {
    Ok(serde_json::from_slice(&serde_json::to_vec(raw)?)?)
}

fn pretty(json: &Json) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(json)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn reads_back_as(bytes: &[u8], submitted: &RawConfig) -> bool {
    let Ok(read) = proxy::config::parse_raw(bytes) else {
        return false;
    };
    matches!(
        (serde_json::to_value(&read), serde_json::to_value(submitted)),
        (Ok(a), Ok(b)) if a == b
    )
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            // A repeated key: the last one counts, as serde reads it.
            fields.retain(|(k, _)| *k != key);
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw_of(text: &str) -> RawConfig {
        proxy::config::parse_raw(text.as_bytes()).expect("parses")
    }

    /// Saves `submitted` over a file holding `on_disk`; the text written.
    fn save(on_disk: &str, submitted: serde_json::Value) -> String {
        let raw = raw_of(&submitted.to_string());
        String::from_utf8(shaped(&raw, Some(on_disk.as_bytes())).expect("shapes")).expect("utf-8")
    }

    fn value(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    /// The config as the admin UI sends it back: every default filled in.
    fn filled(text: &str) -> serde_json::Value {
        serde_json::to_value(raw_of(text)).expect("value")
    }

    #[test]
    fn an_unchanged_config_writes_the_file_as_it_was_in_meaning_and_order() {
        let file = r#"{"models": [{"id": "m", "upstream": "u", "targetModel": "d"}],
            "upstreams": [{"name": "u", "baseUrl": "https://r.openai.azure.com"}],
            "server": {"port": 3000}}"#;
        let written = save(file, filled(file));
        assert_eq!(value(&written), value(file));
        let order: Vec<usize> = ["\"models\"", "\"upstreams\"", "\"server\""]
            .iter()
            .map(|key| written.find(key).expect("key kept"))
            .collect();
        assert!(order.is_sorted(), "{written}");
    }

    #[test]
    fn only_what_changed_is_added_and_keys_the_file_has_stay_even_at_their_default() {
        let file = r#"{"server": {"port": 3003, "upstream": {"maxRetries": 0}}}"#;
        let mut submitted = filled(file);
        submitted["server"]["upstream"]["idleTimeoutMs"] = json!(60_000);
        let written = value(&save(file, submitted));
        assert_eq!(
            written,
            json!({"server": {"port": 3003, "upstream": {"maxRetries": 0, "idleTimeoutMs": 60000}}})
        );
    }

    #[test]
    fn an_entry_added_or_removed_leaves_the_others_as_written() {
        let file = r#"{"apiKeys": [
            {"id": "a", "key": "ka", "status": "active", "note": "by hand"},
            {"id": "b", "key": "kb", "status": "active"}]}"#;
        let mut submitted = filled(file);
        let keys = submitted["apiKeys"].as_array_mut().expect("keys");
        keys.remove(0);
        keys.push(json!({"id": "c", "key": "kc", "status": "active", "models": ["gpt-*"]}));
        let written = value(&save(file, submitted));
        assert_eq!(
            written,
            json!({"apiKeys": [
                {"id": "b", "key": "kb", "status": "active"},
                {"id": "c", "key": "kc", "status": "active", "models": ["gpt-*"]}
            ]})
        );
    }

    #[test]
    fn an_optional_section_set_to_its_defaults_is_kept_with_only_what_it_needs() {
        let file = r#"{"upstreams": [{"name": "u", "baseUrl": "https://r.openai.azure.com"}]}"#;
        let mut submitted = filled(file);
        submitted["upstreams"][0]["auth"] = json!({"mode": "apiKey", "apiKey": "k2"});
        let written = value(&save(file, submitted));
        assert_eq!(
            written["upstreams"][0]["auth"],
            json!({"mode": "apiKey", "apiKey": "k2"})
        );
    }

    #[test]
    fn without_a_file_only_what_differs_from_the_defaults_is_written() {
        let raw = raw_of(r#"{"server": {"port": 4000}}"#);
        let written = shaped(&raw, None).expect("shapes");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&written).expect("json"),
            json!({"server": {"port": 4000}})
        );
    }

    #[test]
    fn unknown_keys_and_their_order_are_kept() {
        let file = r#"{"zeta": 1, "server": {"port": 3000}, "alpha": {"b": 1, "a": 2}}"#;
        let written = save(file, filled(file));
        let z = written.find("zeta").expect("zeta");
        let s = written.find("server").expect("server");
        let a = written.find("alpha").expect("alpha");
        let b = written.find("\"b\"").expect("b");
        let a2 = written.find("\"a\"").expect("a");
        assert!(z < s && s < a && b < a2, "{written}");
    }
}
