//! The rustdoc JSON walk: every public item reachable from the crate root, by the path a user
//! writes, as one line each ([`render`]); the signatures are [`super::signature`]'s.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::json::{id_of, list, tagged};

/// The sorted public-API lines of one crate's rustdoc JSON.
pub fn render(doc: &Value) -> Result<Vec<String>, String> {
    let index = doc["index"].as_object().ok_or("no `index`")?;
    let paths = doc["paths"].as_object().ok_or("no `paths`")?;
    let root_id = id_of(&doc["root"]).ok_or("no `root`")?;
    let root = index.get(&root_id).ok_or("root not in index")?;
    let name = root["name"].as_str().ok_or("root has no name")?.to_string();
    let mut api = Api {
        index,
        paths,
        lines: BTreeSet::new(),
        at: BTreeMap::new(),
        walked: HashSet::new(),
    };
    api.walk(&root_id, &name);
    let at = std::mem::take(&mut api.at);
    for (id, mut where_) in at {
        // Members are listed once, under the shortest path (then the first in order).
        where_.sort_by(|a, b| (a.matches("::").count(), a).cmp(&(b.matches("::").count(), b)));
        for (k, path) in where_.iter().enumerate() {
            api.item(&id, path, k == 0);
        }
    }
    Ok(api.lines.into_iter().collect())
}

/// Implementations left out: unstable compiler-internal marker traits, whose presence says
/// nothing a user can rely on (and changes with the toolchain).
const NOISE: &[&str] = &[
    "core::marker::Freeze",
    "core::marker::UnsafeUnpin",
    "core::marker::StructuralPartialEq",
];

pub(super) struct Api<'a> {
    pub(super) index: &'a Map<String, Value>,
    pub(super) paths: &'a Map<String, Value>,
    lines: BTreeSet<String>,
    /// Every public path of each item of this crate (or inlined into it).
    at: BTreeMap<String, Vec<String>>,
    /// (module id, path) pairs already walked: re-export cycles end.
    walked: HashSet<(String, String)>,
}

