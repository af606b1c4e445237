//! An ethdev port owned by one socket: probed (hot-plugged) from its portspec, configured with
//! the socket's queue and mempool, started; stopped, closed and removed on drop.
//!
//! One socket per port: DPDK configures all queues of a port at once, before start, so a port
//! is not shared between sockets. Queues below the socket's queue are set up with deferred start
//! (configured, never started) so the driver accepts the queue index.

use std::ffi::{CStr, CString};
use std::sync::Mutex;

use std::os::fd::{AsFd, OwnedFd};

use nethuns_core::{Error, Result};
use nethuns_sys_linux::netdev;

use crate::context::DpdkContext;
use crate::error;
use crate::flags::{DpdkFlags, DpdkOptions, HEADROOM, MIN_MBUFS};
use crate::portspec::{PortKind, PortSpec};
use crate::sys::{self, EthQueue, RxTimestamp};

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

const OFFLOAD_VLAN_STRIP: u64 = dpdk_sys::RTE_ETH_RX_OFFLOAD_VLAN_STRIP as u64;
const OFFLOAD_TIMESTAMP: u64 = dpdk_sys::RTE_ETH_RX_OFFLOAD_TIMESTAMP as u64;
const OFFLOAD_RSS_HASH: u64 = dpdk_sys::RTE_ETH_RX_OFFLOAD_RSS_HASH as u64;
/// RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (the usual flow hash).
const RSS_IP_TCP_UDP: u64 =
    (dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP) as u64;

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
    /// Where the RX timestamp is, if the driver delivers one.
    pub(crate) timestamp: Option<RxTimestamp>,
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
    promisc_hold: Option<OwnedFd>,
    /// The network namespace the port was opened in: drivers over kernel interfaces
    /// (net_af_packet, net_af_xdp) apply control operations by interface name or index in the
    /// calling thread's namespace, and the socket may be dropped on a thread of another one:
    /// the teardown runs in this one.
    netns: Option<OwnedFd>,
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
    ifindex: u32,
    /// Its MTU at `create`.
    pub(crate) mtu: u32,
    ctl: OwnedFd,
}

impl KernelIface {
    /// Looks up `name` in the calling thread's namespace.
    fn open(name: &str) -> Option<KernelIface> {
        let ctl = netdev::ctl_socket().ok()?;
        let ifindex = netdev::index_of(&ctl, name).ok()?;
        let mtu = netdev::mtu(&ctl, name).unwrap_or(0);
        Some(KernelIface {
            name: name.to_owned(),
            ifindex,
            mtu,
            ctl,
        })
    }

    /// An AF_PACKET socket (protocol 0: it receives nothing) holding a `PACKET_MR_PROMISC`
    /// membership of the interface: promiscuous while it is open, and no longer once it is
    /// closed, by drop or by the death of the process. The socket is made in the namespace
    /// of the calling thread, the one that opened the port and looked the interface up.
    fn hold_promiscuous(&self) -> std::io::Result<OwnedFd> {
        sys::promiscuous_membership(self.ifindex)
    }

