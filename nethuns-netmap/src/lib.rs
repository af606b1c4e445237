//! # nethuns-netmap
//!
//! The [netmap](https://github.com/luigirizzo/netmap) backend of nethuns: [`Sock`] maps a netmap
//! port's rings and buffers into the process and implements [`Socket`] over them, with no copy
//! on receive and one copy into the TX slot on send.
//!
//! **Pick it** on Linux with the netmap module loaded (or FreeBSD, where netmap is in the
//! kernel) when you want netmap's native or emulated adapters, its VALE software switches
//! (`vale0:port`) or its host-stack rings (`netmap:eth0^`). It builds anywhere: the netmap ABI
//! is declared in [`sys`], no netmap headers or library needed. Without `/dev/netmap`,
//! [`Socket::create`] returns [`Error::Unsupported`] saying the module is not loaded.
//!
//! ```no_run
//! use nethuns_netmap::{Error, NetmapFlags, Sock, Socket};
//!
//! // Ring pair 0 of eth0, room to hold up to 4096 received packets at once.
//! let sock = Sock::create("netmap:eth0", Some(0), NetmapFlags { extra_buf: 4096 })?;
//! for _ in 0..1_000_000 {
//!     match sock.recv() {
//!         Ok((packet, meta)) => {
//!             println!("{} bytes on ring {}", packet.len(), meta.ring);
//!             sock.send(&packet)?; // echo it back
//!         } // `packet` dropped: its buffer returns to the extra-buffer pool
//!         Err(Error::NoPacket) => {
//!             sock.flush();
//!             sock.wait_readable(std::time::Duration::from_millis(10))?;
//!         }
//!         Err(e) => return Err(e),
//!     }
//! }
//! sock.flush();
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Portspecs
//! `netmap:IF` (all hardware rings, or ring pair `queue` if given), `netmap:IF-N` (ring pair N),
//! `netmap:IF^` / `netmap:IF^N` (host-stack rings), `netmap:IF*` (hardware and host rings),
//! `valeSW:PORT[-N]` (a VALE switch port, created on demand). See [`portspec`].
//!
//! ## Buffers
//! Packets live in netmap buffers inside the shared region. `recv` swaps the packet's buffer
//! out of its RX slot for a free *extra buffer* (`NS_BUF_CHANGED`) and hands the packet's
//! buffer to the caller as a [`Payload`] or [`Token`]; the ring never waits on the user, and a
//! held packet survives any number of later syncs. Dropping the payload (on any thread) puts
//! the buffer back in the lock-free extra-buffer pool. [`NetmapFlags::extra_buf`] sizes that
//! pool: when all are held, `recv` returns [`Error::NoMemory`] and the packet stays in the ring.
//! A packet spanning several slots (`NS_MOREFRAG`, a frame larger than a buffer) is copied
//! whole into one of the context's jumbo buffers (16 of 64 KiB) and handed out as one payload;
//! its slots go back at once; with every jumbo buffer held `recv` says [`Error::NoMemory`] and
//! the packet waits; one longer than 64 KiB is skipped with [`Error::TooBigPacket`]. `send`
//! of a frame larger than a buffer (up to MTU + 14) fills as many slots, chained with
//! `NS_MOREFRAG`.
//!
//! ## Errors, limits, statistics
//! netmap's own failures (a `/dev/netmap` ioctl such as `NIOCCTRL` or `NIOCTXSYNC`, the `mmap`
//! of the region, a region that does not check out) come as [`Error::Netmap`] holding a
//! [`NetmapError`] (context and OS error). A sync failing with `ENXIO` (the interface was
//! deleted or left netmap mode) is [`Error::InterfaceDown`]. `send` takes 14 bytes up to
//! [`Capabilities::max_frame`] (`min(buffer size, MTU + 14)`, 4 more for an 802.1Q-tagged frame).
//! [`Socket::stats`] counts received, sent and send errors; `dropped` is `None`, as netmap's ABI
//! keeps no drop counter.
//!
//! ## Features
//! - `fuzzing`: the entry point of the fuzz target in `fuzz/` (the ring and extra-buffer
//!   logic over the simulated region, with what the kernel writes fuzzed); not part of the API.
//!
//! ## Source map
//! `sock.rs`: [`Sock`] and `impl Socket`, over `engine.rs` (the socket logic, generic over the
//! kernel side: `dev.rs` the real port, `sim.rs` a simulated one); `context.rs`: the buffer
//! memory ([`NetmapContext`]), with `region.rs` (checking a registered region) and `extra.rs`
//! (the extra-buffer free list); `ring.rs`: one netmap ring; `flags.rs`: [`NetmapFlags`];
//! `sys.rs`: every system call; `abi.rs`: the netmap structs and constants (public as [`sys`]).
//! The region is a [`SharedMap`](nethuns_sys_linux::SharedMap): everything above reaches it
//! by bounds-checked offsets. Why the ABI is declared here, the engine over a simulated
//! kernel, the buffer swap: `docs/netmap.md` in the nethuns repository.
//!
//! ## Where the unsafe code is
//! - `sys.rs`: the `open`, `ioctl` (`NIOCCTRL`, `NIOCTXSYNC`, `NIOCRXSYNC`) calls, and, for the
//!   unit tests only, the calls of `unsafe` APIs the tests need (a deliberate double release,
//!   `BatchSink::into_received`, putting a popped extra buffer back).
//! - `abi.rs`: `unsafe impl Pod` for `SlotHead` (a slot's first 8 bytes, read and written in
//!   one access), and the raw-pointer forms of `netmap_user.h`'s macros (`netmap_if_at`,
//!   `ring_ofs`, `netmap_txring`, …), public and `unsafe fn`, which the crate itself does not
//!   use.
//! - `context.rs`: the `Context` impl's `unsafe fn unsafe_buffer` and `unsafe fn release`,
//!   which the trait demands (`release` pushes onto the extra-buffer list, an `unsafe fn` of
//!   nethuns-core's `FreeList`), and the three places that hand buffer memory over: minting a
//!   `Token` for a buffer swapped out of its slot, lending a jumbo buffer to the copy of a
//!   multi-slot packet, and lending the free TX slot's buffer to `send_with`'s closure (the
//!   first and the last are `unsafe fn`s: their promise is the engine's ring protocol).
//! - `engine.rs`: the two calls of those, where the engine keeps that promise: the buffer
//!   just swapped out of its RX slot becomes a token, the free TX slot's buffer is lent.
//! - `extra.rs`: `unsafe impl Links for BufMem`, which puts the free list's links in the first
//!   word of each free buffer (netmap's `ni_bufs_head` format, which the kernel reads back).
//!
//! The `mmap`/`munmap` of the region and `poll` are nethuns-sys-linux's.
//!
//! ## Platforms
//! [`Sock`] exists on Linux and FreeBSD. The ring logic is tested everywhere against a
//! simulated netmap region; the real-device tests are `#[ignore]` lab tests run by
//! `cargo xtask test-hw --iface IF` / `--vale PORT` (env `NETHUNS_HW_IFACE`, `NETHUNS_HW_VALE`).

mod abi;
mod context;
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
mod dev;
mod engine;
mod extra;
mod flags;
pub mod portspec;
mod region;
mod ring;
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
mod sock;
pub mod sys;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(test), allow(dead_code))]
mod sim;
#[cfg(test)]
mod sim_tests;

pub use context::NetmapContext;
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub use dev::{netmap_available, NETMAP_DEVICE};
pub use flags::NetmapFlags;
pub use portspec::{PortKind, PortSpec, Rings};
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub use sock::Sock;

/// netmap's own errors (`Error::Netmap`): a failed `/dev/netmap` ioctl or `mmap`, a region
/// that does not check out.
pub use nethuns_core::errors::NetmapError;
/// The metadata `recv` reports: the ring's timestamp at the last sync, the length, the ring.
pub use nethuns_core::metadata::NetmapMeta as Meta;
pub use nethuns_core::metadata::TimeVal;
pub use nethuns_core::reexports::*;

/// An [`Error::Netmap`]: what was being done to which port, and the OS error.
pub(crate) fn netmap_error(context: impl Into<String>, source: std::io::Error) -> Error {
    Error::Netmap(NetmapError {
        context: context.into(),
        source,
    })
}
