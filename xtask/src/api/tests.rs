//! The API rendering on small hand-written rustdoc JSON documents.
use super::*;

/// A crate `k` with `pub struct S` (defined in a private module, re-exported at the root)
/// with `pub fn get(&self) -> u32` and a private `fn hidden`, a foreign re-export and a
/// private function.
#[test]
fn lists_public_items_by_the_path_users_write() {
    let doc = serde_json::json!({
        "root": 0,
        "index": {
            "0": {"name": "k", "visibility": "public", "inner": {"module": {"items": [1, 2, 3, 4]}}},
            "1": {"name": "inner", "visibility": "default", "inner": {"module": {"items": [5]}}},
            "2": {"name": null, "visibility": "public", "inner": {"use": {"source": "inner::S", "name": "S", "id": 5, "is_glob": false}}},
            "3": {"name": null, "visibility": "public", "inner": {"use": {"source": "other::T", "name": "U", "id": 90, "is_glob": false}}},
            "4": {"name": "private_fn", "visibility": "crate", "inner": {"function": {}}},
            "5": {"name": "S", "visibility": "public", "inner": {"struct": {
                "kind": {"plain": {"fields": [], "has_stripped_fields": true}},
                "generics": {"params": [], "where_predicates": []}, "impls": [6]}}},
            "6": {"name": null, "visibility": "default", "inner": {"impl": {
                "trait": null, "blanket_impl": null, "items": [7, 8],
                "generics": {"params": [], "where_predicates": []}}}},
            "7": {"name": "get", "visibility": "public", "inner": {"function": {
                "sig": {"inputs": [["self", {"borrowed_ref": {"lifetime": null, "is_mutable": false, "type": {"generic": "Self"}}}]],
                        "output": {"primitive": "u32"}},
                "generics": {"params": [], "where_predicates": []},
                "header": {"is_const": false, "is_unsafe": false, "is_async": false, "abi": "Rust"}}}},
            "8": {"name": "hidden", "visibility": "default", "inner": {"function": {}}}
        },
        "paths": {"90": {"crate_id": 3, "path": ["other", "deep", "T"], "kind": "struct"}}
    });
    assert_eq!(
        render(&doc).unwrap(),
        [
            "method k::S::get: fn(&self) -> u32",
            "struct k::S",
            "use struct k::U = other::deep::T",
        ]
    );
}
