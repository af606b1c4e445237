//! Reading rustdoc's JSON: ids, externally tagged enums, lists.

use serde_json::Value;

/// An item id, written as a number or a string depending on the format version.
pub(super) fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The single key of an externally tagged enum value (`{"struct": {...}}`), and its content.
pub(super) fn tagged(v: &Value) -> (&str, &Value) {
    match v {
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            (k.as_str(), v)
        }
        Value::String(s) => (s.as_str(), &Value::Null),
        _ => ("", &Value::Null),
    }
}

/// The elements of a JSON array, none for anything else.
pub(super) fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}
