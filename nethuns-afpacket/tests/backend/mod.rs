//! How the shared test suites (conformance, faults) open this backend.

use nethuns_afpacket::{AfPacketFlags, Sock};
use nethuns_testnet::conformance::Backend;

/// The backend, as the conformance suite and the fault scenarios open it.
pub struct AfPacket;

/// Packets of the suite's 64-byte frames in one page-sized block: each takes its header and
/// padding (82 bytes before the frame) rounded up to 16, so about 160 bytes.
const PACKETS_PER_PAGE_BLOCK: usize = 4096 / 160;

impl Backend for AfPacket {
    type S = Sock;
    const NAME: &'static str = "af-packet";

    fn portspec(iface: &str) -> String {
        iface.to_owned()
    }

    /// A modest ring: 16 blocks of 64 KiB, blocks handed over after 1 ms at most.
    fn flags() -> AfPacketFlags {
        AfPacketFlags {
            block_size: 1 << 16,
            block_count: 16,
            block_timeout_ms: 1,
            ..AfPacketFlags::default()
        }
    }

    /// A ring of page-sized blocks, as few as hold about `buffers` small frames (at least 2).
    fn small_pool_flags(buffers: usize) -> Option<AfPacketFlags> {
        let page = nethuns_afpacket::page_size();
        Some(AfPacketFlags {
            block_size: page as u32,
            block_count: buffers
                .div_ceil(PACKETS_PER_PAGE_BLOCK * page / 4096)
                .max(2) as u32,
            frame_size: 2048,
            ..Self::flags()
        })
    }

    /// TX slots large enough for a 9018-byte frame (`frame_size - 48`); 64 KiB blocks hold
    /// several received jumbo frames.
    fn jumbo_flags() -> Result<AfPacketFlags, String> {
        Ok(AfPacketFlags {
            frame_size: 9088,
            tx_frame_count: 64,
            ..Self::flags()
        })
    }

    #[cfg(feature = "pcap")]
    fn filter_flags(expr: &str) -> Option<AfPacketFlags> {
        Some(AfPacketFlags {
            filter: Some(nethuns_afpacket::Filter::Expression(expr.to_owned())),
            ..Self::flags()
        })
    }

    /// Every block is back with the kernel (or with the socket) once the case dropped its
    /// payloads and tokens: at most the socket's own open block is out.
    fn check(sock: &Sock) -> Result<(), String> {
        use nethuns_afpacket::Socket;
        let in_use = sock.context().blocks_in_use();
        if in_use > 1 {
            return Err(format!(
                "{in_use} RX blocks still held after the case released everything"
            ));
        }
        Ok(())
    }
}
