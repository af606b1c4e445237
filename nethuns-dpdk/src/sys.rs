//! Every DPDK and libc call of the crate outside the mbuf memory ([`crate::mbuf`]), each as a
//! small safe wrapper: the EAL, the ethdev control path (probe, configure, queue setup, start,
//! stop, close, stats, link), the RX timestamp field lookup, `rte_strerror` / `rte_errno`, and
//! the few Linux calls DPDK's ports need (`setns`, an AF_PACKET promiscuous membership, the
//! CPU affinity). The interface ioctls come from `nethuns_sys_linux::netdev`.
//!
//! DPDK's ethdev functions check the port id they are given (an unknown one is `-ENODEV`), so
//! a wrapper taking a port id has no precondition beyond valid pointers, which it makes
//! itself. A DPDK failure is `Err(rc)` with DPDK's (negative) return code, which the caller
//! turns into an [`Error::Engine`](nethuns_core::Error::Engine) naming what it was doing.

/// The mbuf memory: the owners of every raw mbuf and mempool pointer, and their calls.
pub(crate) mod mbuf;

use std::ffi::{CStr, CString};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::raw::c_char;

use dpdk_sys::{nh_dev_info, rte_eth_conf, rte_eth_link, rte_eth_stats, rte_mbuf};

use crate::mbuf::Mempool;

/// DPDK's result: `Err` holds its negative return code (or a positive `rte_errno`).
pub(crate) type Rc<T = ()> = std::result::Result<T, i32>;

fn rc(rc: i32) -> Rc {
    if rc == 0 {
        Ok(())
    } else {
        Err(rc)
    }
}

// ---- errors ----

/// DPDK's text for error `code` (`rte_strerror`).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated string
    // (static, or in a per-thread buffer) valid until the next call on this thread.
    let p = unsafe { dpdk_sys::rte_strerror(code) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated (above); copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The calling thread's `rte_errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { dpdk_sys::nh_rte_errno() }
}

// ---- the EAL ----

/// `rte_eal_init` with program name `prog` and `args`: `Err(rte_errno)` on failure.
///
/// DPDK allows one call per process: the caller serialises (eal.rs holds its state lock).
pub(crate) fn eal_init(prog: &CStr, args: &[CString]) -> Rc {
    // rte_eal_init permutes argv (getopt): give it its own array of pointers.
    let mut argv: Vec<*mut c_char> = std::iter::once(prog)
        .chain(args.iter().map(CString::as_c_str))
        .map(|c| c.as_ptr().cast_mut())
        .collect();
    let argc = argv.len() as i32;
    argv.push(std::ptr::null_mut());
    // SAFETY: argv holds argc valid NUL-terminated strings (borrowed from the caller for the
    // whole call) plus a NULL terminator; EAL may reorder the pointers but does not write the
    // strings. A second initialisation is refused by EAL itself (EALREADY).
    let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The EAL's runtime directory (`rte_eal_get_runtime_dir`), if it has one.
pub(crate) fn eal_runtime_dir() -> Option<String> {
    // SAFETY: returns a pointer to a NUL-terminated path owned by EAL (or NULL).
    let dir = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
    if dir.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, valid for the process lifetime.
    Some(
        unsafe { CStr::from_ptr(dir) }
            .to_string_lossy()
            .into_owned(),
    )
}

// ---- devices and ports (the control path) ----

/// `rte_dev_probe(devargs)`: hot-plugs a device (`-EEXIST` if it is there already).
pub(crate) fn dev_probe(devargs: &CStr) -> Rc {
    // SAFETY: a valid C string; EAL checks that it is initialised.
    rc(unsafe { dpdk_sys::rte_dev_probe(devargs.as_ptr()) })
}

/// `rte_eal_hotplug_remove(bus, name)`.
pub(crate) fn hotplug_remove(bus: &CStr, name: &CStr) -> Rc {
    // SAFETY: valid C strings; an unknown device is an error code.
    rc(unsafe { dpdk_sys::rte_eal_hotplug_remove(bus.as_ptr(), name.as_ptr()) })
}

/// The port id of device `name` (`rte_eth_dev_get_port_by_name`).
pub(crate) fn port_by_name(name: &CStr) -> Rc<u16> {
    let mut id = 0u16;
    // SAFETY: a valid C string and a valid out-pointer.
    rc(unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut id) })?;
    Ok(id)
}

/// What nethuns reads of `rte_eth_dev_info_get` (the shim copies it out).
pub(crate) fn dev_info(port: u16) -> Rc<nh_dev_info> {
    let mut dev = nh_dev_info::default();
    // SAFETY: a valid out-pointer; an invalid id is reported as -ENODEV.
    rc(unsafe { dpdk_sys::nh_eth_dev_info(port, &mut dev) })?;
    Ok(dev)
}