impl Api<'_> {
    fn walk(&mut self, module: &str, prefix: &str) {
        if !self.walked.insert((module.to_string(), prefix.to_string())) {
            return;
        }
        let Some(m) = self.index.get(module) else {
            return;
        };
        let items: Vec<String> = list(&m["inner"]["module"]["items"])
            .iter()
            .filter_map(id_of)
            .collect();
        for id in items {
            let Some(item) = self.index.get(&id) else {
                continue;
            };
            if item["visibility"].as_str() != Some("public") {
                continue;
            }
            let name = item["name"].as_str().unwrap_or("");
            let (kind, inner) = tagged(&item["inner"]);
            match kind {
                "module" => {
                    let path = format!("{prefix}::{name}");
                    self.lines.insert(format!("mod {path}"));
                    self.walk(&id, &path);
                }
                "use" => self.reexport(inner, prefix),
                "impl" | "primitive" | "keyword" => {}
                "extern_crate" => {
                    self.lines.insert(format!("extern crate {prefix}::{name}"));
                }
                _ => self.place(&id, format!("{prefix}::{name}")),
            }
        }
    }

    fn place(&mut self, id: &str, path: String) {
        let v = self.at.entry(id.to_string()).or_default();
        if !v.contains(&path) {
            v.push(path);
        }
    }

    fn reexport(&mut self, u: &Value, prefix: &str) {
        let source = u["source"].as_str().unwrap_or("?");
        let target = id_of(&u["id"]);
        let local = target.as_ref().and_then(|t| self.index.get(t));
        let is_module = |v: &Value| tagged(&v["inner"]).0 == "module";
        if u["is_glob"].as_bool() == Some(true) {
            match (local, &target) {
                (Some(m), Some(t)) if is_module(m) => self.walk(&t.clone(), prefix),
                _ => {
                    let from = self.foreign(target.as_deref(), source);
                    self.lines.insert(format!("use {prefix}::* = {from}::*"));
                }
            }
            return;
        }
        let name = u["name"].as_str().unwrap_or("?");
        let path = format!("{prefix}::{name}");
        match (local, target) {
            (Some(m), Some(t)) if is_module(m) => {
                self.lines.insert(format!("mod {path}"));
                self.walk(&t, &path);
            }
            (Some(_), Some(t)) => self.place(&t, path),
            (_, t) => {
                let kind = t
                    .as_ref()
                    .and_then(|t| self.paths.get(t))
                    .and_then(|p| p["kind"].as_str())
                    .unwrap_or("item");
                let from = self.foreign(t.as_deref(), source);
                self.lines.insert(format!("use {kind} {path} = {from}"));
            }
        }
    }

    /// The full path of a foreign item, or the re-export's own spelling.
    fn foreign(&self, id: Option<&str>, written: &str) -> String {
        id.and_then(|i| self.paths.get(i))
            .and_then(|p| p["path"].as_array())
            .map(|segs| {
                segs.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("::")
            })
            .unwrap_or_else(|| written.to_string())
    }

    /// One item at `path`; its members too if `members`.
    fn item(&mut self, id: &str, path: &str, members: bool) {
        let Some(item) = self.index.get(id) else {
            return;
        };
        let (kind, inner) = tagged(&item["inner"]);
        let line = match kind {
            "struct" => {
                let shape = match tagged(&inner["kind"]) {
                    ("unit", _) => ";".to_string(),
                    ("tuple", f) => format!("({})", self.tuple_fields(f, false)),
                    _ => String::new(),
                };
                let g = &inner["generics"];
                format!(
                    "struct {path}{}{shape}{}",
                    self.params(g),
                    self.where_clause(g)
                )
            }
            "union" | "enum" => {
                let g = &inner["generics"];
                format!("{kind} {path}{}{}", self.params(g), self.where_clause(g))
            }
            "trait" => {
                let g = &inner["generics"];
                let mut q = String::new();
                if inner["is_unsafe"].as_bool() == Some(true) {
                    q.push_str("unsafe ");
                }
                if inner["is_auto"].as_bool() == Some(true) {
                    q.push_str("auto ");
                }
                let bounds = self.bounds(&inner["bounds"]);
                let bounds = if bounds.is_empty() {
                    bounds
                } else {
                    format!(": {bounds}")
                };
                format!(
                    "{q}trait {path}{}{bounds}{}",
                    self.params(g),
                    self.where_clause(g)
                )
            }
            "function" => self.function(path, inner, "fn"),
            "constant" => format!("const {path}: {}", self.ty(&inner["type"])),
            "static" => {
                let m = if inner["is_mutable"].as_bool() == Some(true) {
                    "mut "
                } else {
                    ""
                };
                format!("static {m}{path}: {}", self.ty(&inner["type"]))
            }
            "type_alias" => {
                let g = &inner["generics"];
                format!(
                    "type {path}{}{} = {}",
                    self.params(g),
                    self.where_clause(g),
                    self.ty(&inner["type"])
                )
            }
            "macro" => format!("macro {path}!"),
            "proc_macro" => format!("proc-macro {path}"),
            other => format!("{other} {path}"),
        };
        self.lines.insert(line);
        if !members {
            return;
        }
        match kind {
            "struct" | "union" => {
                if let ("plain", f) = tagged(&inner["kind"]) {
                    self.named_fields(&f["fields"], path);
                }
                if kind == "union" {
                    self.named_fields(&inner["fields"], path);
                }
                self.impls(&inner["impls"], path);
            }
            "enum" => {
                for v in list(&inner["variants"]).iter().filter_map(id_of) {
                    self.variant(&v, path);
                }
                self.impls(&inner["impls"], path);
            }
            "trait" => {
                for i in list(&inner["items"]).iter().filter_map(id_of) {
                    self.trait_item(&i, path);
                }
            }
            _ => {}
        }
    }

    fn field_ty(&self, id: &str) -> Option<(String, String, bool)> {
        let f = self.index.get(id)?;
        let name = f["name"].as_str().unwrap_or("?").to_string();
        let public = f["visibility"].as_str() == Some("public");
        Some((name, self.ty(&f["inner"]["struct_field"]), public))
    }

    /// The types of tuple fields; a private field (of a struct) is `_`.
    fn tuple_fields(&self, fields: &Value, all_public: bool) -> String {
        list(fields)
            .iter()
            .map(|f| match id_of(f).and_then(|i| self.field_ty(&i)) {
                Some((_, ty, public)) if public || all_public => ty,
                _ => "_".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn named_fields(&mut self, fields: &Value, path: &str) {
        for f in list(fields).iter().filter_map(id_of) {
            if let Some((name, ty, true)) = self.field_ty(&f) {
                self.lines.insert(format!("field {path}::{name}: {ty}"));
            }
        }
    }

    fn variant(&mut self, id: &str, path: &str) {
        let Some(v) = self.index.get(id) else {
            return;
        };
        let name = v["name"].as_str().unwrap_or("?");
        let inner = &v["inner"]["variant"];
        let shape = match tagged(&inner["kind"]) {
            ("tuple", f) => format!("({})", self.tuple_fields(f, true)),
            ("struct", s) => {
                let fs: Vec<String> = list(&s["fields"])
                    .iter()
                    .filter_map(id_of)
                    .filter_map(|i| self.field_ty(&i))
                    .map(|(n, t, _)| format!("{n}: {t}"))
                    .collect();
                format!(" {{ {} }}", fs.join(", "))
            }
            _ => String::new(),
        };
        let disc = inner["discriminant"]["expr"]
            .as_str()
            .map(|e| format!(" = {e}"))
            .unwrap_or_default();
        self.lines
            .insert(format!("variant {path}::{name}{shape}{disc}"));
    }

    fn trait_item(&mut self, id: &str, path: &str) {
        let Some(it) = self.index.get(id) else {
            return;
        };
        let name = it["name"].as_str().unwrap_or("?");
        let (kind, inner) = tagged(&it["inner"]);
        let line = match kind {
            "function" => {
                let mut l = self.function(&format!("{path}::{name}"), inner, "trait-fn");
                if inner["has_body"].as_bool() == Some(true) {
                    l.push_str(" {provided}");
                }
                l
            }
            "assoc_type" => {
                let b = self.bounds(&inner["bounds"]);
                let b = if b.is_empty() { b } else { format!(": {b}") };
                let d = if inner["type"].is_null() {
                    String::new()
                } else {
                    format!(" = {}", self.ty(&inner["type"]))
                };
                format!("trait-type {path}::{name}{b}{d}")
            }
            "assoc_const" => format!("trait-const {path}::{name}: {}", self.ty(&inner["type"])),
            other => format!("trait-{other} {path}::{name}"),
        };
        self.lines.insert(line);
    }

    fn impls(&mut self, impls: &Value, path: &str) {
        for id in list(impls).iter().filter_map(id_of) {
            let Some(imp) = self.index.get(&id) else {
                continue;
            };
            let imp = &imp["inner"]["impl"];
            if !imp["blanket_impl"].is_null() {
                continue;
            }
            let items: Vec<String> = list(&imp["items"]).iter().filter_map(id_of).collect();
            if imp["trait"].is_null() {
                for i in items {
                    self.inherent(&i, path);
                }
                continue;
            }
            let trait_ = self.path(&imp["trait"]);
            if NOISE.contains(&trait_.as_str()) {
                continue;
            }
            let g = &imp["generics"];
            let q = format!(
                "{}{}",
                if imp["is_unsafe"].as_bool() == Some(true) {
                    "unsafe "
                } else {
                    ""
                },
                if imp["is_negative"].as_bool() == Some(true) {
                    "!"
                } else {
                    ""
                }
            );
            let (params, where_) = (self.params(g), self.where_clause(g));
            let head = if params.is_empty() && where_.is_empty() {
                format!("impl {path}: {q}{trait_}")
            } else {
                format!(
                    "impl {path}: impl{params} {q}{trait_} for {}{where_}",
                    self.ty(&imp["for"])
                )
            };
            for i in items {
                let Some(it) = self.index.get(&i) else {
                    continue;
                };
                if let ("assoc_type", t) = tagged(&it["inner"]) {
                    let name = it["name"].as_str().unwrap_or("?");
                    self.lines.insert(format!(
                        "{head} {{ type {name} = {} }}",
                        self.ty(&t["type"])
                    ));
                }
            }
            self.lines.insert(head);
        }
    }

    fn inherent(&mut self, id: &str, path: &str) {
        let Some(it) = self.index.get(id) else {
            return;
        };
        if it["visibility"].as_str() != Some("public") {
            return;
        }
        let name = it["name"].as_str().unwrap_or("?");
        let (kind, inner) = tagged(&it["inner"]);
        let line = match kind {
            "function" => self.function(&format!("{path}::{name}"), inner, "method"),
            "assoc_const" => format!("assoc-const {path}::{name}: {}", self.ty(&inner["type"])),
            "assoc_type" => format!("assoc-type {path}::{name} = {}", self.ty(&inner["type"])),
            other => format!("{other} {path}::{name}"),
        };
        self.lines.insert(line);
    }
}
