//! Signatures in the API lines: functions, generics, bounds, paths and types as a user
//! writes them.

use serde_json::Value;

use super::json::{id_of, list, tagged};
use super::render::Api;

/// `&'a mut ` of a `borrowed_ref` type.
fn ref_prefix(r: &Value) -> String {
    let lt = r["lifetime"]
        .as_str()
        .map(|l| format!("{l} "))
        .unwrap_or_default();
    let m = if r["is_mutable"].as_bool() == Some(true) {
        "mut "
    } else {
        ""
    };
    format!("&{lt}{m}")
}

impl Api<'_> {
    pub(super) fn function(&self, path: &str, f: &Value, kw: &str) -> String {
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

    pub(super) fn self_arg(&self, t: &Value) -> String {
        let is_self = |t: &Value| t["generic"].as_str() == Some("Self");
        if is_self(t) {
            return "self".into();
        }
        if let ("borrowed_ref", r) = tagged(t) {
            if is_self(&r["type"]) {
                return format!("{}self", ref_prefix(r));
            }
        }
        format!("self: {}", self.ty(t))
    }

    /// `<'a, T: Bound, const N: usize>` (synthetic `impl Trait` parameters left out).
    pub(super) fn params(&self, g: &Value) -> String {
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

    pub(super) fn param(&self, p: &Value) -> Option<String> {
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

    pub(super) fn where_clause(&self, g: &Value) -> String {
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

    pub(super) fn hrtb(&self, params: &Value) -> String {
        let ps: Vec<String> = list(params).iter().filter_map(|p| self.param(p)).collect();
        if ps.is_empty() {
            String::new()
        } else {
            format!("for<{}> ", ps.join(", "))
        }
    }

    pub(super) fn bounds(&self, bounds: &Value) -> String {
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
    pub(super) fn name(&self, id: Option<String>, written: &str) -> String {
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

    pub(super) fn path(&self, p: &Value) -> String {
        let name = self.name(id_of(&p["id"]), p["path"].as_str().unwrap_or("?"));
        format!("{name}{}", self.args(&p["args"]))
    }

    pub(super) fn args(&self, a: &Value) -> String {
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

    pub(super) fn term(&self, t: &Value) -> String {
        match tagged(t) {
            ("type", t) => self.ty(t),
            ("constant", c) => c["expr"].as_str().unwrap_or("?").to_string(),
            (other, _) => other.to_string(),
        }
    }

    pub(super) fn ty(&self, t: &Value) -> String {
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
                format!("{}{}", ref_prefix(r), self.ty(&r["type"]))
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
