//! `cargo xtask api [--bless]`: the public-API snapshot of every library crate.
//!
//! For each crate of [`CRATES`], rustdoc writes its JSON description
//! (`RUSTC_BOOTSTRAP=1 cargo rustdoc -p CRATE --all-features -- -Z unstable-options
//! --output-format json`, which works on a stable toolchain) into the shared target directory,
//! and [`render`] turns it into a sorted list of lines, one per public item reachable from the
//! crate root: modules, re-exports, types with their public fields and variants, traits with
//! their items, functions and inherent methods with their signatures, and the traits each type
//! implements (auto traits included, blanket impls left out). The list is compared with
//! `api/CRATE.txt`:
//!
//! - `cargo xtask api` (and `cargo xtask lint`) fail on a difference, naming each added (`+`)
//!   and removed (`-`) line;
//! - `cargo xtask api --bless` rewrites the snapshots after an intended change (review the
//!   diff with `git diff api/`).
//!
//! Lines name an item by the path a user writes (`nethuns_netmap::Sock::tx_pending`), never by
//! the private module that defines it. Inside signatures, a type of the same crate is named by
//! its name alone and a foreign type by its full definition path; a re-export of a foreign item
//! is one `use` line (its own items are in the snapshot of the crate that defines it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::util::{cargo, root, target_dir};

/// The library crates whose public API is frozen.
pub const CRATES: &[&str] = &[
    "nethuns-core",
    "nethuns-pcap",
    "nethuns-afpacket",
    "nethuns-afxdp",
    "nethuns-netmap",
    "nethuns-dpdk",
    "nethuns-tokio",
    "nethuns",
    "nethuns-testnet",
];

/// `cargo xtask api`'s options.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// Rewrite the snapshots after an intended change (then review `git diff api/`).
    #[arg(long)]
    pub bless: bool,
}

/// `cargo xtask api [--bless]`.
pub fn run(args: &ApiArgs) -> Result<(), String> {
    if args.bless {
        self::bless()
    } else {
        check()
    }
}

/// Compares every crate's API with its snapshot; fails naming the lines that differ.
pub fn check() -> Result<(), String> {
    let mut report = String::new();
    for krate in CRATES {
        let now = current(krate)?;
        let file = snapshot_path(krate);
        let old = std::fs::read_to_string(&file).unwrap_or_default();
        let old: BTreeSet<&str> = old.lines().filter(|l| !l.is_empty()).collect();
        let now_set: BTreeSet<&str> = now.lines().collect();
        let removed: Vec<&&str> = old.difference(&now_set).collect();
        let added: Vec<&&str> = now_set.difference(&old).collect();
        if removed.is_empty() && added.is_empty() {
            continue;
        }
        report.push_str(&format!(
            "\n{krate}: public API differs from api/{krate}.txt ({} added, {} removed)\n",
            added.len(),
            removed.len()
        ));
        for l in removed {
            report.push_str(&format!("- {l}\n"));
        }
        for l in added {
            report.push_str(&format!("+ {l}\n"));
        }
    }
    if report.is_empty() {
        println!("public API: {} crates match api/*.txt", CRATES.len());
        Ok(())
    } else {
        Err(format!(
            "public API changed:{report}\nIf the change is intended: cargo xtask api --bless \
             (then review git diff api/)"
        ))
    }
}

