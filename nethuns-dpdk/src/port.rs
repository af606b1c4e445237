//! An ethdev port owned by one socket: probed (hot-plugged) from its portspec, configured with
//! the socket's queue and mempool, started; stopped, closed and removed on drop.
//!
//! One socket per port: DPDK configures all queues of a port at once, before start, so a port
//! is not shared between sockets. Queues below the socket's queue are set up with deferred start
//! (configured, never started) so the driver accepts the queue index.

use std::ffi::{CStr, CString};
use std::sync::Mutex;

use dpdk_sys::nh_dev_info;
use nethuns_core::{Error, Result};

use crate::error;
use crate::flags::{DpdkFlags, DpdkOptions, HEADROOM, MIN_MBUFS};
use crate::mempool::DpdkContext;
use crate::portspec::{PortKind, PortSpec};

/// Device names owned by a live socket.
static IN_USE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Serialises DPDK's control path (hot-plug, configure, queue setup, start, stop, close,
/// remove), which DPDK does not make thread-safe; the data path is not affected.
static CONTROL: Mutex<()> = Mutex::new(());

thread_local! {
    static HOLDS_CONTROL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` holding the control-path lock (re-entrant within a thread).
fn control<R>(f: impl FnOnce() -> R) -> R {
    if HOLDS_CONTROL.with(|h| h.get()) {
        return f();
    }
    struct Held<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);
    impl Drop for Held<'_> {
        fn drop(&mut self) {
            HOLDS_CONTROL.with(|h| h.set(false));
        }
    }
    let _held = Held(CONTROL.lock().unwrap_or_else(|p| p.into_inner()));
    HOLDS_CONTROL.with(|h| h.set(true));
    f()
}

/// Mbufs net_af_xdp takes from the mempool for its fill ring at queue setup, whatever the
/// ring size (`ETH_AF_XDP_DFLT_NUM_DESCS`); with fewer free, the setup fails with EINVAL.
const AF_XDP_FILL_MBUFS: u32 = 2048;
/// The largest MTU net_af_xdp (DPDK 22.11) carries: a frame, its mbuf header and headroom and
/// the kernel's XDP headroom must fit one 4096-byte UMEM frame.
const AF_XDP_MAX_MTU: usize = 3000;

const OFFLOAD_VLAN_STRIP: u64 = 1 << 0;
const OFFLOAD_TIMESTAMP: u64 = 1 << 14;
const OFFLOAD_RSS_HASH: u64 = 1 << 19;
/// RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (the usual flow hash).
const RSS_IP_TCP_UDP: u64 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 13)
    | (1 << 14)
    | (1 << 16)
    | (1 << 15)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20);

/// Port counters (`rte_eth_stats`, port-wide) plus what this socket dropped itself: the
/// engine's own numbers, from [`Sock::native_stats`](crate::Sock::native_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received by the port.
    pub ipackets: u64,
    /// Packets transmitted by the port.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes transmitted.
    pub obytes: u64,
    /// Packets the NIC dropped because its RX queue was full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Frames this socket queued with `send` that the driver did not take, freed by `flush`.
    pub tx_dropped: u64,
}

/// A port's link, from `rte_eth_link_get_nowait`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when down or unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Speed and duplex were autonegotiated.
    pub autoneg: bool,
}

/// Facts about a port, from `rte_eth_dev_info_get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// DPDK port id.
    pub port_id: u16,
    /// Device (and port) name.
    pub name: String,
    /// Driver name (`net_ring`, `net_af_packet`, `mlx5_pci` …).
    pub driver: String,
    /// Bus name (`vdev`, `pci`).
    pub bus: String,
    /// RX queues the driver offers.
    pub max_rx_queues: u16,
    /// TX queues the driver offers.
    pub max_tx_queues: u16,
    /// The port's MTU.
    pub mtu: u16,
    /// The port's MAC address.
    pub mac: [u8; 6],
}

