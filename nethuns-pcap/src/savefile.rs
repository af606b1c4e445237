//! [`Dumper`]: writing packets to a `.pcap` savefile that tcpdump and Wireshark read.

use std::path::Path;

use nethuns_core::{Error, Result};
use pcap::{Capture, Linktype, PacketHeader, Savefile};

use crate::Meta;

/// Writes Ethernet packets to a savefile.
///
/// ```no_run
/// use nethuns_pcap::{Dumper, PcapFlags, Sock, Socket};
///
/// let sock = Sock::create("eth0", None, PcapFlags::default())?;
/// let mut dump = Dumper::create("/tmp/out.pcap")?;
/// if let Ok((packet, meta)) = sock.recv() {
///     dump.write(&packet, &meta);
/// }
/// dump.flush()?;
/// # Ok::<(), nethuns_core::Error>(())
/// ```
pub struct Dumper {
    file: Savefile,
    path: String,
}

impl Dumper {
    /// Creates (truncates) `path` as an Ethernet savefile.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref().display().to_string();
        let dead = Capture::dead(Linktype::ETHERNET)
            .map_err(|e| Error::engine("pcap", format!("creating savefile {p}"), e))?;
        let file = dead
            .savefile(&path)
            .map_err(|e| Error::engine("pcap", format!("creating savefile {p}"), e))?;
        Ok(Dumper { file, path: p })
    }

    /// Appends one packet with its metadata (timestamp and original length).
    pub fn write(&mut self, data: &[u8], meta: &Meta) {
        let header = PacketHeader {
            ts: meta.timestamp,
            caplen: data.len() as u32,
            len: meta.len.max(data.len() as u32),
        };
        self.file.write(&pcap::Packet::new(&header, data));
    }

    /// Flushes buffered packets to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::engine("pcap", format!("flushing savefile {}", self.path), e))
    }
}
