//! Which frames of a queue the XDP program gives the socket ([`Steer`]), the options that
//! carry it ([`AfXdpOptions`]), and the eBPF program built from it (pure: no kernel here but
//! the interface's addresses, read by [`HostAddrs::of`]).
//!
//! The program looks at the Ethernet header (and one 802.1Q / 802.1ad tag), then at the IPv4
//! or IPv6 header and the TCP/UDP destination port where the match asks; a frame that does
//! not match, or is too short to tell, gets `XDP_PASS` and goes on to the kernel's stack as if
//! no program were there. A frame that matches is redirected to the XSKMAP entry of its RX
//! queue (and passed to the kernel if no socket is bound there).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use nethuns_core::{Error, Result};

use crate::abi::{
    insn, Insn, BPF_FUNC_REDIRECT_MAP, BPF_PSEUDO_MAP_FD, XDP_MD_RX_QUEUE_INDEX, XDP_PASS,
};
pub use crate::object::XdpObject;

/// The redirect program: every frame arriving on queue `q` goes to the socket at `xsks[q]`, or
/// to the kernel stack (`XDP_PASS`) when no socket is there.
///
/// ```text
/// r2 = *(u32 *)(r1 + offsetof(xdp_md, rx_queue_index))
/// r1 = map_fd ll
/// r3 = XDP_PASS
/// call bpf_redirect_map
/// exit
/// ```
pub(crate) fn redirect_program(map_fd: i32) -> [Insn; 6] {
    [
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0), // BPF_LDX | BPF_W | BPF_MEM
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // BPF_LD | BPF_DW | BPF_IMM
        insn(0, 0, 0, 0, 0),
        insn(0xb7, 3, 0, 0, XDP_PASS), // BPF_ALU64 | BPF_MOV | BPF_K
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP), // BPF_JMP | BPF_CALL
        insn(0x95, 0, 0, 0, 0),        // BPF_JMP | BPF_EXIT
    ]
}

/// Which frames of its queue the socket receives; the others go to the kernel's stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Steer {
    /// Every frame of the queue except what the host itself needs to stay reachable: ARP,
    /// ICMPv6 (neighbour discovery, ping6), and IPv4/IPv6 packets addressed to one of the
    /// interface's addresses (as they were at `create`) or to 255.255.255.255. On an
    /// interface without addresses that is every frame. The default: a capture or forwarding
    /// program on a NIC the host is managed through leaves ARP, ping and SSH alone.
    #[default]
    ExceptHost,
    /// Only the frames that [`Match`] selects: "what the user asked for". Everything else,
    /// ARP and the host's own traffic included, goes to the kernel.
    Match(Match),
    /// Every frame of the queue, nothing to the kernel's stack (what C nethuns and libxdp's
    /// default program do). `create` warns once per interface on stderr when that interface
    /// carries IP addresses: the host cannot be reached through that queue while it runs.
    All,
    /// The user's own XDP program from an ELF object file, which decides itself what goes to
    /// the sockets (through its XSKMAP) and what to the kernel.
    Program(XdpObject),
}

/// A frame filter of the steering program: every field that is `Some` must match. The
/// EtherType is the one after at most one 802.1Q/802.1ad tag. `ip_proto` and `dst_port`
/// look into IPv4 and IPv6 packets (IPv6 extension headers are not followed: such a packet
/// does not match); `dst_port` matches TCP and UDP only (or the `ip_proto` given) and never
/// a non-first IPv4 fragment, which has no port.
///
/// ```
/// use nethuns_afxdp::{Match, Steer};
/// // UDP to port 4789 (VXLAN), IPv4 or IPv6:
/// let vxlan = Steer::Match(Match { ip_proto: Some(17), dst_port: Some(4789), ..Match::default() });
/// // Every IPv4 packet:
/// let v4 = Steer::Match(Match { ethertype: Some(0x0800), ..Match::default() });
/// # let _ = (vxlan, v4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    /// The EtherType (host order, e.g. `0x0800`).
    pub ethertype: Option<u16>,
    /// The IP protocol / IPv6 next header (`6` TCP, `17` UDP, `1` ICMP …).
    pub ip_proto: Option<u8>,
    /// The TCP or UDP destination port (host order).
    pub dst_port: Option<u16>,
}

/// Options of an AF_XDP socket beyond the spec's [`AfXdpFlags`](crate::AfXdpFlags): given per
/// socket with [`Sock::create_with_options`](crate::Sock::create_with_options), or to every
/// later [`Socket::create`](nethuns_core::Socket::create) with
/// [`AfXdpOptions::set_process_default`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfXdpOptions {
    /// Which frames the steering program gives the socket (default
    /// [`Steer::ExceptHost`]). Sockets of one process on one interface share one program, so
    /// they must ask for the same steering.
    pub steer: Steer,
}

