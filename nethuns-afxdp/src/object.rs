//! A user's own XDP program from an ELF object file ([`XdpObject`], `Steer::Program`), as C
//! nethuns loads one: parsed and relocated with `aya-obj` (ELF, BTF-defined and legacy maps,
//! `.data`/`.rodata`/`.bss`, calls between functions), its maps created and the program
//! loaded with this crate's own `bpf(2)` calls.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use aya_obj::{EbpfSectionKind, Map, Object, ProgramSection};
use nethuns_core::{Error, Result};

use crate::abi::{insn, Insn, BPF_F_XDP_HAS_FRAGS, BPF_MAP_TYPE_XSKMAP};
use crate::sys;

/// An XDP program of the user's, compiled to an ELF object (`clang -O2 -g -target bpf -c
/// prog.c -o prog.o`), attached instead of the steering program. It must declare an XSKMAP
/// (named `xsk_map`, `"xsks_map"` by default, as libxdp's programs name it) and redirect to
/// it with `bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS)`: each socket puts
/// itself at its queue's index, so the map needs at least as many entries as the highest
/// queue + 1.
///
/// ```no_run
/// use nethuns_afxdp::{AfXdpFlags, AfXdpOptions, Sock, Steer, XdpObject};
/// let steer = Steer::Program(XdpObject::new("filter.o"));
/// let sock = Sock::create_with_options("eth0", Some(0), AfXdpFlags::default(),
///     AfXdpOptions { steer })?;
/// # Ok::<(), nethuns_afxdp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XdpObject {
    /// The ELF object file.
    pub path: PathBuf,
    /// The program's function name; `None`: the object's only XDP program.
    pub program: Option<String>,
    /// The name of the XSKMAP the program redirects to.
    pub xsk_map: String,
}

impl XdpObject {
    /// The object at `path`, its only XDP program, its map `xsks_map`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        XdpObject {
            path: path.into(),
            program: None,
            xsk_map: "xsks_map".into(),
        }
    }
}

/// A loaded user program: its descriptor, and the XSKMAP the sockets register in.
pub(crate) struct Loaded {
    pub prog: OwnedFd,
    pub xsk_map: OwnedFd,
    /// The object's other maps (the program holds them too; kept for its lifetime).
    pub _maps: Vec<OwnedFd>,
}

fn err(obj: &XdpObject, what: impl std::fmt::Display) -> Error {
    Error::flag(
        "steer",
        format!("XDP object {}: {what}", obj.path.display()),
    )
}

/// Creates the map `name` of the object, filled with its initial data for `.data`/`.rodata`.
fn create_map(name: &str, map: &Map) -> std::io::Result<OwnedFd> {
    let fd = sys::map_create(
        map.map_type(),
        map.key_size(),
        map.value_size(),
        map.max_entries(),
        map.map_flags(),
        name.as_bytes(),
    )?;
    let kind = map.section_kind();
    if matches!(kind, EbpfSectionKind::Data | EbpfSectionKind::Rodata) {
        let mut value = map.data().to_vec();
        value.resize(map.value_size() as usize, 0);
        sys::map_update(&fd, &0u32.to_ne_bytes(), &value)?;
        if kind == EbpfSectionKind::Rodata {
            sys::map_freeze(&fd)?;
        }
    }
    Ok(fd)
}

/// Parses, relocates and loads `obj` (the calling thread's namespace is irrelevant: maps and
/// programs are not per namespace).
///
/// `frags`: the socket takes multi-buffer frames, so the program must say it handles them
/// (`SEC("xdp.frags")`); it is loaded with `BPF_F_XDP_HAS_FRAGS` then.
pub(crate) fn load(obj: &XdpObject, frags_needed: bool) -> Result<Loaded> {
    let bytes = std::fs::read(&obj.path).map_err(|e| err(obj, format!("reading it: {e}")))?;
    let mut object = Object::parse(&bytes).map_err(|e| err(obj, format!("parsing it: {e}")))?;
    let xdp: Vec<(String, bool)> = object
        .programs
        .iter()
        .filter_map(|(n, p)| match p.section {
            ProgramSection::Xdp { frags, .. } => Some((n.clone(), frags)),
            _ => None,
        })
        .collect();
    let (name, frags) = match &obj.program {
        Some(want) => xdp
            .iter()
            .find(|(n, _)| n == want)
            .cloned()
            .ok_or_else(|| {
                err(
                    obj,
                    format!(
                        "no XDP program named {want:?} (it has {:?})",
                        xdp.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ),
                )
            })?,
        None => match xdp.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(err(
                    obj,
                    "no XDP program (a section named `xdp` or `xdp/...`)",
                ))
            }
            many => {
                return Err(err(
                    obj,
                    format!(
                        "{} XDP programs ({:?}): name one in XdpObject::program",
                        many.len(),
                        many.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ),
                ))
            }
        },
    };
    match object.maps.get(&obj.xsk_map) {
        Some(m) if m.map_type() == BPF_MAP_TYPE_XSKMAP => {}
        Some(m) => {
            return Err(err(
                obj,
                format!(
                    "map {:?} has type {}, not BPF_MAP_TYPE_XSKMAP ({BPF_MAP_TYPE_XSKMAP})",
                    obj.xsk_map,
                    m.map_type()
                ),
            ))
        }
        None => {
            return Err(err(
                obj,
                format!(
                    "no map named {:?} (it has {:?}); set XdpObject::xsk_map",
                    obj.xsk_map,
                    object.maps.keys().collect::<Vec<_>>()
                ),
            ))
        }
    }
    let mut fds: Vec<(String, OwnedFd)> = vec![];
    for (n, m) in &object.maps {
        let fd = create_map(n, m).map_err(|e| {
            err(
                obj,
                format!("creating map {n:?} (type {}): {e}", m.map_type()),
            )
        })?;
        fds.push((n.clone(), fd));
    }
    let text_sections: HashSet<usize> = object.functions.keys().map(|(s, _)| *s).collect();
    let maps: Vec<(String, i32, Map)> = fds
        .iter()
        .map(|(n, fd)| (n.clone(), fd.as_raw_fd(), object.maps[n].clone()))
        .collect();
    object
        .relocate_maps(
            maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
            &text_sections,
        )
        .map_err(|e| err(obj, format!("relocating its maps: {e}")))?;
    object
        .relocate_calls(&text_sections)
        .map_err(|e| err(obj, format!("relocating its calls: {e}")))?;
    let program = &object.programs[&name];
    let function = object
        .functions
        .get(&program.function_key())
        .ok_or_else(|| err(obj, format!("program {name:?} has no code")))?;
    let insns: Vec<Insn> = function
        .instructions
        .iter()
        .map(|i| insn(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm))
        .collect();
    if frags_needed && !frags {
        return Err(err(
            obj,
            format!(
                "program {name:?} is not multi-buffer (SEC(\"xdp\")) but the interface's MTU \
                 needs multi-buffer frames: declare it SEC(\"xdp.frags\")"
            ),
        ));
    }
    let flags = if frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
    let prog = sys::load_xdp_as(&insns, &program.license, flags, None, name.as_bytes())
        .map_err(|e| err(obj, format!("loading program {name:?}: {e}")))?;
    let i = fds
        .iter()
        .position(|(n, _)| *n == obj.xsk_map)
        .expect("the XSKMAP was created above");
    let xsk_map = fds.swap_remove(i).1;
    Ok(Loaded {
        prog,
        xsk_map,
        _maps: fds.into_iter().map(|(_, fd)| fd).collect(),
    })
}
