//! The one list of the workspace's backends: the name each has on every command line (the
//! tools' `--backend`, xtask's `--only` and `--backends`), its cargo feature, and the order the
//! tables list them in. xtask includes this file (`#[path]`, xtask/src/backends.rs) and adds
//! what only it needs (crate names, veth portspecs, raw loops), so a backend is added here,
//! once.

/// A backend of the workspace.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// libpcap (feature `pcap`)
    Pcap,
    /// AF_PACKET TPACKET_v3 (feature `af-packet`)
    #[value(name = "af-packet", alias = "afpacket", alias = "af_packet")]
    AfPacket,
    /// AF_XDP (feature `af-xdp`)
    #[value(name = "af-xdp", alias = "afxdp", alias = "af_xdp")]
    AfXdp,
    /// DPDK (feature `dpdk`)
    Dpdk,
    /// netmap (feature `netmap`)
    Netmap,
}

impl Backend {
    /// Every backend, in the order the tables list them.
    pub const ALL: [Backend; 5] = [
        Backend::Pcap,
        Backend::AfPacket,
        Backend::AfXdp,
        Backend::Dpdk,
        Backend::Netmap,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Pcap => "pcap",
            Backend::AfPacket => "af-packet",
            Backend::AfXdp => "af-xdp",
            Backend::Dpdk => "dpdk",
            Backend::Netmap => "netmap",
        }
    }

    /// The cargo feature of the `nethuns` facade and of `nethuns-tools` that compiles it in
    /// (the same as its name).
    pub fn feature(self) -> &'static str {
        self.name()
    }
}