static PROCESS_OPTIONS: Mutex<Option<AfXdpOptions>> = Mutex::new(None);

impl AfXdpOptions {
    /// Checks the options before anything touches the kernel; an error names the field.
    pub fn validate(&self) -> Result<()> {
        if let Steer::Match(m) = &self.steer {
            m.validate()?;
        }
        Ok(())
    }

    /// Sets the options that [`Socket::create`](nethuns_core::Socket::create) uses from now
    /// on in this process (`None`: back to the defaults), for generic code that passes only
    /// flags.
    pub fn set_process_default(opts: Option<AfXdpOptions>) -> Result<()> {
        if let Some(o) = &opts {
            o.validate()?;
        }
        *PROCESS_OPTIONS.lock().unwrap_or_else(|p| p.into_inner()) = opts;
        Ok(())
    }

    /// The options [`Socket::create`](nethuns_core::Socket::create) uses now.
    pub fn process_default() -> AfXdpOptions {
        PROCESS_OPTIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

impl Match {
    /// Checks that the fields make a match some frame can satisfy.
    pub fn validate(&self) -> Result<()> {
        let l4 = self.ip_proto.is_some() || self.dst_port.is_some();
        if let Some(et) = self.ethertype {
            if l4 && et != ETH_P_IP && et != ETH_P_IPV6 {
                return Err(Error::flag(
                    "steer",
                    format!(
                        "ethertype {et:#06x} with ip_proto/dst_port: only IPv4 (0x0800) and \
                         IPv6 (0x86dd) packets have them"
                    ),
                ));
            }
            if et == ETH_P_8021Q || et == ETH_P_8021AD {
                return Err(Error::flag(
                    "steer",
                    format!(
                        "ethertype {et:#06x}: the match looks past one VLAN tag; give the \
                         inner EtherType"
                    ),
                ));
            }
        }
        if let (Some(_), Some(p)) = (self.dst_port, self.ip_proto) {
            if p != IPPROTO_TCP && p != IPPROTO_UDP {
                return Err(Error::flag(
                    "steer",
                    format!("dst_port with ip_proto {p}: only TCP (6) and UDP (17) have ports"),
                ));
            }
        }
        Ok(())
    }
}

/// The interface's addresses the [`Steer::ExceptHost`] program passes to the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HostAddrs {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

/// Most addresses of each family the program compares (more are not looked at: frames to
/// them go to the socket).
const MAX_ADDRS: usize = 16;

impl HostAddrs {
    /// The addresses of interface `ifname` in the calling thread's namespace.
    pub(crate) fn of(ifname: &str) -> std::io::Result<HostAddrs> {
        let (v4, v6) = crate::sys::interface_addrs(ifname)?;
        let mut out = HostAddrs { v4, v6 };
        out.v4.truncate(MAX_ADDRS);
        out.v6.truncate(MAX_ADDRS);
        Ok(out)
    }

    /// Whether the host is reachable through the interface: an IPv4 address, or an IPv6
    /// address other than link-local.
    pub(crate) fn routable(&self) -> bool {
        !self.v4.is_empty() || self.v6.iter().any(|a| (a.segments()[0] & 0xffc0) != 0xfe80)
    }
}

/// What the tail of the program does with a frame that matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Runs this program, which takes the context in r1 and ends in its own exit: the
    /// redirect program (`bpf_redirect_map` on the XSKMAP), or the one that writes RX
    /// metadata and then redirects. Its jumps are relative, so it runs appended as it is.
    Code(Vec<Insn>),
    /// Return this XDP action (the tests tell the two paths apart with `BPF_PROG_TEST_RUN`).
    #[cfg_attr(not(test), allow(dead_code))]
    Return(i32),
}

/// A forward jump target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

/// A tiny eBPF assembler: forward jumps to labels, patched when the labels are placed.
#[derive(Default)]
struct Asm {
    code: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

// Registers: r6 = ctx, r2 = data, r3 = data_end, r4 = bounds scratch, r5 = EtherType,
// r7 = the L3 header, r8 = the IP protocol / addresses, r9 = scratch.
const CTX: u8 = 6;
const DATA: u8 = 2;
const END: u8 = 3;
const TMP: u8 = 4;
const ET: u8 = 5;
const L3: u8 = 7;
const PROTO: u8 = 8;
const SCR: u8 = 9;

/// `value` as the BPF program reads it: `len` bytes of network order loaded host-endian.
fn wire16(v: u16) -> i32 {
    i32::from(u16::from_ne_bytes(v.to_be_bytes()))
}
fn wire32(b: [u8; 4]) -> i32 {
    i32::from_ne_bytes(b)
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn place(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }
    fn emit(&mut self, i: Insn) {
        self.code.push(i);
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.code.len(), to));
        self.emit(insn(code, dst, src, 0, imm));
    }
    fn ja(&mut self, to: Label) {
        self.jump(0x05, 0, 0, 0, to);
    }
    fn jeq(&mut self, reg: u8, imm: i32, to: Label) {
        self.jump(0x15, reg, 0, imm, to);
    }
    fn jne(&mut self, reg: u8, imm: i32, to: Label) {
        self.jump(0x55, reg, 0, imm, to);
    }
    /// 32-bit compare (JMP32 | JEQ | K): an address word with its top bit set compares right.
    fn jeq32(&mut self, reg: u8, imm: i32, to: Label) {
        self.jump(0x16, reg, 0, imm, to);
    }
    fn jne32(&mut self, reg: u8, imm: i32, to: Label) {
        self.jump(0x56, reg, 0, imm, to);
    }
    /// `if base + n > data_end goto to`.
    fn need(&mut self, base: u8, n: i32, to: Label) {
        self.emit(insn(0xbf, TMP, base, 0, 0)); // r4 = base
        self.emit(insn(0x07, TMP, 0, 0, n)); // r4 += n
        self.jump(0x2d, TMP, END, 0, to); // if r4 > r3 goto
    }
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        // BPF_LDX | BPF_MEM | size (W 0x00, H 0x08, B 0x10)
        self.emit(insn(0x61 | size, dst, src, off, 0));
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].expect("every label is placed");
            self.code[at].set_off((target as isize - at as isize - 1) as i16);
        }
        self.code
    }
}