/// The port's MTU (`rte_eth_dev_get_mtu`).
pub(crate) fn mtu(port: u16) -> Rc<u16> {
    let mut mtu = 0u16;
    // SAFETY: a valid out-pointer.
    rc(unsafe { dpdk_sys::rte_eth_dev_get_mtu(port, &mut mtu) })?;
    Ok(mtu)
}

/// The port's MAC address (`rte_eth_macaddr_get`; zeros if it has none).
pub(crate) fn mac(port: u16) -> [u8; 6] {
    let mut mac = dpdk_sys::rte_ether_addr::default();
    // SAFETY: a valid out-pointer.
    unsafe { dpdk_sys::rte_eth_macaddr_get(port, &mut mac) };
    mac.addr_bytes
}

/// The NUMA node of the port (`rte_eth_dev_socket_id`), or `SOCKET_ID_ANY`.
pub(crate) fn socket_id(port: u16) -> i32 {
    // SAFETY: a plain query.
    let s = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) };
    if s < 0 {
        dpdk_sys::SOCKET_ID_ANY
    } else {
        s
    }
}

/// `rte_eth_dev_configure(port, nrx, ntx, conf)`.
pub(crate) fn configure(port: u16, nrx: u16, ntx: u16, conf: &rte_eth_conf) -> Rc {
    // SAFETY: a valid, initialised configuration, read during the call.
    rc(unsafe { dpdk_sys::rte_eth_dev_configure(port, nrx, ntx, conf) })
}

/// `rte_eth_dev_adjust_nb_rx_tx_desc`: the ring sizes adjusted to the driver's limits.
pub(crate) fn adjust_ring_sizes(port: u16, rx: u16, tx: u16) -> Rc<(u16, u16)> {
    let (mut rx, mut tx) = (rx, tx);
    // SAFETY: valid out-pointers.
    rc(unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rx, &mut tx) })?;
    Ok((rx, tx))
}

/// RX queue setup with the driver's default configuration (`deferred`: configured but not
/// started with the port), receiving into `pool`.
///
/// # Safety
/// `pool` outlives the port's queues: the port is closed before the mempool is freed.
pub(crate) unsafe fn rx_queue_setup(
    port: u16,
    queue: u16,
    nb_desc: u16,
    socket: i32,
    pool: &Mempool,
    deferred: bool,
) -> Rc {
    // SAFETY: a live mempool, which outlives the queue (caller's contract).
    rc(unsafe {
        dpdk_sys::nh_rx_queue_setup(
            port,
            queue,
            nb_desc,
            socket,
            pool.as_ptr(),
            i32::from(deferred),
        )
    })
}

/// TX queue setup with the driver's default configuration (`deferred` as for RX).
pub(crate) fn tx_queue_setup(
    port: u16,
    queue: u16,
    nb_desc: u16,
    socket: i32,
    deferred: bool,
) -> Rc {
    // SAFETY: plain arguments; ethdev checks the port and queue.
    rc(unsafe { dpdk_sys::nh_tx_queue_setup(port, queue, nb_desc, socket, i32::from(deferred)) })
}

/// Whether the port is in promiscuous mode (`rte_eth_promiscuous_get`; `None` on error).
pub(crate) fn promiscuous(port: u16) -> Option<bool> {
    // SAFETY: a plain query.
    match unsafe { dpdk_sys::rte_eth_promiscuous_get(port) } {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// `rte_eth_promiscuous_enable` (`ENOTSUP` where the driver cannot).
pub(crate) fn promiscuous_enable(port: u16) -> Rc {
    // SAFETY: a plain call on a port id.
    rc(unsafe { dpdk_sys::rte_eth_promiscuous_enable(port) })
}

/// `rte_eth_promiscuous_disable`.
pub(crate) fn promiscuous_disable(port: u16) -> Rc {
    // SAFETY: a plain call on a port id.
    rc(unsafe { dpdk_sys::rte_eth_promiscuous_disable(port) })
}

/// `rte_eth_dev_start`.
pub(crate) fn start(port: u16) -> Rc {
    // SAFETY: a plain call on a port id (a port not configured is an error code).
    rc(unsafe { dpdk_sys::rte_eth_dev_start(port) })
}

/// `rte_eth_dev_stop`: afterwards the port's burst functions are DPDK's dummies.
pub(crate) fn stop(port: u16) -> Rc {
    // SAFETY: a plain call on a port id.
    rc(unsafe { dpdk_sys::rte_eth_dev_stop(port) })
}

/// `rte_eth_dev_close`: releases the queues and the mbufs they hold.
pub(crate) fn close(port: u16) -> Rc {
    // SAFETY: a plain call on a port id.
    rc(unsafe { dpdk_sys::rte_eth_dev_close(port) })
}

/// Whether `port` is a valid port id (a removed device's is not).
pub(crate) fn is_valid_port(port: u16) -> bool {
    // SAFETY: a plain query.
    unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port) != 0 }
}

