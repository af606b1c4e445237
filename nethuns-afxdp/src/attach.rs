//! The XDP program that steers a queue's frames to its socket, one per interface, shared by the
//! process's sockets on that interface.
//!
//! The first socket on an interface creates an XSKMAP, loads the redirect program and attaches
//! it through a **bpf_link**; the others add themselves to the map. The last one to go closes
//! the link, which detaches the program. A bpf_link is owned by its file descriptor, not by
//! the interface: when the process dies (even by SIGKILL) the kernel closes the descriptor and
//! the program goes with it, so no stale program is ever left on the interface. (A program
//! attached through netlink, as libxdp does, would stay until someone removes it.)

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use nethuns_core::{Error, Result};

use crate::abi::{Insn, BPF_F_XDP_DEV_BOUND_ONLY, BPF_F_XDP_HAS_FRAGS};
use crate::flags::{mode_name, XDP_FLAGS_DRV_MODE};
use crate::steer::{self, HostAddrs, Steer, Tail};
use crate::{rxmeta, sys, xdpstate};

/// Entries of the per-interface XSKMAP: queue ids above this cannot be used.
pub(crate) const MAX_QUEUES: u32 = 1024;

type Key = ((u64, u64), u32);

struct Attachment {
    key: Key,
    mode: u32,
    /// The program writes XDP RX metadata (`Ok`), or why it does not.
    rx_meta: std::result::Result<(), String>,
    /// What the program gives the sockets; every socket on the interface asks for the same.
    steer: Steer,
    users: usize,
    /// The queues this process's sockets are bound to.
    queues: Vec<u32>,
    map: OwnedFd,
    _prog: OwnedFd,
    /// A user program's other maps.
    _maps: Vec<OwnedFd>,
    link: OwnedFd,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Detach synchronously, so the interface is clean when the last socket's drop returns;
        // closing the fd (below, or by the kernel when the process dies) would also detach it,
        // from a kernel work queue. An error (interface already gone) leaves nothing to do.
        let _ = sys::link_detach(&self.link);
    }
}

static ATTACHED: Mutex<Vec<Attachment>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Attachment>> {
    // A panic while holding the lock leaves the Vec consistent (every update is one push or
    // remove); keep going.
    ATTACHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// This socket's share of its interface's program. Dropping it removes the program when it
/// was the last share.
#[derive(Debug)]
pub(crate) struct XdpShare {
    key: Key,
    queue: u32,
    /// The interface's program writes XDP RX metadata in front of each frame (`Ok`), or why
    /// it does not.
    pub(crate) rx_meta: std::result::Result<(), String>,
}

impl Drop for XdpShare {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Some(i) = reg.iter().position(|a| a.key == self.key) {
            reg[i].users -= 1;
            if let Some(q) = reg[i].queues.iter().position(|&q| q == self.queue) {
                reg[i].queues.swap_remove(q);
            }
            if reg[i].users == 0 {
                // Dropping the link fd detaches the program; then prog and map go.
                reg.swap_remove(i);
            }
        }
    }
}

