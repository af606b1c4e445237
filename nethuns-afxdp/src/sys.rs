//! Every system call of this crate, each a small safe wrapper: the AF_XDP socket (socket,
//! setsockopt/getsockopt, bind, the ring and UMEM mappings through [`SharedMap`], the
//! `sendto`/`recvfrom` wakeups), `bpf(2)` (maps, programs, bpf_links, object info), netlink
//! and epoll sockets, `getifaddrs`, `uname` and the clocks. The interface ioctls are
//! `nethuns_sys_linux::netdev`'s; the structs are `libc`'s or [`crate::abi`]'s.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nethuns_sys_linux::SharedMap;

use crate::abi::{
    BpfAttr, BpfLinkInfo, BpfProgInfo, IdAttr, InfoAttr, Insn, LinkCreateAttr, MapCreateAttr,
    MapElemAttr, ProgLoadAttr, XdpStatistics, BPF_LINK_CREATE, BPF_LINK_DETACH,
    BPF_LINK_GET_FD_BY_ID, BPF_LINK_GET_NEXT_ID, BPF_LINK_TYPE_XDP, BPF_MAP_CREATE, BPF_MAP_FREEZE,
    BPF_MAP_TYPE_XSKMAP, BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_GET_FD_BY_ID,
    BPF_PROG_LOAD, BPF_PROG_TYPE_XDP, BPF_XDP,
};

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: a descriptor the kernel just returned (checked above), owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---- the AF_XDP socket ----

/// A new AF_XDP socket (`socket(AF_XDP, SOCK_RAW)`).
pub(crate) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    owned(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
}

