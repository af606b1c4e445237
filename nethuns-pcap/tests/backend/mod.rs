//! How the shared test suites (conformance, faults) open this backend.

use nethuns_pcap::{PcapFlags, Sock};
use nethuns_testnet::conformance::Backend;

/// The backend, as the conformance suite and the fault scenarios open it.
pub struct Pcap;

impl Backend for Pcap {
    type S = Sock;
    const NAME: &'static str = "pcap";

    fn portspec(iface: &str) -> String {
        iface.to_owned()
    }

    fn flags() -> PcapFlags {
        PcapFlags {
            buffer_count: 1024,
            ..PcapFlags::default()
        }
    }

    fn small_pool_flags(buffers: usize) -> Option<PcapFlags> {
        Some(PcapFlags {
            buffer_count: buffers,
            ..PcapFlags::default()
        })
    }

    fn filter_flags(expr: &str) -> Option<PcapFlags> {
        Some(PcapFlags {
            filter: Some(expr.to_owned()),
            ..Self::flags()
        })
    }

    /// `buffer_size` bounds what `send` takes; the receive pool follows `snaplen` by itself.
    fn jumbo_flags() -> Result<PcapFlags, String> {
        Ok(PcapFlags {
            buffer_size: 9018,
            ..Self::flags()
        })
    }

    fn savefile_portspec(path: &str) -> Option<String> {
        Some(format!("file:{path}"))
    }

    /// libpcap's live ring in immediate mode is cut in snaplen-sized slots (65535 bytes
    /// here): few of them, so the soak keeps few frames in flight.
    fn soak_window() -> u64 {
        24
    }

    /// Every pool buffer is free again but the one the socket keeps ready for the next
    /// packet and one a case may still hold.
    fn check(sock: &Sock) -> Result<(), String> {
        use nethuns_pcap::Socket;
        let ctx = sock.context();
        let in_use = ctx.pool().capacity() - ctx.free_buffers();
        if in_use > 2 {
            return Err(format!(
                "{in_use} pool buffers still out after the case released everything"
            ));
        }
        Ok(())
    }
}