const W: u8 = 0x00;
const H: u8 = 0x08;
const B: u8 = 0x10;

/// The steering program for `steer` (with the interface's `addrs` for
/// [`Steer::ExceptHost`]), ending in `tail` for the frames it selects (`Steer::All`: the tail
/// alone).
pub(crate) fn program(steer: &Steer, addrs: &HostAddrs, tail: Tail) -> Vec<Insn> {
    if let (Steer::All, Tail::Code(code)) = (steer, &tail) {
        return code.clone();
    }
    let mut a = Asm::default();
    let pass = a.label();
    let take = a.label();
    a.emit(insn(0xbf, CTX, 1, 0, 0)); // r6 = ctx
    if *steer != Steer::All {
        a.ldx(W, DATA, 1, 0); // r2 = ctx->data
        a.ldx(W, END, 1, 4); // r3 = ctx->data_end
        a.need(DATA, 14, pass);
        a.ldx(H, ET, DATA, 12);
        a.emit(insn(0xbf, L3, DATA, 0, 0)); // r7 = data
        a.emit(insn(0x07, L3, 0, 0, 14)); // r7 += 14
        let tagged = a.label();
        let untagged = a.label();
        a.jeq(ET, wire16(ETH_P_8021Q), tagged);
        a.jne(ET, wire16(ETH_P_8021AD), untagged);
        a.place(tagged);
        a.need(DATA, 18, pass);
        a.ldx(H, ET, DATA, 16);
        a.emit(insn(0x07, L3, 0, 0, 4)); // r7 += 4
        a.place(untagged);
        match steer {
            Steer::Match(m) => match_body(&mut a, m, pass, take),
            Steer::ExceptHost => except_host_body(&mut a, addrs, pass, take),
            Steer::All | Steer::Program(_) => {
                unreachable!("All returns early; Program is loaded from its object")
            }
        }
    }
    a.place(take);
    match tail {
        Tail::Code(code) => {
            a.emit(insn(0xbf, 1, CTX, 0, 0)); // r1 = ctx
            for i in code {
                a.emit(i);
            }
        }
        Tail::Return(action) => {
            a.emit(insn(0xb7, 0, 0, 0, action));
            a.emit(insn(0x95, 0, 0, 0, 0));
        }
    }
    a.place(pass);
    a.emit(insn(0xb7, 0, 0, 0, XDP_PASS)); // r0 = XDP_PASS
    a.emit(insn(0x95, 0, 0, 0, 0));
    a.finish()
}

