//! Savefiles: writing what `nethuns-dump` captures (nanosecond or microsecond timestamps, the
//! link type of the source) and reading what `nethuns-replay` sends, with the `pcap` crate's
//! savefile writer and reader.

use pcap::{Capture, Linktype, Offline, PacketHeader, Precision};

use crate::exit::ToolError;

/// The link type of a kernel interface, from its hardware type (`SIOCGIFHWADDR`), as
/// libpcap maps it: Ethernet (and loopback, which carries Ethernet headers on Linux) is
/// `EN10MB`, a tun device `RAW`. `None` if the interface cannot be read.
pub fn interface_linktype(name: &str) -> Option<Linktype> {
    let ctl = nethuns_sys_linux::netdev::ctl_socket().ok()?;
    let family = nethuns_sys_linux::netdev::hw_type(ctl, name).ok()?;
    Some(match family {
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Linktype::ETHERNET,
        libc::ARPHRD_NONE => Linktype(101), // LINKTYPE_RAW (tun)
        libc::ARPHRD_IEEE80211_RADIOTAP => Linktype(127),
        libc::ARPHRD_INFINIBAND => Linktype(247),
        _ => Linktype::ETHERNET,
    })
}

/// The link type of the savefile at `path`.
pub fn file_linktype(path: &str) -> Result<Linktype, ToolError> {
    Capture::from_file(path)
        .map(|c| c.get_datalink())
        .map_err(|e| ToolError::File(format!("opening savefile {path}: {e}")))
}

/// A savefile being written.
pub struct Writer {
    file: pcap::Savefile,
    path: String,
    nano: bool,
    snaplen: u32,
}

impl Writer {
    /// Creates (truncates) `path` for link type `link`, with nanosecond (`nano`) or
    /// microsecond timestamps; packets are cut to `snaplen` bytes.
    pub fn create(
        path: &str,
        link: Linktype,
        nano: bool,
        snaplen: u32,
    ) -> Result<Writer, ToolError> {
        let err = |e: pcap::Error| ToolError::File(format!("creating savefile {path}: {e}"));
        let precision = if nano {
            Precision::Nano
        } else {
            Precision::Micro
        };
        let dead = Capture::dead_with_precision(link, precision).map_err(err)?;
        let file = dead.savefile(path).map_err(err)?;
        Ok(Writer {
            file,
            path: path.to_string(),
            nano,
            snaplen,
        })
    }

    /// Appends a packet: `data` as received (cut to the snaplen), `len` its length on the
    /// wire, `ts_ns` its time in nanoseconds since the epoch.
    pub fn write(&mut self, data: &[u8], len: u32, ts_ns: u64) {
        let cap = data.len().min(self.snaplen as usize);
        let sub = ts_ns % 1_000_000_000;
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: (ts_ns / 1_000_000_000) as libc::time_t,
                tv_usec: if self.nano { sub } else { sub / 1000 } as libc::suseconds_t,
            },
            caplen: cap as u32,
            len: len.max(data.len() as u32),
        };
        self.file.write(&pcap::Packet::new(&header, &data[..cap]));
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> Result<(), ToolError> {
        self.file
            .flush()
            .map_err(|e| ToolError::File(format!("writing savefile {}: {e}", self.path)))
    }
}

/// A savefile being read, timestamps in nanoseconds whatever the file's precision.
pub struct Reader {
    cap: Capture<Offline>,
    path: String,
}

impl Reader {
    /// Opens `path`.
    pub fn open(path: &str) -> Result<Reader, ToolError> {
        let cap = Capture::from_file_with_precision(path, Precision::Nano)
            .map_err(|e| ToolError::File(format!("opening savefile {path}: {e}")))?;
        Ok(Reader {
            cap,
            path: path.to_string(),
        })
    }

    /// The next packet: its time in ns since the epoch and its captured bytes; `None` at the
    /// end of the file.
    pub fn next_packet(&mut self) -> Result<Option<(u64, &[u8])>, ToolError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64;
                Ok(Some((ts, p.data)))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(ToolError::File(format!(
                "reading savefile {}: {e}",
                self.path
            ))),
        }
    }
}

/// Now, in nanoseconds since the epoch (`CLOCK_REALTIME`): the timestamp of a packet whose
/// engine does not stamp packets (AF_XDP, DPDK).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