pub(crate) struct Port {
    pub(crate) id: u16,
    pub(crate) queue: u16,
    pub(crate) info: PortInfo,
    /// (dynfield offset, flag mask) of the RX timestamp, if the driver delivers one.
    pub(crate) timestamp: Option<(i32, u64)>,
    /// Whether RSS is configured (the driver hashes IP/TCP/UDP flows).
    pub(crate) rss: bool,
    spec: PortSpec,
    /// Whether this socket hot-plugged the device (else it existed, e.g. from EAL arguments).
    probed: bool,
    configured: bool,
    started: bool,
    /// Whether this socket switched promiscuous mode on through DPDK (and so switches it off
    /// at teardown). Only for ports without a kernel interface: see `promisc_hold`.
    promisc_set: bool,
    /// For a port over a kernel interface (net_af_packet, net_af_xdp, net_tap): an AF_PACKET
    /// socket holding a promiscuous membership of the interface. DPDK's own promiscuous mode
    /// sets the interface's IFF_PROMISC flag, which outlives a killed process; a membership
    /// is counted by the kernel and dropped with its socket, at drop or at the process's
    /// death, whichever comes first.
    promisc_hold: Option<std::os::fd::OwnedFd>,
    /// The network namespace the port was opened in: drivers over kernel interfaces
    /// (net_af_packet, net_af_xdp) apply control operations by interface name or index in the
    /// calling thread's namespace, and the socket may be dropped on a thread of another one:
    /// the teardown runs in this one.
    netns: Option<std::os::fd::OwnedFd>,
    /// The kernel interface behind the port (`iface=` of net_af_packet / net_af_xdp /
    /// net_tap), watched for deletion and link state.
    pub(crate) iface: Option<KernelIface>,
    /// Whether the link was seen up (ports without a kernel interface report down only after
    /// that: a NIC's link is down until autonegotiation completes).
    link_seen_up: std::cell::Cell<bool>,
    _reservation: Reservation,
}

/// What the idle receive path found about the port's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Up (or unknown).
    Up,
    /// Administratively down or without carrier.
    Down,
    /// Deleted (or replaced by another interface of the same name).
    Gone,
}

/// A kernel interface, watched through a socket opened in its network namespace (interface
/// ioctls on a socket act in the socket's namespace, whatever the calling thread's).
pub(crate) struct KernelIface {
    /// The interface name.
    pub(crate) name: String,
    ifindex: i32,
    /// Its MTU at `create`.
    pub(crate) mtu: u32,
    ctl: std::os::fd::OwnedFd,
}

impl KernelIface {
    /// Looks up `name` in the calling thread's namespace.
    fn open(name: &str) -> Option<KernelIface> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let ctl = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mut k = KernelIface {
            name: name.to_owned(),
            ifindex: 0,
            mtu: 0,
            ctl,
        };
        let mut ifr = k.ifreq()?;
        // SAFETY: valid socket and ifreq naming the interface; the kernel fills ifr_ifindex.
        if unsafe { libc::ioctl(k.ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) } != 0 {
            return None;
        }
        // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
        k.ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };
        let mut ifr = k.ifreq()?;
        // SAFETY: as above; the kernel fills ifr_mtu.
        if unsafe { libc::ioctl(k.ctl.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) } == 0 {
            // SAFETY: SIOCGIFMTU filled the mtu member of the union.
            k.mtu = unsafe { ifr.ifr_ifru.ifru_mtu }.max(0) as u32;
        }
        Some(k)
    }

    /// An AF_PACKET socket (protocol 0: it receives nothing) holding a `PACKET_MR_PROMISC`
    /// membership of the interface: promiscuous while it is open, and no longer once it is
    /// closed, by drop or by the death of the process.
    fn hold_promiscuous(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket(2) call, checked. The socket is made in the namespace of the
        // calling thread, the one that opened the port and looked the interface up.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: packet_mreq is plain data; all-zero is valid.
        let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mr.mr_ifindex = self.ifindex;
        mr.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: valid socket; `mr` is a packet_mreq and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mr as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }

    fn ifreq(&self) -> Option<libc::ifreq> {
        let b = self.name.as_bytes();
        if b.len() >= libc::IFNAMSIZ {
            return None;
        }
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
            *d = *s as libc::c_char;
        }
        Some(ifr)
    }

    /// Two ioctls: the interface's index (gone, or another interface now has the name) and
    /// its flags (up and running).
    fn liveness(&self) -> Liveness {
        use std::os::fd::AsRawFd;
        let Some(mut ifr) = self.ifreq() else {
            return Liveness::Up;
        };
        // SAFETY: valid socket and ifreq; the kernel fills ifr_ifindex.
        if unsafe { libc::ioctl(self.ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) } != 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            return if e == Some(libc::ENODEV) {
                Liveness::Gone
            } else {
                Liveness::Up
            };
        }
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        if unsafe { ifr.ifr_ifru.ifru_ifindex } != self.ifindex {
            return Liveness::Gone;
        }
        // SAFETY: as above; the kernel fills ifr_flags.
        if unsafe { libc::ioctl(self.ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } != 0 {
            return Liveness::Gone;
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
        let want = libc::IFF_UP | libc::IFF_RUNNING;
        if flags & want == want {
            Liveness::Up
        } else {
            Liveness::Down
        }
    }
}

