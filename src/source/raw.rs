//! The records of a response as the source sent them.
//!
//! A record is stored with its payload as received, and hashed to tell a changed record from an
//! unchanged one. Writing each parsed record back out as text cost a seventh of the fetching
//! thread's time in a first sync; this finds the records' own text in the body instead, in one
//! pass that allocates nothing but the list (serde_json's `RawValue`, borrowed from the body).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The text of each element of the list at `path` (dotted object keys, as the descriptor's
/// `response.records`), or `None` if the body has no list there or the path goes through a list.
pub fn records_text<'b>(body: &'b str, path: &str) -> Option<Vec<&'b RawValue>> {
    let keys: Vec<&str> = path.split('.').collect();
    let mut de = serde_json::Deserializer::from_str(body);
    At { keys: &keys }.deserialize(&mut de).ok().flatten()
}

/// Walks down `keys`; everything beside the path is skipped unread.
struct At<'k> {
    keys: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            match self.keys.split_first() {
                Some((first, rest)) if key == *first && found.is_none() => {
                    found = map.next_value_seed(At { keys: rest })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    /// At the end of the path, the records; elsewhere, a list the path cannot go through.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if !self.keys.is_empty() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(r) = seq.next_element::<&'de RawValue>()? {
            out.push(r);
        }
        Ok(Some(out))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str, path: &str) -> Option<Vec<String>> {
        records_text(body, path).map(|v| v.iter().map(|r| r.get().to_string()).collect())
    }

    #[test]
    fn finds_each_record_as_sent_at_any_depth() {
        let body =
            r#"{"ok":true,"a":{"x":[1,{"b":2}],"b":{"items":[{"id":"1","t":"Hải Phòng \"x\""} ,{"id":2}]}},"z":null}"#;
        assert_eq!(
            texts(body, "a.b.items"),
            Some(vec![r#"{"id":"1","t":"Hải Phòng \"x\""}"#.to_string(), r#"{"id":2}"#.to_string()])
        );
        assert_eq!(texts(r#"{"content":[]}"#, "content"), Some(vec![]));
    }

    #[test]
    fn no_list_at_the_path_is_none() {
        assert_eq!(texts(r#"{"content":{"a":1}}"#, "content"), None);
        assert_eq!(texts(r#"{"content":null}"#, "content"), None);
        assert_eq!(texts(r#"{"other":[1]}"#, "content"), None);
        assert_eq!(texts(r#"[{"content":[1]}]"#, "content"), None);
        assert_eq!(texts(r#"{"content":[1"#, "content"), None, "a truncated body");
    }
}
