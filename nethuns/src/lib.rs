//! # nethuns
//!
//! One socket-like API for fast packet I/O: write a monitor, a forwarder or a traffic generator
//! once against [`api::Socket`], and switch engine by changing one type. This crate is a facade
//! with no logic of its own: it re-exports `nethuns-core` and each backend behind a feature.
//!
//! | module | engine | feature |
//! |---|---|---|
//! | [`pcap`] | libpcap (live capture, savefiles) | `pcap` (default) |
//! | `af_packet` | Linux TPACKET_v3 rings | `af-packet` |
//! | `af_xdp` | Linux AF_XDP (XSK, UMEM) | `af-xdp` (alias `af_xdp`) |
//! | `netmap` | netmap | `netmap` |
//! | `dpdk` | DPDK | `dpdk` |
//! | `tokio` | async adapter over tokio (`AsyncSocket`: `recv().await`, `Stream`) | `tokio` |
//!
//! [`wait`] waits for a packet with any backend (`poll(2)` on its descriptor, a backoff where
//! there is none).
//!
//! ```no_run
//! use nethuns::api::Socket;
//! use nethuns::errors::Error;
//! use nethuns::pcap::{PcapFlags, Sock};
//!
//! let socket = Sock::create("eth0", None, PcapFlags::default())?;
//! loop {
//!     match socket.recv() {
//!         Ok((packet, meta)) => println!("{} bytes (caplen {})", packet.len(), meta.caplen),
//!         Err(Error::NoPacket) => std::thread::yield_now(),
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok::<(), nethuns::errors::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use nethuns_core::{api, errors};
pub use nethuns_core::{batch, channel, crossbeam_channel, metadata, pool, wait};

/// libpcap backend.
#[cfg(feature = "pcap")]
#[cfg_attr(docsrs, doc(cfg(feature = "pcap")))]
pub use nethuns_pcap as pcap;

/// AF_PACKET (TPACKET_v3) backend.
#[cfg(feature = "af-packet")]
#[cfg_attr(docsrs, doc(cfg(feature = "af-packet")))]
pub use nethuns_afpacket as af_packet;

/// AF_XDP backend.
#[cfg(feature = "af-xdp")]
#[cfg_attr(docsrs, doc(cfg(feature = "af-xdp")))]
pub use nethuns_afxdp as af_xdp;

/// netmap backend.
#[cfg(feature = "netmap")]
#[cfg_attr(docsrs, doc(cfg(feature = "netmap")))]
pub use nethuns_netmap as netmap;

/// DPDK backend.
#[cfg(feature = "dpdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpdk")))]
pub use nethuns_dpdk as dpdk;

/// Async adapter over tokio: [`AsyncSocket`](nethuns_tokio::AsyncSocket) for every backend
/// with a pollable descriptor.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use nethuns_tokio as tokio;

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
