//! [`Dumper`]: writing packets to a classic `.pcap` savefile that tcpdump and Wireshark read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use nethuns_core::metadata::TsPrecision;
use nethuns_core::{Error, Result};

use crate::format::SavefileFormat;
use crate::Meta;

/// Writes packets to a classic pcap savefile, in the link type and timestamp precision of
/// its [`SavefileFormat`].
///
/// [`Dumper::create`] writes Ethernet with microsecond stamps; [`Dumper::for_source`] takes
/// the format of the socket the packets come from (link type, precision, snaplen), so that a
/// savefile replayed through a `file:` socket is written back byte for byte, and a capture
/// from a non-Ethernet device (`any` is Linux cooked capture) is written as what it is.
///
/// ```no_run
/// use nethuns_pcap::{Dumper, PcapFlags, Sock, Socket};
///
/// let sock = Sock::create("eth0", None, PcapFlags::default())?;
/// let mut dump = Dumper::for_source("/tmp/out.pcap", &sock)?;
/// if let Ok((packet, meta)) = sock.recv() {
///     dump.write(&packet, &meta);
/// }
/// dump.flush()?;
/// # Ok::<(), nethuns_core::Error>(())
/// ```
pub struct Dumper {
    file: BufWriter<File>,
    path: String,
    format: SavefileFormat,
    /// The first write error, reported by the next `flush`.
    error: Option<std::io::Error>,
}

impl Dumper {
    /// Creates (truncates) `path` as an Ethernet savefile with microsecond stamps.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_format(path, SavefileFormat::ethernet(TsPrecision::Micro))
    }

    /// Creates (truncates) `path` in the format of the socket's source
    /// ([`Sock::savefile_format`](crate::Sock::savefile_format)).
    pub fn for_source(path: impl AsRef<Path>, sock: &crate::Sock) -> Result<Self> {
        Self::with_format(path, sock.savefile_format())
    }

    /// Creates (truncates) `path` with the given link type, precision and snaplen.
    pub fn with_format(path: impl AsRef<Path>, format: SavefileFormat) -> Result<Self> {
        let p = path.as_ref().display().to_string();
        let io = |e| Error::os(format!("creating savefile {p}"), e);
        let mut file = BufWriter::with_capacity(64 * 1024, File::create(&path).map_err(io)?);
        file.write_all(&format.header()).map_err(io)?;
        Ok(Dumper {
            file,
            path: p,
            format,
            error: None,
        })
    }

    /// The format this dumper writes.
    pub fn format(&self) -> SavefileFormat {
        self.format
    }

    /// Appends one packet with its metadata: its timestamp at the dumper's precision
    /// (`ts_nsec` for nanoseconds, `timestamp.tv_usec` for microseconds) and its original
    /// length. A write error is kept and reported by the next [`flush`](Self::flush).
    pub fn write(&mut self, data: &[u8], meta: &Meta) {
        let frac = match self.format.precision {
            TsPrecision::Nano => meta.ts_nsec,
            TsPrecision::Micro => meta.timestamp.tv_usec as u32,
        };
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(meta.timestamp.tv_sec as u32).to_ne_bytes());
        rec[4..8].copy_from_slice(&frac.to_ne_bytes());
        rec[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        rec[12..16].copy_from_slice(&meta.len.max(data.len() as u32).to_ne_bytes());
        if self.error.is_none() {
            if let Err(e) = self
                .file
                .write_all(&rec)
                .and_then(|()| self.file.write_all(data))
            {
                self.error = Some(e);
            }
        }
    }

    /// Flushes buffered packets to the file; reports a write that failed since the last flush.
    pub fn flush(&mut self) -> Result<()> {
        let r = match self.error.take() {
            Some(e) => Err(e),
            None => self.file.flush(),
        };
        r.map_err(|e| Error::os(format!("writing savefile {}", self.path), e))
    }
}

impl std::fmt::Debug for Dumper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dumper")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}