/// Reserves a device name for one socket; released when the port is dropped.
struct Reservation(String);

impl Reservation {
    fn take(spec: &PortSpec, full: &str) -> Result<Self> {
        let mut v = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        if v.contains(&spec.name) {
            return Err(error::engine(
                format!(
                    "opening {full:?}: device {} is already used by another nethuns socket \
                     (one socket per DPDK port)",
                    spec.name
                ),
                libc::EBUSY,
            ));
        }
        v.push(spec.name.clone());
        Ok(Reservation(spec.name.clone()))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut v = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|n| *n != self.0);
    }
}

fn c_str(buf: &[std::os::raw::c_char]) -> String {
    // SAFETY: the shim writes NUL-terminated strings into these fixed arrays (snprintf), and a
    // zeroed array is the empty string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Reads the facts of port `id`.
pub(crate) fn port_info(id: u16, name: &str) -> Result<PortInfo> {
    let mut dev = nh_dev_info::default();
    // SAFETY: dev is a valid out-pointer; an invalid id is reported as -ENODEV.
    let rc = unsafe { dpdk_sys::nh_eth_dev_info(id, &mut dev) };
    if rc != 0 {
        return Err(error::engine(
            format!("reading device info of port {id} ({name})"),
            rc,
        ));
    }
    let mut mtu = 0u16;
    // SAFETY: valid port, valid out-pointer.
    if unsafe { dpdk_sys::rte_eth_dev_get_mtu(id, &mut mtu) } != 0 {
        mtu = 1500;
    }
    let mut mac = dpdk_sys::rte_ether_addr::default();
    // SAFETY: valid port, valid out-pointer.
    unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut mac) };
    Ok(PortInfo {
        port_id: id,
        name: name.to_owned(),
        driver: c_str(&dev.driver_name),
        bus: c_str(&dev.bus_name),
        max_rx_queues: dev.max_rx_queues,
        max_tx_queues: dev.max_tx_queues,
        mtu,
        mac: mac.addr_bytes,
    })
}

/// The RX timestamp dynamic field and flag, if registered (by a driver offering timestamps).
fn timestamp_field() -> Option<(i32, u64)> {
    let field = dpdk_sys::RTE_MBUF_DYNFIELD_TIMESTAMP_NAME.as_ptr().cast();
    let flag = dpdk_sys::RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME.as_ptr().cast();
    // SAFETY: NUL-terminated constant names; NULL params means "just look up".
    let (off, bit) = unsafe {
        (
            dpdk_sys::rte_mbuf_dynfield_lookup(field, std::ptr::null_mut()),
            dpdk_sys::rte_mbuf_dynflag_lookup(flag, std::ptr::null_mut()),
        )
    };
    (off >= 0 && (0..64).contains(&bit)).then(|| (off, 1u64 << bit))
}

/// The ring frame size (`framesz`) a `net_af_packet` device needs for the largest frame of
/// its interface (MTU + 18 and the TPACKET_V2 header, 16-byte aligned), where the driver's
/// default (2048) is too small and the portspec sets neither `framesz` nor `blocksz`.
fn af_packet_framesz(spec: &PortSpec) -> Option<usize> {
    if !spec.name.starts_with("net_af_packet")
        || spec
            .args
            .split(',')
            .any(|kv| kv.starts_with("framesz=") || kv.starts_with("blocksz="))
    {
        return None;
    }
    let k = spec.iface().and_then(KernelIface::open)?;
    let need = (k.mtu as usize + 18 + 64).next_multiple_of(16);
    (need > 2048).then_some(need)
}

