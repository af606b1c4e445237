//! # nethuns-dpdk
//!
//! The DPDK backend of nethuns: [`Sock`] drives one queue of a DPDK port through the poll-mode
//! driver, with the socket's mbuf mempool as its [`Context`] ([`DpdkContext`]) and the mbufs
//! themselves as buffers — `recv` hands out the received mbuf's data in place, no copy, and
//! dropping the [`Payload`] returns the mbuf to the mempool (in bulk, see below).
//!
//! Pick it for NICs bound to DPDK (vfio-pci, with hugepages) at the highest packet rates, or to
//! run nethuns code over DPDK's virtual devices: `net_ring` (in-process loopback), `net_null`
//! (infinite source / sink), `net_af_packet` / `net_af_xdp` (a kernel interface), `net_tap`.
//!
//! ```no_run
//! use nethuns_dpdk::{DpdkFlags, Error, Socket, Sock};
//!
//! // The EAL starts at the first socket: without hugepages or PCI by default
//! // (set NETHUNS_DPDK_EAL_ARGS or use `Eal` for a real NIC).
//! let sock = Sock::create("net_ring0", Some(0), DpdkFlags::default())?;
//! sock.send(&[0u8; 64])?;
//! sock.flush();
//! match sock.recv() {
//!     Ok((payload, meta)) => println!("{} bytes on port {}", payload.len(), meta.port),
//!     Err(Error::NoPacket) => {}
//!     Err(e) => return Err(e),
//! }
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Files
//! `sock.rs`: the socket (`rx.rs`, `tx.rs`: its receive and transmit paths; `port.rs`: its
//! ethdev port; `eal.rs`: the EAL); `context.rs`: the mempool as the [`Context`];
//! `flags.rs`: the flags and port options;
//! `sys.rs`: every DPDK and libc call as a small safe wrapper, its submodule `sys/mbuf.rs` the
//! mbuf memory: it owns the mempool, the mbufs and the RX/TX bursts (their calls with them);
//! the declarations are the `nethuns-dpdk-sys` crate (bindgen, the C shim, the inlined bursts).
//! Why it is built so, and what was measured: `docs/dpdk.md` in the nethuns repository.
//!
//! ## Where the unsafe code is
//! Besides `sys.rs` and `nethuns-dpdk-sys`:
//! - `sys/mbuf.rs` (part of `sys`): the owners of every raw DPDK pointer. `Mbuf` (one mbuf: its fields and data,
//!   freed on drop, turned into and back from tokens), `RxBurst` / `TxBurst` / `Stash` (the
//!   arrays `rte_eth_rx_burst`, `rte_eth_tx_burst` and `rte_pktmbuf_alloc_bulk` work on, with
//!   `unsafe impl Send`), `ReleaseCache` (the cache the context's clones share, taken with an
//!   atomic flag) and `Mempool` (`unsafe impl Send`/`Sync`, freed once its lent mbufs are
//!   back). Their mbuf and mempool calls are here, not in `sys.rs`: what makes them sound is
//!   these types' invariants.
//! - `context.rs`: the two `unsafe fn`s the [`Context`] trait demands (`unsafe_buffer`,
//!   `release`), each one call into `sys/mbuf.rs`.
//! - `port.rs`: two calls whose soundness is the port's setup order: `sys::rx_queue_setup`
//!   (the mempool outlives the queue: the port is closed before it) and `sys::EthQueue::new`
//!   (the one handle of the started queue pair of a port reserved for one socket).
//!
//! ## Portspecs
//! - `0000:01:00.0` (or `01:00.0`), optionally `,DRIVER_ARGS`: a PCI NIC; needs EAL arguments
//!   without `--no-pci` (e.g. `NETHUNS_DPDK_EAL_ARGS="-l 2 -a 0000:01:00.0"`) and hugepages.
//! - `net_ring0`, `net_null0,size=128`, `net_af_packet0,iface=veth0`,
//!   `net_af_xdp0,iface=veth0`, `net_tap0`: virtual devices, hot-plugged at `create` and
//!   removed when the socket drops. AF_PACKET/AF_XDP devices bind to the interface of the
//!   calling thread's network namespace.
//!
//! The queue (`None` = 0) must be below the port's queue count. A port belongs to one socket.
//!
//! ## Flags and options
//! [`DpdkFlags`] is the spec's struct: the mempool (mbuf count, per-core cache, data room).
//! The port's other settings — RX/TX ring sizes, promiscuous mode, RX timestamps,
//! `vlan_strip` — are [`DpdkOptions`], given per socket with [`Sock::create_with_options`] or
//! for every later [`Socket::create`] with [`DpdkOptions::set_process_default`].
//! net_af_xdp posts 2048 mbufs to its fill ring at start: `num_mbufs` must be at least 2112.
//!
//! ## Jumbo frames
//! A frame is one mbuf (multi-segment mbufs a driver delivers are dropped and counted in
//! [`Sock::rx_multiseg_dropped`]; none of the virtual devices here makes them): for an
//! interface of MTU 9000, give mbufs that hold the frame. net_af_packet over such an
//! interface gets a ring whose frames hold MTU + 18 bytes (`framesz`/`blocksz` added to the
//! devargs unless the portspec sets them) and needs mbufs of that ring frame (9184 bytes of
//! `mbuf_default_buf_size` for MTU 9000; a smaller one is a flag error saying so). DPDK 22.11's
//! net_af_xdp has no multi-buffer AF_XDP: over an MTU above 3000 `create` refuses with
//! [`Error::Unsupported`] naming what works. RX timestamps ([`DpdkOptions::rx_timestamp`]):
//! the dynamic mbuf field where the driver fills it, in the NIC's clock (so
//! `Metadata::timestamp()` stays `None`); none of DPDK 22.11's virtual devices (net_ring,
//! net_null, net_af_packet, net_af_xdp, net_tap) offers the offload.
//!
//! ## Waiting, threads and async
//! A poll-mode driver has no descriptor to sleep on: `capabilities().pollable_fd` is `None`.
//! [`wait::recv_timeout`] waits by spinning with a backoff (spin hints, yields, sleeps of at
//! most [`wait::MAX_BACKOFF`]), which frees the core between bursts at the price of up to that
//! much latency; a receive loop that owns its core spins on `recv` instead.
//!
//! Beside tokio (`nethuns-tokio`'s `AsyncSocket` refuses a socket without a descriptor), run
//! the DPDK socket on a thread of its own — [`std::thread::spawn`], or
//! `tokio::task::spawn_blocking` if a runtime thread may be taken for as long as the socket
//! runs — and hand [`Token`]s (or copies) to the async tasks over a channel
//! (`tokio::sync::mpsc`, or `flume`, whose receiver has `recv_async`); a task turns a token
//! back into bytes with a clone of the socket's [`DpdkContext`]. Transmit the same way: the
//! DPDK thread owns the socket and sends what a channel brings it.
//!
//! ## The contract
//! - `send` takes 14 ≤ len ≤ MTU + 14 bytes (MTU + 18 with an 802.1Q outer tag), else
//!   [`Error::TooSmallPacket`] / [`Error::TooBigPacket`]; the MTU is the kernel interface's
//!   for net_af_packet / net_af_xdp / net_tap, else the port's ([`Socket::capabilities`]).
//!   `try_flush` reports frames the driver refused since the last `try_flush`.
//! - The payload is the wire frame: a VLAN tag the driver stripped is put back (unless
//!   [`DpdkOptions::vlan_strip`]), and [`Meta`]'s `vlan_tci` is the outer tag's TCI.
//! - A deleted interface (or one down) is [`Error::InterfaceDown`] from `recv` within about
//!   10 ms: on an empty burst the socket checks, at most every 10 ms, the kernel interface
//!   (two ioctls on a socket opened in its namespace, so it works from any thread) or, for
//!   other ports, the driver's link status (down only after the link was once up). When the
//!   link comes back, `recv` receives again (net_af_packet and net_af_xdp resume by
//!   themselves); a deletion is final.
//! - With every mbuf held by payloads/tokens (or posted to the driver), `recv` says
//!   [`Error::NoMemory`], and receives again once some are released.
//! - [`Socket::stats`]: `received`/`sent` counted by the socket; `dropped` = the port's
//!   `imissed + rx_nombuf` and `send_errors` = refused frames + `oerrors`, port-wide, since
//!   `create`. The driver's own counters are [`Sock::native_stats`].
//!
//! ## The EAL
//! One per process, initialised at the first `create` from [`Eal`] / `NETHUNS_DPDK_EAL_ARGS` /
//! defaults, never torn down; see [`eal`] for the rules. A Debian/Ubuntu shared DPDK
//! loads its drivers at EAL start from its driver directory (package `dpdk`).
//!
//! ## Errors
//! DPDK failures are [`Error::Engine`] with engine `"dpdk"`, what was done to which port/queue,
//! and a [`DpdkError`] (code + `rte_strerror`) as source. Bad flags are
//! [`Error::InvalidFlag`] naming the field; bad portspecs or queues [`Error::InvalidPortspec`].
//! An exhausted mempool is [`Error::NoMemory`] (from `send`, and from `recv` when no mbuf is
//! left to receive into).
//!
//! ## The fast path
//! `recv` takes the next mbuf of the last `rte_eth_rx_burst` (the burst functions are inlined
//! from DPDK's `rte_eth_fp_ops` table, no call into C); dropped payloads go back to the mempool
//! 32 at a time with one `rte_pktmbuf_free_bulk` (a small cache shared by the context's
//! clones; the socket empties it before it reports [`Error::NoMemory`], and
//! [`DpdkContext::available`] / [`DpdkContext::in_use`] count it as free). `recv_batch` takes a
//! whole burst at once; `send` / `send_batch` fill mbufs of one `rte_pktmbuf_alloc_bulk` and
//! submit 32 per `rte_eth_tx_burst`. `send_with` builds the frame in the mbuf that is sent, and
//! `send_payload` of a payload of any DPDK socket of the process hands that mbuf itself to the
//! driver (no copy; the socket keeps the payload's mempool alive while it lives, since the
//! driver frees the mbuf there later); a payload of another backend is copied.
//!
//! ## Threads
//! `Sock` is `Send`, not `Sync`. Payloads/tokens may be dropped or consumed on any thread with
//! a clone of the context: releasing is thread-safe (the release cache is taken with an atomic
//! flag; a thread that finds it taken frees its mbuf alone with `rte_pktmbuf_free`); threads
//! that are not EAL lcores bypass the per-lcore mempool cache.
//!
//! ## Build and run needs
//! - Build: `libdpdk-dev` (pkg-config `libdpdk` ≥ 21.11; Debian 12 ships 22.11), `pkg-config`,
//!   a C compiler, and `clang`/`libclang-dev` for bindgen. Without libdpdk the build stops with
//!   one error naming the package to install.
//! - Run: the DPDK shared libraries and drivers (`librte-net-ring23`, `librte-net-null23`,
//!   `librte-net-af-packet23`, `librte-net-af-xdp23`, `librte-net-tap23`,
//!   `librte-mempool-ring23` …, all pulled in by `libdpdk-dev`). A shared DPDK build loads
//!   every driver of its driver directory (`RTE_EAL_PMD_PATH`, on Debian
//!   `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`) at EAL start, so drivers are not linked and
//!   no `-d` argument is needed; with a DPDK built elsewhere add `-d DIR` to the EAL arguments.
//! - No hugepages and no PCI device with the default EAL arguments; no root for `net_ring` /
//!   `net_null`; root (or CAP_NET_RAW / CAP_BPF / CAP_NET_ADMIN) for AF_PACKET, AF_XDP and TAP
//!   devices.
//!
//! ## Tests
//! One EAL per process is a DPDK rule, so each file in `tests/` (its own process) holds one
//! `#[test]` running its cases in sequence: `conformance_af_packet` and `conformance_af_xdp`
//! (nethuns-testnet's conformance suite, every case, on net_af_packet / net_af_xdp over a
//! veth pair; needs root, skips otherwise, fails under `CI`), `inproc` (net_ring / net_null:
//! exact counts, size rule, stats, tokens across threads, channel, exhausted mempool, bad
//! portspecs, flags and options, EAL re-init; the suite needs a veth peer, so net_ring is
//! checked here), `veth` (DPDK-only checks: promiscuous mode restored, the namespace rule,
//! `vlan_strip`, net_tap), `netns_init` (EAL started from a namespace thread), `eal_env`,
//! `eal_fail`, `in_place` (`send_with`, `send_payload` forwarding mbufs between two net_ring
//! ports with no leak, whole-burst `recv_batch` / `send_batch`). `lab` holds the `#[ignore]`d lab tests on a real
//! PCI NIC with hugepages, run by `cargo xtask test-hw --pci ADDR` (`NETHUNS_HW_PCI`, with
//! `NETHUNS_HW_PEER=IF` or `NETHUNS_HW_LOOPBACK=1` for the delivery checks).

mod context;
pub mod eal;
mod error;
mod flags;
mod port;
mod portspec;
mod rx;
mod sock;
mod sys;
use sys::mbuf;
mod tx;

pub use context::DpdkContext;
pub use eal::{Eal, EAL_ARGS_ENV};
pub use error::DpdkError;
pub use flags::{DpdkFlags, DpdkOptions, BURST, HEADROOM, MEMPOOL_CACHE_MAX, MIN_MBUFS};
pub use port::{LinkStatus, PortInfo, PortStats};
pub use portspec::{PortKind, PortSpec};
pub use sock::Sock;

pub use nethuns_core::reexports::*;

/// Metadata of a received packet: length, port, queue, and RSS hash / VLAN TCI / timestamp
/// where the driver's `ol_flags` say it provided them.
pub type Meta = nethuns_core::metadata::DpdkMeta;

/// The DPDK version this crate was built against.
pub const DPDK_VERSION: &str = dpdk_sys::DPDK_VERSION;