/// Rewrites every crate's snapshot.
pub fn bless() -> Result<(), String> {
    let dir = root().join("api");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for krate in CRATES {
        let now = current(krate)?;
        let file = snapshot_path(krate);
        std::fs::write(&file, now).map_err(|e| format!("writing {}: {e}", file.display()))?;
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn snapshot_path(krate: &str) -> PathBuf {
    root().join("api").join(format!("{krate}.txt"))
}

/// The API of `krate` as built now: rustdoc JSON, rendered.
fn current(krate: &str) -> Result<String, String> {
    cargo(
        &[
            "rustdoc",
            "--quiet",
            "-p",
            krate,
            "--all-features",
            "--",
            "-Z",
            "unstable-options",
            "--output-format",
            "json",
        ],
        &[("RUSTC_BOOTSTRAP", "1")],
    )?;
    let file = target_dir()
        .join("doc")
        .join(format!("{}.json", krate.replace('-', "_")));
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    let lines = render(&doc).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

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

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The single key of an externally tagged enum value (`{"struct": {...}}`), and its content.
fn tagged(v: &Value) -> (&str, &Value) {
    match v {
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            (k.as_str(), v)
        }
        Value::String(s) => (s.as_str(), &Value::Null),
        _ => ("", &Value::Null),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Implementations left out: unstable compiler-internal marker traits, whose presence says
/// nothing a user can rely on (and changes with the toolchain).
const NOISE: &[&str] = &[
    "core::marker::Freeze",
    "core::marker::UnsafeUnpin",
    "core::marker::StructuralPartialEq",
];

struct Api<'a> {
    index: &'a Map<String, Value>,
    paths: &'a Map<String, Value>,
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

    fn function(&self, path: &str, f: &Value, kw: &str) -> String {
        let h = &f["header"];
        let mut q = String::new();
        for (k, s) in [
            ("is_const", "const "),
            ("is_async", "async "),
            ("is_unsafe", "unsafe "),
        ] {
            if h[k].as_bool() == Some(true) {
                q.push_str(s);
            }
        }
        match tagged(&h["abi"]) {
            ("Rust", _) | ("", _) => {}
            (abi, _) => q.push_str(&format!("extern {abi:?} ")),
        }
        let g = &f["generics"];
        let sig = &f["sig"];
        let args: Vec<String> = list(&sig["inputs"])
            .iter()
            .map(|a| {
                let name = a[0].as_str().unwrap_or("_");
                let t = &a[1];
                if name == "self" {
                    self.self_arg(t)
                } else {
                    format!("{name}: {}", self.ty(t))
                }
            })
            .collect();
        let ret = if sig["output"].is_null() {
            String::new()
        } else {
            format!(" -> {}", self.ty(&sig["output"]))
        };
        format!(
            "{kw} {path}: {q}fn{}({}){ret}{}",
            self.params(g),
            args.join(", "),
            self.where_clause(g)
        )
    }

    fn self_arg(&self, t: &Value) -> String {
        let is_self = |t: &Value| t["generic"].as_str() == Some("Self");
        if is_self(t) {
            return "self".into();
        }
        if let ("borrowed_ref", r) = tagged(t) {
            if is_self(&r["type"]) {
                let lt = r["lifetime"]
                    .as_str()
                    .map(|l| format!("{l} "))
                    .unwrap_or_default();
                let m = if r["is_mutable"].as_bool() == Some(true) {
                    "mut "
                } else {
                    ""
                };
                return format!("&{lt}{m}self");
            }
        }
        format!("self: {}", self.ty(t))
    }

    /// `<'a, T: Bound, const N: usize>` (synthetic `impl Trait` parameters left out).
    fn params(&self, g: &Value) -> String {
        let ps: Vec<String> = list(&g["params"])
            .iter()
            .filter_map(|p| self.param(p))
            .collect();
        if ps.is_empty() {
            String::new()
        } else {
            format!("<{}>", ps.join(", "))
        }
    }

    fn param(&self, p: &Value) -> Option<String> {
        let name = p["name"].as_str().unwrap_or("?");
        Some(match tagged(&p["kind"]) {
            ("lifetime", l) => {
                let o: Vec<&str> = list(&l["outlives"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if o.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}: {}", o.join(" + "))
                }
            }
            ("type", t) => {
                if t["is_synthetic"].as_bool() == Some(true) {
                    return None;
                }
                let b = self.bounds(&t["bounds"]);
                let mut s = name.to_string();
                if !b.is_empty() {
                    s.push_str(&format!(": {b}"));
                }
                if !t["default"].is_null() {
                    s.push_str(&format!(" = {}", self.ty(&t["default"])));
                }
                s
            }
            ("const", c) => format!("const {name}: {}", self.ty(&c["type"])),
            _ => name.to_string(),
        })
    }

    fn where_clause(&self, g: &Value) -> String {
        let ps: Vec<String> = list(&g["where_predicates"])
            .iter()
            .map(|w| match tagged(w) {
                ("bound_predicate", b) => format!(
                    "{}{}: {}",
                    self.hrtb(&b["generic_params"]),
                    self.ty(&b["type"]),
                    self.bounds(&b["bounds"])
                ),
                ("lifetime_predicate", l) => format!(
                    "{}: {}",
                    l["lifetime"].as_str().unwrap_or("?"),
                    list(&l["outlives"])
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
                ("eq_predicate", e) => {
                    format!("{} = {}", self.ty(&e["lhs"]), self.term(&e["rhs"]))
                }
                (other, _) => other.to_string(),
            })
            .collect();
        if ps.is_empty() {
            String::new()
        } else {
            format!(" where {}", ps.join(", "))
        }
    }

    fn hrtb(&self, params: &Value) -> String {
        let ps: Vec<String> = list(params).iter().filter_map(|p| self.param(p)).collect();
        if ps.is_empty() {
            String::new()
        } else {
            format!("for<{}> ", ps.join(", "))
        }
    }

    fn bounds(&self, bounds: &Value) -> String {
        list(bounds)
            .iter()
            .map(|b| match tagged(b) {
                ("trait_bound", t) => {
                    let m = match t["modifier"].as_str() {
                        Some("maybe") => "?",
                        Some("maybe_const") => "~const ",
                        _ => "",
                    };
                    format!(
                        "{}{m}{}",
                        self.hrtb(&t["generic_params"]),
                        self.path(&t["trait"])
                    )
                }
                ("outlives", l) => l.as_str().unwrap_or("?").to_string(),
                ("use", u) => format!(
                    "use<{}>",
                    list(u)
                        .iter()
                        .map(|a| match tagged(a) {
                            (_, Value::String(s)) => s.clone(),
                            (k, _) => k.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (other, _) => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// A type's name: same-crate types by name, foreign types by full path.
    fn name(&self, id: Option<String>, written: &str) -> String {
        let Some(p) = id.and_then(|i| self.paths.get(&i)) else {
            return written.rsplit("::").next().unwrap_or(written).to_string();
        };
        let segs: Vec<&str> = list(&p["path"]).iter().filter_map(Value::as_str).collect();
        if p["crate_id"].as_u64() == Some(0) {
            segs.last().copied().unwrap_or(written).to_string()
        } else {
            segs.join("::")
        }
    }

    fn path(&self, p: &Value) -> String {
        let name = self.name(id_of(&p["id"]), p["path"].as_str().unwrap_or("?"));
        format!("{name}{}", self.args(&p["args"]))
    }

    fn args(&self, a: &Value) -> String {
        match tagged(a) {
            ("angle_bracketed", a) => {
                let mut xs: Vec<String> = list(&a["args"])
                    .iter()
                    .map(|x| match tagged(x) {
                        ("lifetime", l) => l.as_str().unwrap_or("?").to_string(),
                        ("type", t) => self.ty(t),
                        ("const", c) => c["expr"].as_str().unwrap_or("?").to_string(),
                        _ => "_".to_string(),
                    })
                    .collect();
                for c in list(&a["constraints"]) {
                    let name = c["name"].as_str().unwrap_or("?");
                    let args = self.args(&c["args"]);
                    xs.push(match tagged(&c["binding"]) {
                        ("equality", t) => format!("{name}{args} = {}", self.term(t)),
                        ("constraint", b) => format!("{name}{args}: {}", self.bounds(b)),
                        _ => name.to_string(),
                    });
                }
                if xs.is_empty() {
                    String::new()
                } else {
                    format!("<{}>", xs.join(", "))
                }
            }
            ("parenthesized", p) => {
                let ins: Vec<String> = list(&p["inputs"]).iter().map(|t| self.ty(t)).collect();
                let out = if p["output"].is_null() {
                    String::new()
                } else {
                    format!(" -> {}", self.ty(&p["output"]))
                };
                format!("({}){out}", ins.join(", "))
            }
            ("return_type_notation", _) => "(..)".to_string(),
            _ => String::new(),
        }
    }

    fn term(&self, t: &Value) -> String {
        match tagged(t) {
            ("type", t) => self.ty(t),
            ("constant", c) => c["expr"].as_str().unwrap_or("?").to_string(),
            (other, _) => other.to_string(),
        }
    }

    fn ty(&self, t: &Value) -> String {
        match tagged(t) {
            ("resolved_path", p) => self.path(p),
            ("generic", g) | ("primitive", g) => g.as_str().unwrap_or("?").to_string(),
            ("tuple", ts) => {
                let xs: Vec<String> = list(ts).iter().map(|t| self.ty(t)).collect();
                if xs.len() == 1 {
                    format!("({},)", xs[0])
                } else {
                    format!("({})", xs.join(", "))
                }
            }
            ("slice", t) => format!("[{}]", self.ty(t)),
            ("array", a) => format!(
                "[{}; {}]",
                self.ty(&a["type"]),
                a["len"].as_str().unwrap_or("?")
            ),
            ("pat", p) => self.ty(&p["type"]),
            ("impl_trait", b) => format!("impl {}", self.bounds(b)),
            ("infer", _) => "_".to_string(),
            ("raw_pointer", r) => format!(
                "*{} {}",
                if r["is_mutable"].as_bool() == Some(true) {
                    "mut"
                } else {
                    "const"
                },
                self.ty(&r["type"])
            ),
            ("borrowed_ref", r) => {
                let lt = r["lifetime"]
                    .as_str()
                    .map(|l| format!("{l} "))
                    .unwrap_or_default();
                let m = if r["is_mutable"].as_bool() == Some(true) {
                    "mut "
                } else {
                    ""
                };
                format!("&{lt}{m}{}", self.ty(&r["type"]))
            }
            ("dyn_trait", d) => {
                let mut xs: Vec<String> = list(&d["traits"])
                    .iter()
                    .map(|p| {
                        format!(
                            "{}{}",
                            self.hrtb(&p["generic_params"]),
                            self.path(&p["trait"])
                        )
                    })
                    .collect();
                if let Some(l) = d["lifetime"].as_str() {
                    xs.push(l.to_string());
                }
                format!("dyn {}", xs.join(" + "))
            }
            ("qualified_path", q) => {
                let name = q["name"].as_str().unwrap_or("?");
                let args = self.args(&q["args"]);
                let self_ty = self.ty(&q["self_type"]);
                if q["trait"].is_null() || q["self_type"]["generic"].is_string() {
                    format!("{self_ty}::{name}{args}")
                } else {
                    format!("<{self_ty} as {}>::{name}{args}", self.path(&q["trait"]))
                }
            }
            ("function_pointer", f) => {
                let sig = &f["sig"];
                let ins: Vec<String> = list(&sig["inputs"])
                    .iter()
                    .map(|a| self.ty(&a[1]))
                    .collect();
                let out = if sig["output"].is_null() {
                    String::new()
                } else {
                    format!(" -> {}", self.ty(&sig["output"]))
                };
                let unsafe_ = if f["header"]["is_unsafe"].as_bool() == Some(true) {
                    "unsafe "
                } else {
                    ""
                };
                let abi = match tagged(&f["header"]["abi"]) {
                    ("Rust", _) | ("", _) => String::new(),
                    (abi, _) => format!("extern {abi:?} "),
                };
                format!(
                    "{}{unsafe_}{abi}fn({}){out}",
                    self.hrtb(&f["generic_params"]),
                    ins.join(", ")
                )
            }
            (other, _) => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