/// The devargs to probe `spec` with: as given, except that a `net_af_packet` device over an
/// interface whose MTU does not fit the driver's default ring frame gets `framesz`/`blocksz`
/// that hold the largest frame ([`af_packet_framesz`]); otherwise the kernel would cut jumbo
/// frames to 2 KiB.
fn af_packet_ring_for_mtu(spec: &PortSpec) -> String {
    match af_packet_framesz(spec) {
        // The driver walks the ring as contiguous frames: a block must be a whole number of
        // frames (and of pages, for the kernel).
        Some(f) => format!("{},blocksz={},framesz={f}", spec.devargs(), lcm(f, 4096)),
        None => spec.devargs(),
    }
}

fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

impl Port {
    /// Probes the device of `full` (hot-plug; an already present device is reused) and
    /// reserves it for this socket.
    fn open(full: &str, queue: Option<usize>) -> Result<Port> {
        let spec = PortSpec::parse(full)?;
        let q = queue.unwrap_or(0);
        let q16 = u16::try_from(q)
            .map_err(|_| Error::portspec(full, format!("queue {q} out of range")))?;
        let reservation = Reservation::take(&spec, full)?;
        let devargs = CString::new(af_packet_ring_for_mtu(&spec))
            .map_err(|_| Error::portspec(full, "contains a NUL byte"))?;
        // SAFETY: devargs is a valid C string; EAL is initialised (Sock::create ensured it).
        let rc = unsafe { dpdk_sys::rte_dev_probe(devargs.as_ptr()) };
        let probed = match rc {
            0 => true,
            rc if rc == -libc::EEXIST => false,
            rc => {
                let hint = match spec.kind {
                    PortKind::Pci => {
                        " (is the NIC bound to vfio-pci, and EAL started without --no-pci? \
                         see NETHUNS_DPDK_EAL_ARGS)"
                    }
                    PortKind::Vdev => {
                        " (unknown driver, bad driver arguments, or the interface does not \
                         exist in this network namespace)"
                    }
                };
                return Err(error::engine(
                    format!("probing device {:?}{hint}", spec.devargs()),
                    rc,
                ));
            }
        };
        let cname = CString::new(spec.name.as_str()).expect("checked above");
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        let info = if rc == 0 {
            port_info(id, &spec.name)
        } else {
            Err(error::engine(
                format!("device {} was probed but has no ethdev port", spec.name),
                rc,
            ))
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                if probed {
                    remove_device(&spec);
                }
                return Err(e);
            }
        };
        let mut port = Port {
            id,
            queue: q16,
            info,
            timestamp: None,
            rss: false,
            spec,
            probed,
            configured: false,
            started: false,
            promisc_set: false,
            promisc_hold: None,
            netns: current_netns(),
            iface: None,
            link_seen_up: std::cell::Cell::new(false),
            _reservation: reservation,
        };
        port.iface = port.spec.iface().and_then(KernelIface::open);
        let info = &port.info;
        if q >= usize::from(info.max_rx_queues) || q >= usize::from(info.max_tx_queues) {
            return Err(Error::portspec(
                full,
                format!(
                    "queue {q} out of range: port {id} ({}) has {} RX / {} TX queues",
                    info.driver, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        Ok(port)
    }

    /// Opens, configures and starts the port of `full` with one RX/TX queue pair in use
    /// (`queue`), receiving into the mempool `make_ctx` creates on the port's NUMA node.
    pub(crate) fn setup(
        full: &str,
        queue: Option<usize>,
        flags: &DpdkFlags,
        opts: &DpdkOptions,
        make_ctx: impl FnOnce(i32, &str) -> Result<DpdkContext>,
    ) -> Result<(Port, DpdkContext)> {
        control(|| Self::setup_locked(full, queue, flags, opts, make_ctx))
    }

    fn setup_locked(
        full: &str,
        queue: Option<usize>,
        flags: &DpdkFlags,
        opts: &DpdkOptions,
        make_ctx: impl FnOnce(i32, &str) -> Result<DpdkContext>,
    ) -> Result<(Port, DpdkContext)> {
        let mut port = Self::open(full, queue)?;
        let what = format!("port {} ({}) queue {}", port.id, port.spec.name, port.queue);
        if port.info.driver == "net_af_xdp" && port.send_mtu() > AF_XDP_MAX_MTU {
            return Err(Error::Unsupported(format!(
                "{what}: {} has MTU {}, but this DPDK's net_af_xdp receives a frame into one \
                 mbuf inside a 4096-byte UMEM frame (no multi-buffer AF_XDP), so frames over \
                 about 3.5 KiB cannot arrive; lower the MTU to {AF_XDP_MAX_MTU} or less, or use \
                 net_af_packet (or nethuns-afxdp, which carries multi-buffer frames)",
                port.iface
                    .as_ref()
                    .map_or("the interface", |k| k.name.as_str()),
                port.send_mtu()
            )));
        }
        let mut need = usize::from(port.info.mtu) + 18;
        if let Some(f) = af_packet_framesz(&port.spec) {
            // net_af_packet copies a ring frame (less its 32-byte TPACKET header part) into
            // one mbuf, and refuses mbufs that cannot hold a whole ring frame.
            need = need.max(f - 32);
        }
        if flags.max_frame() < need {
            return Err(Error::flag(
                "mbuf_default_buf_size",
                format!(
                    "{} holds frames of {} B, but {what} has MTU {} (frames up to {need} B with a \
                     VLAN tag): use at least {}",
                    flags.mbuf_default_buf_size,
                    flags.max_frame(),
                    port.info.mtu,
                    need + usize::from(HEADROOM)
                ),
            ));
        }
        if port.info.driver == "net_af_xdp" && flags.num_mbufs < AF_XDP_FILL_MBUFS + MIN_MBUFS {
            return Err(Error::flag(
                "num_mbufs",
                format!(
                    "{} is too few for {what}: net_af_xdp posts {AF_XDP_FILL_MBUFS} mbufs to \
                     its fill ring at start; use at least {}",
                    flags.num_mbufs,
                    AF_XDP_FILL_MBUFS + MIN_MBUFS
                ),
            ));
        }
        // SAFETY: plain query of a valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port.id) };
        let socket = if socket < 0 {
            dpdk_sys::SOCKET_ID_ANY
        } else {
            socket
        };
        let ctx = make_ctx(socket, &what)?;
        match port.configure(flags, opts, &ctx, socket, &what) {
            Ok(()) => Ok((port, ctx)),
            Err(e) => {
                // The port's queues may reference the mempool: release them first.
                drop(port);
                drop(ctx);
                Err(e)
            }
        }
    }

    fn configure(
        &mut self,
        flags: &DpdkFlags,
        opts: &DpdkOptions,
        ctx: &DpdkContext,
        socket: i32,
        what: &str,
    ) -> Result<()> {
        let (id, q) = (self.id, self.queue);
        let mut dev = nh_dev_info::default();
        // SAFETY: id is a valid port; dev is a valid out-pointer.
        let rc = unsafe { dpdk_sys::nh_eth_dev_info(id, &mut dev) };
        if rc != 0 {
            return Err(error::engine(format!("reading device info of {what}"), rc));
        }
        let nq = q + 1;
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss = dev.flow_type_rss_offloads & RSS_IP_TCP_UDP;
        // RSS wherever the driver hashes (also with one queue: the hash is reported).
        if rss != 0 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
        let mut offloads = 0;
        if rss != 0 && dev.rx_offload_capa & OFFLOAD_RSS_HASH != 0 {
            offloads |= OFFLOAD_RSS_HASH;
        }
        if opts.rx_timestamp && dev.rx_offload_capa & OFFLOAD_TIMESTAMP != 0 {
            offloads |= OFFLOAD_TIMESTAMP;
        }
        if opts.vlan_strip && dev.rx_offload_capa & OFFLOAD_VLAN_STRIP != 0 {
            offloads |= OFFLOAD_VLAN_STRIP;
        }
        conf.rxmode.offloads = offloads;
        self.configured = true;
        // SAFETY: valid port, conf fully initialised (zeroed + fields set).
        let rc = unsafe { dpdk_sys::rte_eth_dev_configure(id, nq, nq, &conf) };
        if rc != 0 {
            return Err(error::engine(
                format!("configuring {what} ({nq} queues)"),
                rc,
            ));
        }
        // Drivers that post mbufs to the RX ring at start fill all of it: leave the mempool at
        // least half its mbufs (the ring at most a power of two ≤ num_mbufs / 2).
        let pool_half = (flags.num_mbufs / 2).max(1);
        let rx_cap = 1u32 << (31 - pool_half.leading_zeros());
        let mut nb_rx = opts
            .rx_ring_size
            .min(u16::try_from(rx_cap).unwrap_or(u16::MAX));
        let mut nb_tx = opts.tx_ring_size;
        // SAFETY: valid port and out-pointers.
        let rc = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        if rc != 0 {
            return Err(error::engine(format!("adjusting ring sizes of {what}"), rc));
        }
        for i in 0..nq {
            let deferred = i32::from(i != q);
            // SAFETY: valid port configured with nq queues, i < nq, live mempool.
            let rc =
                unsafe { dpdk_sys::nh_rx_queue_setup(id, i, nb_rx, socket, ctx.raw(), deferred) };
            if rc != 0 {
                return Err(error::engine(
                    format!("setting up RX queue {i} ({nb_rx} descriptors) of {what}"),
                    rc,
                ));
            }
            // SAFETY: as above.
            let rc = unsafe { dpdk_sys::nh_tx_queue_setup(id, i, nb_tx, socket, deferred) };
            if rc != 0 {
                return Err(error::engine(
                    format!("setting up TX queue {i} ({nb_tx} descriptors) of {what}"),
                    rc,
                ));
            }
        }
        self.rss = rss != 0;
        match (&self.iface, opts.promiscuous) {
            (_, false) => {}
            (Some(iface), true) => {
                let hold = iface.hold_promiscuous().map_err(|e| {
                    Error::os(
                        format!("{what}: promiscuous membership of {}", iface.name),
                        e,
                    )
                })?;
                self.promisc_hold = Some(hold);
            }
            (None, true) => {
                // SAFETY: valid port.
                if unsafe { dpdk_sys::rte_eth_promiscuous_get(id) } == 0 {
                    // Not every driver can (ENOTSUP): ignored.
                    // SAFETY: valid port.
                    self.promisc_set = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) } == 0;
                }
            }
        }
        // SAFETY: valid, configured port with all queues set up.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(error::engine(format!("starting {what}"), rc));
        }
        self.started = true;
        if offloads & OFFLOAD_TIMESTAMP != 0 {
            self.timestamp = timestamp_field();
        }
        Ok(())
    }