/// `setsockopt(SOL_XDP, opt)` with the bytes of `val` (a `libc` UAPI struct or integer).
fn set_xdp_opt<T: Copy>(fd: impl AsFd, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T and its size is passed; the kernel copies it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// `getsockopt(SOL_XDP, opt)` into `out` (plain integers: any bits the kernel writes are a
/// valid value; the callers pass only the UAPI structs below).
fn get_xdp_opt<T: Copy>(fd: impl AsFd, opt: i32, out: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` is a live, writable T and `len` its size; the kernel writes at most `len`
    // bytes of integers into it.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (out as *mut T).cast(),
            &mut len,
        )
    })
    .map(|_| ())
}

/// Registers the UMEM (`XDP_UMEM_REG`).
pub(crate) fn register_umem(fd: impl AsFd, reg: &libc::xdp_umem_reg) -> io::Result<()> {
    set_xdp_opt(fd, libc::XDP_UMEM_REG, reg)
}

/// Sizes one of the four rings (`XDP_UMEM_FILL_RING`, `XDP_UMEM_COMPLETION_RING`,
/// `XDP_RX_RING`, `XDP_TX_RING`).
pub(crate) fn set_ring_size(fd: impl AsFd, ring: i32, size: u32) -> io::Result<()> {
    set_xdp_opt(fd, ring, &size)
}

/// Where each ring's parts lie in its mapping (`XDP_MMAP_OFFSETS`).
pub(crate) fn mmap_offsets(fd: impl AsFd) -> io::Result<libc::xdp_mmap_offsets> {
    let z = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let mut off = libc::xdp_mmap_offsets {
        rx: z,
        tx: z,
        fr: z,
        cr: z,
    };
    get_xdp_opt(fd, libc::XDP_MMAP_OFFSETS, &mut off)?;
    Ok(off)
}

/// The socket's options (`XDP_OPTIONS`: `XDP_OPTIONS_ZEROCOPY`).
pub(crate) fn xdp_options(fd: impl AsFd) -> io::Result<u32> {
    let mut o = libc::xdp_options { flags: 0 };
    get_xdp_opt(fd, libc::XDP_OPTIONS, &mut o)?;
    Ok(o.flags)
}

/// The socket's counters (`XDP_STATISTICS`).
pub(crate) fn xdp_statistics(fd: impl AsFd) -> io::Result<XdpStatistics> {
    let mut s = libc::xdp_statistics {
        rx_dropped: 0,
        rx_invalid_descs: 0,
        tx_invalid_descs: 0,
        rx_ring_full: 0,
        rx_fill_ring_empty_descs: 0,
        tx_ring_empty_descs: 0,
    };
    get_xdp_opt(fd, libc::XDP_STATISTICS, &mut s)?;
    Ok(XdpStatistics::of(s))
}

/// Maps `len` bytes of ring at page offset `pgoff` of the socket (pre-faulted).
pub(crate) fn map_ring(fd: impl AsFd, len: usize, pgoff: u64) -> io::Result<SharedMap> {
    SharedMap::map(fd, len, pgoff, true)
}

/// Maps `len` bytes of anonymous, pre-faulted memory (the UMEM and its jumbo buffers).
pub(crate) fn map_umem(len: usize) -> io::Result<SharedMap> {
    SharedMap::anonymous(len, true)
}

/// Binds the socket (`bind(2)` with a `sockaddr_xdp`).
pub(crate) fn bind_xsk(fd: impl AsFd, sa: &libc::sockaddr_xdp) -> io::Result<()> {
    // SAFETY: `sa` is a valid sockaddr_xdp and its size is passed.
    cvt(unsafe {
        libc::bind(
            fd.as_fd().as_raw_fd(),
            (sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The RX wakeup: `recvfrom` of nothing, non-blocking (the kernel processes the fill ring).
#[inline]
pub(crate) fn wake_rx(fd: impl AsFd) {
    // SAFETY: recvfrom with a null buffer of length 0 on our socket is the documented AF_XDP
    // wakeup; no memory is written.
    unsafe {
        libc::recvfrom(
            fd.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}

/// The TX wakeup: `sendto` of nothing, non-blocking (copy mode transmits inside this call);
/// `Err` with the errno when the kernel refused.
#[inline]
pub(crate) fn kick_tx(fd: impl AsFd) -> Result<(), Option<i32>> {
    // SAFETY: sendto with a null buffer of length 0 on our socket is the documented AF_XDP TX
    // wakeup; no memory is read.
    let rc = unsafe {
        libc::sendto(
            fd.as_fd().as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error())
    } else {
        Ok(())
    }
}

// ---- clocks and the kernel ----

/// Nanoseconds of `clock` (`clock_gettime`; the clocks used exist on Linux 3.10+).
fn clock(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; the clocks asked for always exist, so the
    // call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE`: a vDSO read (no syscall), a few ns, with the
/// kernel tick's resolution (1–10 ms), enough to pace the idle path's link checks.
#[inline]
pub(crate) fn coarse_ms() -> u64 {
    let ts = clock(libc::CLOCK_MONOTONIC_COARSE);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Nanoseconds of `CLOCK_REALTIME` and `CLOCK_TAI`, read one after the other.
pub(crate) fn realtime_and_tai_ns() -> (i64, i64) {
    let ns = |ts: libc::timespec| ts.tv_sec * 1_000_000_000 + ts.tv_nsec;
    (ns(clock(libc::CLOCK_REALTIME)), ns(clock(libc::CLOCK_TAI)))
}

/// The running kernel's release (`uname -r`), if `uname` answers.
pub(crate) fn kernel_release() -> Option<String> {
    let mut u = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: `u` is a zeroed (valid: byte arrays) utsname for uname(2) to fill.
    if unsafe { libc::uname(u.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: zero-initialised byte arrays, filled by uname: a valid utsname.
    let u = unsafe { u.assume_init() };
    let r = &u.release;
    let end = r.iter().position(|&c| c == 0).unwrap_or(r.len());
    Some(r[..end].iter().map(|&c| c as u8 as char).collect())
}

/// The IPv4 and IPv6 addresses of interface `ifname` in the calling thread's namespace
/// (`getifaddrs`).
pub(crate) fn interface_addrs(ifname: &str) -> io::Result<(Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut v4, mut v6) = (vec![], vec![]);
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string of the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != ifname.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its type.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                v4.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                v6.push(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
            }
            _ => {}
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok((v4, v6))
}

// ---- netlink and epoll ----

/// A netlink socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_GENERIC`) with a 2 s receive
/// timeout.
pub(crate) fn netlink_socket(protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call, checked; made in the calling thread's namespace.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: valid socket; `tv` is a timeval and its size is passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// A non-blocking `NETLINK_ROUTE` socket subscribed to link events (`RTMGRP_LINK`) of the
/// calling thread's namespace: it becomes readable when any interface there changes state
/// or is deleted. Needs no privilege.
pub(crate) fn link_events_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid (pid 0: the kernel assigns).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: `sa` is a valid sockaddr_nl and its size is passed.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Sends `msg` on socket `fd` (`send(2)`); returns the bytes sent.
pub(crate) fn send(fd: impl AsFd, msg: &[u8]) -> io::Result<usize> {
    // SAFETY: `msg` is readable for its length.
    let rc = unsafe { libc::send(fd.as_fd().as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Receives into `buf` from socket `fd` (`recv(2)` with `flags`); returns the bytes read.
pub(crate) fn recv(fd: impl AsFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    let rc = unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// An epoll set readable when any of `fds` is (level-triggered `EPOLLIN`).
pub(crate) fn epoll_set(fds: &[&OwnedFd]) -> io::Result<OwnedFd> {
    // SAFETY: plain epoll_create1 call; the result is checked.
    let ep = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    for fd in fds {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open and `ev` is a valid epoll_event for the call.
        cvt(unsafe {
            libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
        })?;
    }
    Ok(ep)
}

// ---- bpf(2) ----

fn bpf<A: BpfAttr>(cmd: i32, attr: &mut A) -> io::Result<i64> {
    // SAFETY: `attr` is a live, writable bpf_attr prefix of the size passed (the kernel
    // zero-extends it), and the pointers stored inside it point to memory that outlives this
    // call (the `BpfAttr` contract, kept by the wrappers below).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut A).cast::<u8>(),
            std::mem::size_of::<A>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: i64) -> io::Result<OwnedFd> {
    owned(rc as libc::c_int)
}

/// A map name of at most 15 bytes, NUL-padded.
fn obj_name(name: &[u8]) -> [u8; 16] {
    let mut n = [0u8; 16];
    let k = name.len().min(15);
    n[..k].copy_from_slice(&name[..k]);
    n
}

/// Creates an XSKMAP (`u32` queue index -> socket fd) of `max_entries` entries.
pub(crate) fn xskmap_create(max_entries: u32) -> io::Result<OwnedFd> {
    map_create(BPF_MAP_TYPE_XSKMAP, 4, 4, max_entries, 0, b"nethuns_xsks")
}

/// Sets `map[key] = value_fd` in an XSKMAP.
pub(crate) fn xskmap_set(map: &OwnedFd, key: u32, value_fd: i32) -> io::Result<()> {
    map_update(map, &key.to_ne_bytes(), &(value_fd as u32).to_ne_bytes())
}

/// Loads XDP program `insns` with `prog_flags`, bound to device `ifindex` when given (with
/// [`BPF_F_XDP_DEV_BOUND_ONLY`](crate::abi::BPF_F_XDP_DEV_BOUND_ONLY) in `prog_flags`). On
/// failure the verifier's log is appended to the error message.
pub(crate) fn load_xdp_program(
    insns: &[Insn],
    prog_flags: u32,
    ifindex: Option<u32>,
) -> io::Result<OwnedFd> {
    load_xdp_as(insns, c"Dual BSD/GPL", prog_flags, ifindex, b"nethuns_xsk")
}

/// [`load_xdp_program`] under `license`, named `name` (at most 15 bytes kept).
pub(crate) fn load_xdp_as(
    insns: &[Insn],
    license: &std::ffi::CStr,
    prog_flags: u32,
    ifindex: Option<u32>,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let load = |log: &mut [u8]| {
        let mut a = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags,
            prog_name: obj_name(name),
            prog_ifindex: ifindex.unwrap_or(0),
            expected_attach_type: BPF_XDP,
        };
        bpf(BPF_PROG_LOAD, &mut a)
    };
    // Without a log first (a log too small for the verifier's trace fails the load by
    // itself); on failure again with one, for the message.
    match load(&mut []) {
        Ok(rc) => fd_from(rc),
        Err(e) => {
            let mut log = vec![0u8; 256 * 1024];
            if let Ok(rc) = load(&mut log) {
                return fd_from(rc);
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            // The verifier's verdict is at the end of its trace.
            let tail: Vec<&str> = text.trim().lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(io::Error::new(
                e.kind(),
                format!("{e}; verifier log: {}", tail.join(" | ")),
            ))
        }
    }
}

/// Creates a map of `map_type` (a BPF_MAP_TYPE_*), named `name` (at most 15 bytes).
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut a = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        map_name: obj_name(name),
        ..MapCreateAttr::default()
    };
    bpf(BPF_MAP_CREATE, &mut a).and_then(fd_from)
}

/// Sets `map[key] = value` (byte images of the map's key and value sizes).
pub(crate) fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

fn one_word(id: u32) -> IdAttr {
    IdAttr {
        id,
        ..IdAttr::default()
    }
}

/// Makes `map` read-only for user space (`BPF_MAP_FREEZE`, for `.rodata`).
pub(crate) fn map_freeze(map: &OwnedFd) -> io::Result<()> {
    bpf(BPF_MAP_FREEZE, &mut one_word(map.as_raw_fd() as u32)).map(|_| ())
}

/// Runs XDP program `prog` once on `frame` (`BPF_PROG_TEST_RUN`) and returns its action.
#[cfg(test)]
pub(crate) fn prog_test_run(prog: &OwnedFd, frame: &[u8]) -> io::Result<u32> {
    let mut out = vec![0u8; frame.len() + 512];
    let mut a = crate::abi::TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        duration: 0,
    };
    bpf(crate::abi::BPF_PROG_TEST_RUN, &mut a)?;
    Ok(a.retval)
}

/// Attaches `prog` to interface `ifindex` as XDP through a bpf_link (`flags`: the mode bits).
/// The program stays attached exactly as long as the returned descriptor is open: closing it,
/// or the death of the process, detaches it.
pub(crate) fn xdp_link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    bpf(BPF_LINK_CREATE, &mut a).and_then(fd_from)
}

/// Detaches a bpf_link's program now (closing the last link descriptor also detaches it, but
/// the kernel does that later, from a work queue).
pub(crate) fn link_detach(link: &OwnedFd) -> io::Result<()> {
    bpf(BPF_LINK_DETACH, &mut one_word(link.as_raw_fd() as u32)).map(|_| ())
}

/// A descriptor of the loaded program `id` (needs CAP_SYS_ADMIN / CAP_BPF).
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    bpf(BPF_PROG_GET_FD_BY_ID, &mut one_word(id)).and_then(fd_from)
}

/// Fills `info` with `BPF_OBJ_GET_INFO_BY_FD` of `fd` (a program or a link).
fn obj_info<T: Copy>(fd: &OwnedFd, info: &mut T) -> io::Result<()> {
    let mut a = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: (info as *mut T) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(|_| ())
}

/// What `struct bpf_prog_info` says of a program: its name and the ids of its maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    /// The program's name (at most 15 bytes, as loaded).
    pub(crate) name: String,
    /// The maps it uses.
    pub(crate) map_ids: Vec<u32>,
}

/// The name and map ids of program `fd`.
pub(crate) fn prog_info(fd: &OwnedFd) -> io::Result<ProgInfo> {
    let mut maps = [0u32; 16];
    let mut info = BpfProgInfo {
        nr_map_ids: maps.len() as u32,
        map_ids: maps.as_mut_ptr() as u64,
        ..BpfProgInfo::default()
    };
    obj_info(fd, &mut info)?;
    let nr = info.nr_map_ids as usize;
    let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(ProgInfo {
        name: String::from_utf8_lossy(&info.name[..end]).into_owned(),
        map_ids: maps[..nr.min(maps.len())].to_vec(),
    })
}

/// The XDP bpf_links of interface `ifindex` (of any namespace with that index: the caller
/// compares program ids): `(link id, program id)`.
pub(crate) fn xdp_links(ifindex: u32) -> io::Result<Vec<(u32, u32)>> {
    let mut out = vec![];
    let mut id = 0u32;
    // Bounded: link ids only grow, and the kernel has at most a few thousand links.
    for _ in 0..100_000 {
        let mut a = one_word(id);
        match bpf(BPF_LINK_GET_NEXT_ID, &mut a) {
            Ok(_) => id = a.next_id,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        let Ok(fd) = bpf(BPF_LINK_GET_FD_BY_ID, &mut one_word(id)).and_then(fd_from) else {
            continue; // gone meanwhile
        };
        let mut info = BpfLinkInfo::default();
        if obj_info(&fd, &mut info).is_err() {
            continue;
        }
        if info.link_type == BPF_LINK_TYPE_XDP && info.xdp_ifindex == ifindex {
            out.push((info.id, info.prog_id));
        }
    }
    Ok(out)
}

/// A token for buffer `addr` of pool `pool_id` (tests of the release paths).
#[cfg(test)]
pub(crate) fn test_token(addr: usize, len: u32, pool_id: u32) -> nethuns_core::Token {
    // SAFETY: (test) the callers make each token once, for a frame they marked out and own.
    unsafe { nethuns_core::Token::new(nethuns_core::BufferDesc::new(addr), len, pool_id) }
}