fn match_body(a: &mut Asm, m: &Match, pass: Label, take: Label) {
    if let Some(et) = m.ethertype {
        a.jne(ET, wire16(et), pass);
    }
    if m.ip_proto.is_none() && m.dst_port.is_none() {
        a.ja(take);
        return;
    }
    let v6 = a.label();
    let v4 = a.label();
    a.jeq(ET, wire16(ETH_P_IP), v4);
    a.jeq(ET, wire16(ETH_P_IPV6), v6);
    a.ja(pass);
    // IPv4
    a.place(v4);
    a.need(L3, 20, pass);
    a.ldx(B, PROTO, L3, 9);
    proto_check(a, m, pass);
    if m.dst_port.is_some() {
        a.ldx(H, SCR, L3, 6); // flags + fragment offset
        a.emit(insn(0x57, SCR, 0, 0, wire16(0x1fff))); // r9 &= offset bits
        a.jne(SCR, 0, pass); // a later fragment has no port
        a.ldx(B, SCR, L3, 0);
        a.emit(insn(0x57, SCR, 0, 0, 0x0f)); // IHL
        a.emit(insn(0x67, SCR, 0, 0, 2)); // r9 <<= 2
        a.jump(0xa5, SCR, 0, 20, pass); // if r9 < 20 goto pass
        a.emit(insn(0x0f, L3, SCR, 0, 0)); // r7 += r9: the L4 header
        port_check(a, m, pass);
    }
    a.ja(take);
    // IPv6
    a.place(v6);
    a.need(L3, 40, pass);
    a.ldx(B, PROTO, L3, 6);
    proto_check(a, m, pass);
    if m.dst_port.is_some() {
        a.emit(insn(0x07, L3, 0, 0, 40));
        port_check(a, m, pass);
    }
    a.ja(take);
}

fn proto_check(a: &mut Asm, m: &Match, pass: Label) {
    match (m.ip_proto, m.dst_port) {
        (Some(p), _) => a.jne(PROTO, i32::from(p), pass),
        (None, Some(_)) => {
            let ok = a.label();
            a.jeq(PROTO, i32::from(IPPROTO_TCP), ok);
            a.jne(PROTO, i32::from(IPPROTO_UDP), pass);
            a.place(ok);
        }
        (None, None) => {}
    }
}

fn port_check(a: &mut Asm, m: &Match, pass: Label) {
    if let Some(port) = m.dst_port {
        a.need(L3, 4, pass);
        a.ldx(H, SCR, L3, 2); // TCP and UDP: destination port at offset 2
        a.jne(SCR, wire16(port), pass);
    }
}

fn except_host_body(a: &mut Asm, addrs: &HostAddrs, pass: Label, take: Label) {
    a.jeq(ET, wire16(ETH_P_ARP), pass);
    let v4 = a.label();
    let v6 = a.label();
    a.jeq(ET, wire16(ETH_P_IP), v4);
    a.jeq(ET, wire16(ETH_P_IPV6), v6);
    a.ja(take);
    // IPv4: to one of the addresses, or limited broadcast.
    a.place(v4);
    a.need(L3, 20, pass);
    a.ldx(W, PROTO, L3, 16);
    a.jeq32(PROTO, -1, pass);
    for ip in &addrs.v4 {
        a.jeq32(PROTO, wire32(ip.octets()), pass);
    }
    a.ja(take);
    // IPv6: ICMPv6 (neighbour discovery), or to one of the addresses.
    a.place(v6);
    a.need(L3, 40, pass);
    a.ldx(B, PROTO, L3, 6);
    a.jeq(PROTO, i32::from(IPPROTO_ICMPV6), pass);
    for ip in &addrs.v6 {
        let next = a.label();
        let o = ip.octets();
        for w in 0..4 {
            a.ldx(W, SCR, L3, 24 + 4 * w as i16);
            let word = [o[4 * w], o[4 * w + 1], o[4 * w + 2], o[4 * w + 3]];
            if w < 3 {
                a.jne32(SCR, wire32(word), next);
            } else {
                a.jeq32(SCR, wire32(word), pass);
            }
        }
        a.place(next);
    }
    a.ja(take);
}

/// Interfaces (namespace, ifindex) already warned about taking the whole queue.
static WARNED: Mutex<Vec<((u64, u64), u32)>> = Mutex::new(Vec::new());

/// Warns once per interface on stderr that `Steer::All` takes the whole queue of an interface
/// that carries IP addresses.
pub(crate) fn warn_all(key: ((u64, u64), u32), ifname: &str, queue: u32, addrs: &HostAddrs) {
    if !addrs.routable() {
        return;
    }
    let mut w = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if w.contains(&key) {
        return;
    }
    w.push(key);
    let list: Vec<String> = addrs
        .v4
        .iter()
        .map(|a| a.to_string())
        .chain(addrs.v6.iter().map(|a| a.to_string()))
        .collect();
    eprintln!(
        "nethuns AF_XDP: warning: taking every frame of {ifname} queue {queue} (Steer::All), \
         which carries {}: ARP, ping and connections to those addresses through this queue \
         stop while the socket is open; AfXdpOptions {{ steer: Steer::ExceptHost }} (the \
         default) or Steer::Match leaves them to the kernel",
        list.join(", ")
    );
}

#[cfg(test)]
#[path = "steer_tests.rs"]
mod tests;