    /// The port's link status, without waiting for autonegotiation.
    pub(crate) fn link(&self) -> Result<LinkStatus> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port, valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut l) };
        if rc != 0 {
            return Err(error::engine(
                format!("reading the link of port {} ({})", self.id, self.spec.name),
                rc,
            ));
        }
        Ok(LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: if l.link_speed == u32::MAX {
                0
            } else {
                l.link_speed
            },
            full_duplex: l.link_duplex() != 0,
            autoneg: l.link_autoneg() != 0,
        })
    }

    /// Whether the port's interface still exists and is up: for a kernel interface two ioctls
    /// in its namespace; otherwise the driver's link status (down only after it was once up).
    pub(crate) fn liveness(&self) -> Liveness {
        if let Some(k) = &self.iface {
            return k.liveness();
        }
        match self.link() {
            Ok(l) if l.up => {
                self.link_seen_up.set(true);
                Liveness::Up
            }
            Ok(_) if self.link_seen_up.get() => Liveness::Down,
            Ok(_) => Liveness::Up,
            // SAFETY: plain query; a removed device has no valid port any more.
            Err(_) if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(self.id) } == 0 => {
                Liveness::Gone
            }
            Err(_) => Liveness::Up,
        }
    }

    /// The name to report in [`Error::InterfaceDown`]: the kernel interface, or the device.
    pub(crate) fn down_name(&self) -> String {
        match &self.iface {
            Some(k) => format!("{} ({})", k.name, self.spec.name),
            None => self.spec.name.clone(),
        }
    }

    /// The MTU that limits `send`: the kernel interface's where there is one (DPDK's view of a
    /// vdev's MTU is its default, 1500), else the port's.
    pub(crate) fn send_mtu(&self) -> usize {
        match &self.iface {
            Some(k) if k.mtu > 0 => k.mtu as usize,
            _ => usize::from(self.info.mtu),
        }
    }

    /// Frees the mbufs of transmissions the driver has completed on this socket's TX queue;
    /// returns how many.
    pub(crate) fn tx_done_cleanup(&self) -> Result<u32> {
        // SAFETY: valid started port and queue; the caller (the socket, !Sync) is the queue's
        // only user. free_cnt 0 = every completed mbuf.
        let rc = unsafe { dpdk_sys::rte_eth_tx_done_cleanup(self.id, self.queue, 0) };
        if rc < 0 {
            return Err(error::engine(
                format!(
                    "freeing completed transmissions of port {} ({}) queue {}",
                    self.id, self.spec.name, self.queue
                ),
                rc,
            ));
        }
        Ok(rc as u32)
    }

    /// The port's counters.
    pub(crate) fn stats(&self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if rc != 0 {
            return Err(error::engine(
                format!("reading stats of port {} ({})", self.id, self.spec.name),
                rc,
            ));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            tx_dropped: 0,
        })
    }
}