    /// Two ioctls: the interface's index (gone, or another interface now has the name) and
    /// its flags (up and running).
    fn liveness(&self) -> Liveness {
        match netdev::index_of(&self.ctl, &self.name) {
            Ok(i) if i != self.ifindex => return Liveness::Gone,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Liveness::Gone,
            Err(_) => return Liveness::Up,
        }
        let Ok(flags) = netdev::flags(&self.ctl, &self.name) else {
            return Liveness::Gone;
        };
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

/// The NUL-terminated string the shim wrote into a fixed array (snprintf; a zeroed array
/// is the empty string).
fn c_str(buf: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Reads the facts of port `id`.
pub(crate) fn port_info(id: u16, name: &str) -> Result<PortInfo> {
    let dev = sys::dev_info(id)
        .map_err(|rc| error::engine(format!("reading device info of port {id} ({name})"), rc))?;
    Ok(PortInfo {
        port_id: id,
        name: name.to_owned(),
        driver: c_str(&dev.driver_name),
        bus: c_str(&dev.bus_name),
        max_rx_queues: dev.max_rx_queues,
        max_tx_queues: dev.max_tx_queues,
        mtu: sys::mtu(id).unwrap_or(1500),
        mac: sys::mac(id),
    })
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
        // EAL is initialised (Sock::create ensured it).
        let probed = match sys::dev_probe(&devargs) {
            Ok(()) => true,
            Err(rc) if rc == -libc::EEXIST => false,
            Err(rc) => {
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
        let (id, info) = match sys::port_by_name(&cname) {
            Ok(id) => (id, port_info(id, &spec.name)),
            Err(rc) => (
                0,
                Err(error::engine(
                    format!("device {} was probed but has no ethdev port", spec.name),
                    rc,
                )),
            ),
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
    ) -> Result<(Port, DpdkContext, EthQueue)> {
        control(|| Self::setup_locked(full, queue, flags, opts, make_ctx))
    }

    fn setup_locked(
        full: &str,
        queue: Option<usize>,
        flags: &DpdkFlags,
        opts: &DpdkOptions,
        make_ctx: impl FnOnce(i32, &str) -> Result<DpdkContext>,
    ) -> Result<(Port, DpdkContext, EthQueue)> {
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
        let socket = sys::socket_id(port.id);
        let ctx = make_ctx(socket, &what)?;
        match port.configure(flags, opts, &ctx, socket, &what) {
            Ok(q) => Ok((port, ctx, q)),
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
    ) -> Result<EthQueue> {
        let (id, q) = (self.id, self.queue);
        let dev = sys::dev_info(id)
            .map_err(|rc| error::engine(format!("reading device info of {what}"), rc))?;
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
        sys::configure(id, nq, nq, &conf)
            .map_err(|rc| error::engine(format!("configuring {what} ({nq} queues)"), rc))?;
        // Drivers that post mbufs to the RX ring at start fill all of it: leave the mempool at
        // least half its mbufs (the ring at most a power of two ≤ num_mbufs / 2).
        let pool_half = (flags.num_mbufs / 2).max(1);
        let rx_cap = 1u32 << (31 - pool_half.leading_zeros());
        let nb_rx = opts
            .rx_ring_size
            .min(u16::try_from(rx_cap).unwrap_or(u16::MAX));
        let (nb_rx, nb_tx) = sys::adjust_ring_sizes(id, nb_rx, opts.tx_ring_size)
            .map_err(|rc| error::engine(format!("adjusting ring sizes of {what}"), rc))?;
        for i in 0..nq {
            let deferred = i != q;
            // SAFETY: the port is closed (teardown) before the mempool goes: Sock drops its
            // port before its context, and a failed setup drops the port first.
            unsafe { sys::rx_queue_setup(id, i, nb_rx, socket, ctx.mempool(), deferred) }.map_err(
                |rc| {
                    error::engine(
                        format!("setting up RX queue {i} ({nb_rx} descriptors) of {what}"),
                        rc,
                    )
                },
            )?;
            sys::tx_queue_setup(id, i, nb_tx, socket, deferred).map_err(|rc| {
                error::engine(
                    format!("setting up TX queue {i} ({nb_tx} descriptors) of {what}"),
                    rc,
                )
            })?;
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
                if sys::promiscuous(id) == Some(false) {
                    // Not every driver can (ENOTSUP): ignored.
                    self.promisc_set = sys::promiscuous_enable(id).is_ok();
                }
            }
        }
        sys::start(id).map_err(|rc| error::engine(format!("starting {what}"), rc))?;
        self.started = true;
        if offloads & OFFLOAD_TIMESTAMP != 0 {
            self.timestamp = RxTimestamp::lookup();
        }
        // SAFETY: queue pair q was set up above and the port started; the port is reserved
        // for this socket (`Reservation`), which gets the only handle.
        Ok(unsafe { EthQueue::new(id, q) })
    }

    /// The port's link status, without waiting for autonegotiation.
    pub(crate) fn link(&self) -> Result<LinkStatus> {
        let l = sys::link(self.id).map_err(|rc| {
            error::engine(
                format!("reading the link of port {} ({})", self.id, self.spec.name),
                rc,
            )
        })?;
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
            // A removed device has no valid port any more.
            Err(_) if !sys::is_valid_port(self.id) => Liveness::Gone,
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
    pub(crate) fn tx_done_cleanup(&self, q: &EthQueue) -> Result<u32> {
        q.tx_done_cleanup().map_err(|rc| {
            error::engine(
                format!(
                    "freeing completed transmissions of port {} ({}) queue {}",
                    self.id, self.spec.name, self.queue
                ),
                rc,
            )
        })
    }

    /// The port's counters.
    pub(crate) fn stats(&self) -> Result<PortStats> {
        let s = sys::stats(self.id).map_err(|rc| {
            error::engine(
                format!("reading stats of port {} ({})", self.id, self.spec.name),
                rc,
            )
        })?;
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
    // Removing a device whose port is closed (or never configured).
    let _ = sys::hotplug_remove(&bus, &name);
}

/// The calling thread's network namespace, to come back to at teardown.
fn current_netns() -> Option<OwnedFd> {
    std::fs::File::open("/proc/thread-self/ns/net")
        .ok()
        .map(OwnedFd::from)
}

/// Whether `ns` is the calling thread's network namespace.
fn is_current_netns(ns: &OwnedFd) -> bool {
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
                std::thread::scope(|s| {
                    s.spawn(|| {
                        // Changes only this short-lived thread.
                        let _ = sys::setns_net(ns.as_fd());
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
            // Promiscuous mode was enabled by this socket.
            let _ = sys::promiscuous_disable(self.id);
        }
        if self.started {
            // Nothing polls it any more (the socket is going).
            let _ = sys::stop(self.id);
        }
        if self.configured || self.probed {
            // Close releases the queues (and the mbufs they hold) while the mempool still
            // lives; then the device is removed so a later socket can probe it afresh.
            let _ = sys::close(self.id);
            remove_device(&self.spec);
        }
    }
}
