//! Places in a JSON value, to damage one: shared by `tests/bad_input.rs` and the `map_record` fuzz
//! target (`fuzz/fuzz_targets/map_record.rs`), which include this file by path.

use serde_json::Value;

/// How many places (values, nested ones included) `v` has.
fn places(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(places).sum(),
        Value::Array(a) => a.iter().map(places).sum(),
        _ => 0,
    }
}

/// The value at the `pick`-th place of a walk through `v` (pre-order), to damage.
pub fn place(v: &mut Value, pick: usize) -> &mut Value {
    fn walk<'a>(v: &'a mut Value, pick: &mut usize) -> Option<&'a mut Value> {
        if *pick == 0 {
            return Some(v);
        }
        *pick -= 1;
        match v {
            Value::Object(m) => m.values_mut().find_map(|c| walk(c, pick)),
            Value::Array(a) => a.iter_mut().find_map(|c| walk(c, pick)),
            _ => None,
        }
    }
    let mut pick = pick % places(v);
    walk(v, &mut pick).expect("every place below the count is found")
}