fn remove_device(spec: &PortSpec) {
    let (Ok(bus), Ok(name)) = (CString::new(spec.bus()), CString::new(spec.name.as_str())) else {
        return;
    };
    // SAFETY: valid C strings; removing a device whose port is closed (or never configured).
    unsafe { dpdk_sys::rte_eal_hotplug_remove(bus.as_ptr(), name.as_ptr()) };
}

/// The calling thread's network namespace, to come back to at teardown.
fn current_netns() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid NUL-terminated path; the fd, if any, is owned by the OwnedFd.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: fd is a freshly opened descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Whether `ns` is the calling thread's network namespace.
fn is_current_netns(ns: &std::os::fd::OwnedFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::metadata("/proc/thread-self/ns/net");
    let there = ns
        .try_clone()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    matches!((here, there), (Ok(a), Ok(b)) if (a.dev(), a.ino()) == (b.dev(), b.ino()))
}

impl Drop for Port {
    /// The whole teardown runs in the namespace the port was opened in: drivers over kernel
    /// interfaces act by interface name or index in the calling thread's namespace (libxdp
    /// removes net_af_xdp's program by ifindex; net_af_packet clears promiscuity by name), and
    /// a socket may be dropped on a thread of another namespace.
    fn drop(&mut self) {
        control(|| match self.netns.take() {
            Some(ns) if !is_current_netns(&ns) => {
                use std::os::fd::AsRawFd;
                std::thread::scope(|s| {
                    s.spawn(|| {
                        // SAFETY: ns is a namespace descriptor; setns changes only this
                        // short-lived thread.
                        unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                        // The dropping thread holds the control lock for this one, and waits
                        // for it.
                        HOLDS_CONTROL.with(|h| h.set(true));
                        self.teardown();
                    });
                });
            }
            _ => self.teardown(),
        });
    }
}

impl Port {
    fn teardown(&mut self) {
        if self.promisc_set {
            // SAFETY: valid port, promiscuous mode enabled by this socket.
            unsafe { dpdk_sys::rte_eth_promiscuous_disable(self.id) };
        }
        if self.started {
            // SAFETY: valid started port; nothing polls it any more (the socket is going).
            unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        }
        if self.configured || self.probed {
            // Close releases the queues (and the mbufs they hold) while the mempool still
            // lives; then the device is removed so a later socket can probe it afresh.
            // SAFETY: valid stopped port.
            unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
            remove_device(&self.spec);
        }
    }
}