/// The port's link, without waiting (`rte_eth_link_get_nowait`).
pub(crate) fn link(port: u16) -> Rc<rte_eth_link> {
    let mut l = rte_eth_link::default();
    // SAFETY: a valid out-pointer.
    rc(unsafe { dpdk_sys::rte_eth_link_get_nowait(port, &mut l) })?;
    Ok(l)
}

/// The port's counters (`rte_eth_stats_get`).
pub(crate) fn stats(port: u16) -> Rc<rte_eth_stats> {
    let mut s = rte_eth_stats::default();
    // SAFETY: a valid out-pointer.
    rc(unsafe { dpdk_sys::rte_eth_stats_get(port, &mut s) })?;
    Ok(s)
}

/// One started RX/TX queue pair of a port, and the right to use it: the burst functions
/// (`crate::mbuf::RxBurst`, `crate::mbuf::TxBurst`) and `tx_done_cleanup` take it.
///
/// Invariant: `port < RTE_MAX_ETHPORTS`, and its RX and TX queue `queue` were set up before
/// the port started (after `stop`/`close` DPDK's dummy burst functions answer); nothing else
/// in the process uses the queue pair. `!Sync`, so one thread at a time.
pub(crate) struct EthQueue {
    port: u16,
    queue: u16,
    _one_thread: PhantomData<std::cell::Cell<()>>,
}

impl EthQueue {
    /// The queue pair `queue` of `port`.
    ///
    /// # Safety
    /// As the type's invariant: the queue pair is set up and the port started, and this is
    /// the only handle to it (the port is reserved for one socket).
    pub(crate) unsafe fn new(port: u16, queue: u16) -> Self {
        assert!(u32::from(port) < dpdk_sys::RTE_MAX_ETHPORTS);
        EthQueue {
            port,
            queue,
            _one_thread: PhantomData,
        }
    }

    /// The port id.
    #[inline(always)]
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The queue index.
    #[inline(always)]
    pub(crate) fn queue(&self) -> u16 {
        self.queue
    }

    /// Frees the mbufs of completed transmissions (`rte_eth_tx_done_cleanup`, all of them);
    /// returns how many.
    pub(crate) fn tx_done_cleanup(&self) -> Rc<u32> {
        // SAFETY: the queue is ours alone (type invariant); free_cnt 0 = every completed mbuf.
        let n = unsafe { dpdk_sys::rte_eth_tx_done_cleanup(self.port, self.queue, 0) };
        if n < 0 {
            Err(n)
        } else {
            Ok(n as u32)
        }
    }
}

// ---- the RX timestamp dynamic field ----

/// Where the driver puts the RX timestamp: a registered dynamic field of 8 bytes inside the
/// mbuf header, and the `ol_flags` bit that says it is set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RxTimestamp {
    offset: usize,
    mask: u64,
}

impl RxTimestamp {
    /// The registered timestamp field and flag, if a driver offering timestamps registered
    /// them (`rte_mbuf_dynfield_lookup` / `rte_mbuf_dynflag_lookup`).
    pub(crate) fn lookup() -> Option<Self> {
        let field = dpdk_sys::RTE_MBUF_DYNFIELD_TIMESTAMP_NAME.as_ptr().cast();
        let flag = dpdk_sys::RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME.as_ptr().cast();
        // SAFETY: a NUL-terminated constant name; NULL params means "just look up".
        let off = unsafe { dpdk_sys::rte_mbuf_dynfield_lookup(field, std::ptr::null_mut()) };
        // SAFETY: as above.
        let bit = unsafe { dpdk_sys::rte_mbuf_dynflag_lookup(flag, std::ptr::null_mut()) };
        let offset = usize::try_from(off).ok()?;
        // The field is 8 bytes inside the mbuf header, which the accessor relies on.
        (offset + 8 <= std::mem::size_of::<rte_mbuf>() && (0..64).contains(&bit)).then_some(
            RxTimestamp {
                offset,
                mask: 1u64 << bit,
            },
        )
    }

    /// The byte offset of the field in the mbuf header (`+ 8 <= size_of::<rte_mbuf>()`).
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The `ol_flags` bit of a set timestamp.
    #[inline]
    pub(crate) fn mask(&self) -> u64 {
        self.mask
    }
}

// ---- Linux ----

/// Moves the calling thread into the network namespace `ns` (`setns(CLONE_NEWNET)`).
pub(crate) fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a valid descriptor; setns changes only the calling thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_PACKET socket (protocol 0: it receives nothing) holding a `PACKET_MR_PROMISC`
/// membership of interface `ifindex` in the calling thread's namespace.
pub(crate) fn promiscuous_membership(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call, checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mr = libc::packet_mreq {
        mr_ifindex: ifindex as i32,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: valid socket; `mr` is a packet_mreq and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mr as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), `None` if unknown.
pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 = calling thread.
    let ret =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if ret != 0 {
        return None;
    }
    Some(
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: i < CPU_SETSIZE, within the set.
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .collect(),
    )
}
