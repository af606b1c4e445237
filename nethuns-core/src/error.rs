//! Errors shared by every backend.
//!
//! The spec's `Error` names two engine-specific variants, `Pcap(pcap::Error)` and
//! `Netmap(..)`. They are here behind this crate's `pcap` and `netmap` features (which the
//! backend crates turn on): `Error::Pcap` holds the `pcap` crate's own error, and `?` on a
//! `pcap` call converts into it; `Error::Netmap` holds a [`NetmapError`] (nethuns declares
//! netmap's ABI itself, so there is no `netmap_rs` error type to carry). Beside them,
//! [`Error::Engine`] keeps any engine's error as its `source` together with what was being
//! done and to what. Match on it and downcast when the engine's type matters:
//!
//! ```
//! use nethuns_core::Error;
//!
//! fn report(e: &Error) -> String {
//!     match e {
//!         Error::Engine { engine, context, .. } => format!("{engine} failed while {context}"),
//!         other => other.to_string(),
//!     }
//! }
//! # let _ = report(&Error::NoPacket);
//! ```

use std::io;

/// The error source an engine hands back, boxed so core does not depend on the engine crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every error a nethuns socket, context or channel can return.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// No packet available for receive (non-blocking `recv` found the ring empty).
    #[error("Can't receive packet")]
    NoPacket,

    /// No free buffer: the pool, UMEM or mempool is exhausted (all buffers are held by payloads,
    /// tokens or in-flight transmissions).
    #[error("Can't allocate memory")]
    NoMemory,

    /// Packet size exceeds buffer capacity, or the largest frame the link carries
    /// ([`Capabilities::max_frame`](crate::socket::Capabilities)).
    #[error("Too big packet: {0}")]
    TooBigPacket(usize),

    /// A frame shorter than an Ethernet header (14 bytes) was given to `send`.
    #[error("Too small packet: {0} bytes, an Ethernet frame has at least 14")]
    TooSmallPacket(usize),

    /// The end of a savefile: every packet has been read; `recv` keeps returning this.
    #[error("end of file: every packet of the savefile has been read")]
    Eof,

    /// Netmap-specific error (the netmap backend's own failures).
    #[cfg(feature = "netmap")]
    #[cfg_attr(docsrs, doc(cfg(feature = "netmap")))]
    #[error("{0}")]
    Netmap(#[from] NetmapError),

    /// Pcap-specific error: libpcap's own error, as the `pcap` crate reports it (`?` on a
    /// `pcap` call converts it).
    #[cfg(feature = "pcap")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pcap")))]
    #[error("{0}")]
    Pcap(#[from] pcap::Error),

    /// Generic I/O error without more context.
    #[error("{0}")]
    Generic(#[from] io::Error),

    /// An operating-system call failed; says which call and on what (interface, queue).
    #[error("{context}: {source}")]
    Os {
        /// What was being done and to what, e.g. `"AF_XDP bind on veth0 queue 3"`.
        context: String,
        /// The OS error, with its errno.
        #[source]
        source: io::Error,
    },

    /// The packet engine (libpcap, DPDK, netmap, libxdp) reported an error; its own error is
    /// kept as `source` (downcast it to the engine's type when needed).
    #[error("{engine}: {context}: {source}")]
    Engine {
        /// Which engine: `"pcap"`, `"af_xdp"`, `"dpdk"`, `"netmap"`, `"af_packet"`.
        engine: &'static str,
        /// What was being done and to what.
        context: String,
        /// The engine's own error.
        #[source]
        source: BoxError,
    },

    /// A configuration flag has a value the backend cannot use.
    #[error("invalid flag `{field}`: {reason}")]
    InvalidFlag {
        /// The field's name in the flags struct.
        field: &'static str,
        /// Why it is refused and what would be accepted.
        reason: String,
    },

    /// The portspec (interface name, `file:PATH`, `netmap:IF`, PCI address …) is malformed.
    #[error("invalid portspec {spec:?}: {reason}")]
    InvalidPortspec {
        /// The portspec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The engine or device cannot do what was asked (zero-copy on veth, no netmap module …).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A token was presented to a context other than the one it came from.
    #[error("token of pool {token_pool} presented to context of pool {context_pool}")]
    ForeignToken {
        /// The pool id stored in the token.
        token_pool: u32,
        /// The pool id of the context it was presented to.
        context_pool: u32,
    },

    /// The socket's interface went away or down while in use.
    #[error("interface {0} is down or gone")]
    InterfaceDown(String),

    /// The other end of a channel was dropped.
    #[error("channel closed: the other end was dropped")]
    ChannelClosed,

    /// Unknown error.
    #[error("unknown error")]
    Unknown,
}

/// An error of the netmap engine: what was being done, to which port, and the OS error.
#[cfg(feature = "netmap")]
#[cfg_attr(docsrs, doc(cfg(feature = "netmap")))]
#[derive(thiserror::Error, Debug)]
#[error("netmap: {context}: {source}")]
pub struct NetmapError {
    /// What was being done and to what, e.g. `"NIOCREGIF on netmap:eth0"`.
    pub context: String,
    /// The OS error, with its errno.
    #[source]
    pub source: io::Error,
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Os`] from the calling thread's `errno`, with context.
    pub fn last_os(context: impl Into<String>) -> Self {
        Error::Os {
            context: context.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// An [`Error::Os`] from an explicit io error, with context.
    pub fn os(context: impl Into<String>, source: io::Error) -> Self {
        Error::Os {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Engine`] wrapping the engine's own error.
    pub fn engine(
        engine: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Engine {
            engine,
            context: context.into(),
            source: source.into(),
        }
    }

    /// An [`Error::InvalidFlag`].
    pub fn flag(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidFlag {
            field,
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidPortspec`].
    pub fn portspec(spec: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidPortspec {
            spec: spec.into(),
            reason: reason.into(),
        }
    }

    /// The engine's own error inside an [`Error::Engine`], if it is of type `T`.
    pub fn engine_source<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            Error::Engine { source, .. } => source.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The raw OS error number, if this error carries one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } | Error::Generic(source) => source.raw_os_error(),
            #[cfg(feature = "netmap")]
            Error::Netmap(e) => e.source.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_names_context_and_errno() {
        let e = Error::os(
            "AF_XDP bind on veth0 queue 3",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        let s = e.to_string();
        assert!(s.contains("veth0 queue 3"), "{s}");
        assert!(s.contains("os error 22"), "{s}");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn engine_source_downcasts() {
        let e = Error::engine("pcap", "opening eth9", io::Error::other("boom"));
        assert!(e.engine_source::<io::Error>().is_some());
        assert!(e.to_string().starts_with("pcap: opening eth9: boom"));
    }
}