/// Steers queue `queue` of interface `ifindex` (in the calling thread's namespace) to socket
/// `xsk_fd`, attaching the program in `mode` if this is the interface's first socket.
// One call site (Sock::open), each argument a plain value it already holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn steer(
    ifname: &str,
    ifindex: u32,
    netns: (u64, u64),
    queue: u32,
    mode: u32,
    frags: bool,
    steering: &Steer,
    xsk_fd: i32,
) -> Result<XdpShare> {
    if queue >= MAX_QUEUES {
        return Err(Error::Unsupported(format!(
            "AF_XDP on {ifname} queue {queue}: queues above {} are not supported",
            MAX_QUEUES - 1
        )));
    }
    let key = (netns, ifindex);
    let mut reg = registry();
    let i = match reg.iter().position(|a| a.key == key) {
        Some(i) => {
            if reg[i].mode != mode {
                return Err(Error::flag(
                    "xdp_flags",
                    format!(
                        "{ifname} already has this process's XDP program in {}; a socket asking for {} cannot share it",
                        mode_name(reg[i].mode),
                        mode_name(mode)
                    ),
                ));
            }
            if reg[i].steer != *steering {
                return Err(Error::flag(
                    "steer",
                    format!(
                        "{ifname} already has this process's XDP program steering {:?}; a \
                         socket asking for {steering:?} cannot share it (one program per \
                         interface)",
                        reg[i].steer
                    ),
                ));
            }
            i
        }
        None => {
            let ctx = |what: &str| format!("AF_XDP on {ifname} queue {queue}: {what}");
            // A user's own program brings its XSKMAP; ours gets one made here.
            let (user_prog, user_maps, map) = if let Steer::Program(obj) = steering {
                let l = crate::object::load(obj, frags)?;
                (Some(l.prog), l._maps, l.xsk_map)
            } else {
                let map = sys::xskmap_create(MAX_QUEUES).map_err(|e| {
                    Error::os(ctx("creating the XSKMAP (needs CAP_BPF/CAP_NET_ADMIN)"), e)
                })?;
                (None, vec![], map)
            };
            let addrs = match steering {
                Steer::Match(_) | Steer::Program(_) => HostAddrs::default(),
                _ => HostAddrs::of(ifname)
                    .map_err(|e| Error::os(ctx("reading the interface's addresses"), e))?,
            };
            if *steering == Steer::All {
                steer::warn_all(key, ifname, queue, &addrs);
            }
            // The steering match in front of what redirects (and writes metadata).
            let wrap = |tail: Vec<Insn>| steer::program(steering, &addrs, Tail::Code(tail));
            // A program already there: removed if a dead libxdp user left it (then attach
            // again), else described.
            let mut stale = None;
            let mut attach = |prog: &OwnedFd| match sys::xdp_link_create(prog, ifindex, mode) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                    match xdpstate::clear_stale(ifname, ifindex) {
                        Ok(_) => sys::xdp_link_create(prog, ifindex, mode),
                        Err(why) => {
                            stale = Some(why);
                            Err(e)
                        }
                    }
                }
                r => r,
            };
            // Native mode: the program that also writes RX metadata, where the kernel has it;
            // the plain one otherwise (and if the kernel refuses to attach the bound one for
            // another reason than a program already there).
            let mut rx_meta = Ok(());
            let mut attached = None;
            // Multi-buffer frames need a program that says it handles them (`xdp.frags`).
            let prog_flags = if frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
            if let Some(p) = user_prog {
                rx_meta = Err(
                    "the user's XDP program (Steer::Program) writes no RX metadata for nethuns"
                        .into(),
                );
                let link = attach(&p);
                attached = Some((p, link));
            } else {
                match metadata_program(&map, ifindex, mode, prog_flags, &wrap) {
                    Ok(p) => match attach(&p) {
                        Ok(link) => attached = Some((p, Ok(link))),
                        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                            attached = Some((p, Err(e)))
                        }
                        Err(e) => {
                            rx_meta = Err(format!(
                                "attaching the device-bound metadata program to {ifname}: {e}"
                            ))
                        }
                    },
                    Err(why) => rx_meta = Err(why),
                }
            }
            let (prog, link) = match attached {
                Some(pl) => pl,
                None => {
                    let prog = sys::load_xdp_program(
                        &wrap(crate::steer::redirect_program(map.as_raw_fd()).to_vec()),
                        prog_flags,
                        None,
                    )
                    .map_err(|e| Error::os(ctx("loading the steering XDP program"), e))?;
                    let link = attach(&prog);
                    (prog, link)
                }
            };
            let link = link.map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EBUSY) | Some(libc::EEXIST) => match stale.take() {
                        Some(why) => format!("; {why}"),
                        None => format!(
                            "; another XDP program is already attached to {ifname} \
                             (`ip link set dev {ifname} xdp off` removes one attached through \
                             netlink)"
                        ),
                    },
                    Some(libc::EOPNOTSUPP) if mode == XDP_FLAGS_DRV_MODE => {
                        "; the driver has no native XDP (use XDP_FLAGS_SKB_MODE)".to_owned()
                    }
                    _ => String::new(),
                };
                Error::os(
                    ctx(&format!(
                        "attaching the XDP program in {} through a bpf_link{hint}",
                        mode_name(mode)
                    )),
                    e,
                )
            })?;
            reg.push(Attachment {
                key,
                mode,
                rx_meta,
                steer: steering.clone(),
                users: 0,
                queues: vec![],
                map,
                _prog: prog,
                _maps: user_maps,
                link,
            });
            reg.len() - 1
        }
    };
    let share = {
        reg[i].users += 1;
        reg[i].queues.push(queue);
        XdpShare {
            key,
            queue,
            rx_meta: reg[i].rx_meta.clone(),
        }
    };
    if let Err(e) = sys::xskmap_set(&reg[i].map, queue, xsk_fd) {
        drop(reg);
        drop(share);
        return Err(Error::os(
            format!("AF_XDP on {ifname} queue {queue}: adding the socket to the XSKMAP"),
            e,
        ));
    }
    Ok(share)
}

/// Loads the steering program that writes XDP RX metadata, bound to `ifindex`, or says why
/// there is none for this kernel or mode.
fn metadata_program(
    map: &OwnedFd,
    ifindex: u32,
    mode: u32,
    prog_flags: u32,
    wrap: &dyn Fn(Vec<Insn>) -> Vec<Insn>,
) -> std::result::Result<OwnedFd, String> {
    if mode != XDP_FLAGS_DRV_MODE {
        return Err(format!(
            "{} runs no device-bound program (the kernel attaches those in native mode only), \
             so the driver's RX timestamp and hash kfuncs are out of reach",
            mode_name(mode)
        ));
    }
    let k = rxmeta::kfuncs()?;
    sys::load_xdp_program(
        &wrap(rxmeta::metadata_program(map.as_raw_fd(), k)),
        BPF_F_XDP_DEV_BOUND_ONLY | prog_flags,
        Some(ifindex),
    )
    .map_err(|e| {
        format!(
            "kernel {} refused the device-bound metadata program: {e}",
            crate::features::kernel_release()
        )
    })
}

/// Whether a socket of this process is bound to `queue` of `ifindex` (calling thread's
/// namespace).
pub(crate) fn queue_in_use(netns: (u64, u64), ifindex: u32, queue: u32) -> bool {
    registry()
        .iter()
        .any(|a| a.key == (netns, ifindex) && a.queues.contains(&queue))
}

/// Whether this process has an XDP program attached to `ifindex` of the calling thread's
/// namespace, and in which mode (`XDP_FLAGS_*`).
pub(crate) fn attached_mode(netns: (u64, u64), ifindex: u32) -> Option<u32> {
    registry()
        .iter()
        .find(|a| a.key == (netns, ifindex))
        .map(|a| a.mode)
}
