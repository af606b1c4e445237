//! Lab tests: netmap on a real interface or VALE switch, with the netmap module loaded.
//! `#[ignore]`d; run by `cargo xtask test-hw --iface IF` / `--vale PORT`, which checks the
//! prerequisites and sets:
//!
//! * `NETHUNS_HW_VALE` — a VALE switch (`vale0`) or port (`vale0:x`; its switch is used): two
//!   ephemeral ports are created on that switch and frames are exchanged between them.
//! * `NETHUNS_HW_IFACE` — an interface with a netmap-capable driver (native or emulated). The
//!   tests take it over in netmap mode (its traffic is diverted while they run: not the
//!   management interface). Frames go between the host stack (an `AF_PACKET` socket on the
//!   interface) and the interface's host rings (`netmap:IF^`), so no cable or peer is needed.
//!   With `NETHUNS_HW_LOOPBACK=1` (the port is cabled back to itself or to a reflector), frames
//!   sent on the hardware TX rings must come back on the hardware RX rings.
//!
//! Run by hand: `NETHUNS_HW_VALE=vale0 cargo test -p nethuns-netmap --release -- --ignored
//! --test-threads=1 lab_`.

#![cfg(any(target_os = "linux", target_os = "freebsd"))]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nethuns_netmap::{Error, NetmapFlags, Sock, Socket, Token};
use nethuns_testnet::frames;

const N: u32 = 2000;
const DEADLINE: Duration = Duration::from_secs(20);

fn env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set (cargo xtask test-hw sets it)");
            None
        }
    }
}

fn len_of(seq: u32) -> usize {
    60 + (seq as usize * 37) % 1400
}

/// Receives until `want` test frames arrived or the deadline; checks each frame's content and
/// returns their sequence numbers in arrival order. Other traffic is ignored.
fn receive(sock: &Sock, want: usize, lens: impl Fn(u32) -> usize) -> Vec<u32> {
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < end {
        match sock.recv() {
            Ok((p, meta)) => {
                assert_eq!(meta.len as usize, p.len());
                if let Some(seq) = frames::seq_of(&p) {
                    frames::check(&p, seq, lens(seq)).unwrap();
                    got.push(seq);
                }
            }
            Err(Error::NoPacket) => {
                sock.wait_readable(Duration::from_millis(10)).unwrap();
            }
            Err(e) => panic!("recv on {:?}: {e}", sock.portspec()),
        }
    }
    got
}

fn assert_exact(got: &[u32], n: u32, what: &str) {
    let want: Vec<u32> = (0..n).collect();
    assert_eq!(got.len(), n as usize, "{what}: {} of {n} frames", got.len());
    assert_eq!(got, &want[..], "{what}: frames out of order or duplicated");
}

fn send_all(sock: &Sock, n: u32) {
    let end = Instant::now() + DEADLINE;
    for seq in 0..n {
        let f = frames::frame(seq, len_of(seq));
        loop {
            match sock.send(&f) {
                Ok(()) => break,
                Err(Error::NoMemory) if Instant::now() < end => sock.flush(),
                Err(e) => panic!("send {seq} on {:?}: {e}", sock.portspec()),
            }
        }
        if seq % 64 == 63 {
            sock.try_flush().unwrap();
        }
    }
    sock.try_flush().unwrap();
}

/// Receives `n` frames on `rx` (moved to a thread: a socket is not `Sync`) while `tx` sends
/// them; gives `rx` back with what it got.
fn across(rx: Sock, tx: &Sock, n: u32) -> (Sock, Vec<u32>) {
    let h = std::thread::spawn(move || {
        let got = receive(&rx, n as usize, len_of);
        (rx, got)
    });
    std::thread::sleep(Duration::from_millis(50));
    send_all(tx, n);
    h.join().unwrap()
}

fn vale_switch(v: &str) -> String {
    v.split(':').next().unwrap_or(v).to_string()
}

#[test]
#[ignore = "lab: needs the netmap module (cargo xtask test-hw --vale PORT)"]
fn lab_vale_exact_delivery_both_ways() {
    let Some(v) = env("NETHUNS_HW_VALE", "lab_vale_exact_delivery_both_ways") else {
        return;
    };
    let sw = vale_switch(&v);
    let pid = std::process::id();
    let a = Sock::create(&format!("{sw}:nha{pid}"), None, NetmapFlags::default()).unwrap();
    let b = Sock::create(&format!("{sw}:nhb{pid}"), None, NetmapFlags::default()).unwrap();
    assert!(a.rx_rings() >= 1 && a.tx_rings() >= 1);
    let (b, rx) = across(b, &a, N);
    assert_exact(&rx, N, "VALE a -> b");
    let (a, rx) = across(a, &b, N);
    assert_exact(&rx, N, "VALE b -> a");
    for (s, name) in [(&a, "a"), (&b, "b")] {
        let st = s.stats().unwrap();
        assert_eq!(
            (st.sent, st.send_errors, st.dropped),
            (N as u64, 0, None),
            "{name}"
        );
        assert!(st.received >= N as u64, "{name}: received {}", st.received);
        let caps = s.capabilities();
        assert_eq!(
            caps.max_frame,
            s.context().buf_size() as usize,
            "{name}: no MTU on VALE"
        );
        assert!(caps.pollable_fd.is_some() && caps.zero_copy && !caps.filters);
    }
    assert!(matches!(a.send(&[0; 13]), Err(Error::TooSmallPacket(13))));
    drop(a);
    assert_eq!(
        b.context().free_extra_buffers(),
        b.context().extra_buffers()
    );
}

#[test]
#[ignore = "lab: needs the netmap module (cargo xtask test-hw --vale PORT)"]
fn lab_vale_held_tokens_survive_syncs_and_pool_limits() {
    let Some(v) = env("NETHUNS_HW_VALE", "lab_vale_held_tokens_survive_syncs") else {
        return;
    };
    let sw = vale_switch(&v);
    let pid = std::process::id();
    let a = Sock::create(&format!("{sw}:nhc{pid}"), None, NetmapFlags::default()).unwrap();
    let b = Sock::create(
        &format!("{sw}:nhd{pid}"),
        None,
        NetmapFlags { extra_buf: 64 },
    )
    .unwrap();
    let extra = b.context().extra_buffers();
    assert!((1..=64).contains(&extra), "granted {extra}");
    // Hold as many tokens as there are extra buffers, then the next recv must say NoMemory
    // and keep the packet.
    send_all(&a, extra + 1);
    let end = Instant::now() + DEADLINE;
    let mut held: Vec<Token> = Vec::new();
    while (held.len() as u32) < extra && Instant::now() < end {
        match b.recv_token() {
            Ok((t, _)) => held.push(t),
            Err(Error::NoPacket) => {
                b.wait_readable(Duration::from_millis(10)).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(held.len() as u32, extra);
    let mut last = None;
    while Instant::now() < end {
        match b.recv_token() {
            Err(Error::NoMemory) => {
                last = Some(());
                break;
            }
            Err(Error::NoPacket) => {
                b.wait_readable(Duration::from_millis(10)).unwrap();
            }
            other => panic!("expected NoMemory, got {other:?}"),
        }
    }
    assert!(last.is_some(), "NoMemory never reported");
    // Many more frames through the rings while the tokens are held, on another thread.
    let ctx = b.context().clone();
    let checker = std::thread::spawn(move || {
        let mut seqs = BTreeSet::new();
        for t in held {
            let p = t.consume(&ctx);
            let seq = frames::seq_of(&p).unwrap();
            frames::check(&p, seq, len_of(seq)).unwrap();
            seqs.insert(seq);
        }
        seqs
    });
    let seqs = checker.join().unwrap();
    assert_eq!(seqs, (0..extra).collect());
    // The packet that met NoMemory was kept in the ring.
    let rest = receive(&b, 1, len_of);
    assert_eq!(rest, vec![extra]);
}

/// Real interface: host stack <-> host rings through `AF_PACKET` (Linux), hardware rings.
#[cfg(target_os = "linux")]
mod iface {
    use super::*;
    use std::ffi::CString;

    struct Raw {
        fd: i32,
    }

    impl Raw {
        fn open(iface: &str) -> Raw {
            let name = CString::new(iface).unwrap();
            // SAFETY: NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert!(ifindex != 0, "no interface {iface}");
            let proto = frames::ETHERTYPE.to_be();
            // SAFETY: plain socket creation.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32) };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: zeroed sockaddr_ll is valid; filled below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: `sll` is a valid sockaddr_ll of the size given.
            let r = unsafe {
                libc::bind(
                    fd,
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert!(
                r == 0,
                "bind to {iface}: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 20_000,
            };
            // SAFETY: `tv` is a valid timeval for SO_RCVTIMEO.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            Raw { fd }
        }

        fn send(&self, f: &[u8]) {
            // SAFETY: `f` is a valid buffer of its length.
            let r = unsafe { libc::send(self.fd, f.as_ptr().cast(), f.len(), 0) };
            assert_eq!(r, f.len() as isize, "{}", std::io::Error::last_os_error());
        }

        /// Incoming test frames (not our own outgoing ones) until `want` or the deadline.
        fn receive(&self, want: usize) -> Vec<u32> {
            let end = Instant::now() + DEADLINE;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 2048];
            while got.len() < want && Instant::now() < end {
                // SAFETY: zeroed sockaddr_ll is valid output storage.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: `buf` and `from` are valid for the sizes given.
                let n = unsafe {
                    libc::recvfrom(
                        self.fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        &mut from as *mut _ as *mut libc::sockaddr,
                        &mut alen,
                    )
                };
                if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let f = &buf[..n as usize];
                if let Some(seq) = frames::seq_of(f) {
                    frames::check(f, seq, len_of(seq)).unwrap();
                    got.push(seq);
                }
            }
            got
        }
    }

    impl Drop for Raw {
        fn drop(&mut self) {
            // SAFETY: our descriptor.
            unsafe { libc::close(self.fd) };
        }
    }

    const N_HOST: u32 = 500;

    #[test]
    #[ignore = "lab: needs the netmap module and a NIC (cargo xtask test-hw --iface IF)"]
    fn lab_iface_host_stack_to_host_ring_exact() {
        let Some(iface) = env(
            "NETHUNS_HW_IFACE",
            "lab_iface_host_stack_to_host_ring_exact",
        ) else {
            return;
        };
        let nm = Sock::create(&format!("netmap:{iface}^"), None, NetmapFlags::default()).unwrap();
        let raw = Raw::open(&iface);
        let h = std::thread::spawn(move || receive(&nm, N_HOST as usize, len_of));
        std::thread::sleep(Duration::from_millis(50));
        for seq in 0..N_HOST {
            raw.send(&frames::frame(seq, len_of(seq)));
        }
        let got = h.join().unwrap();
        assert_exact(&got, N_HOST, "host stack -> netmap host ring");
    }

    #[test]
    #[ignore = "lab: needs the netmap module and a NIC (cargo xtask test-hw --iface IF)"]
    fn lab_iface_host_ring_to_host_stack_exact() {
        let Some(iface) = env(
            "NETHUNS_HW_IFACE",
            "lab_iface_host_ring_to_host_stack_exact",
        ) else {
            return;
        };
        let nm = Sock::create(&format!("netmap:{iface}^"), None, NetmapFlags::default()).unwrap();
        let raw = Raw::open(&iface);
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| raw.receive(N_HOST as usize));
            std::thread::sleep(Duration::from_millis(50));
            send_all(&nm, N_HOST);
            h.join().unwrap()
        });
        assert_exact(&got, N_HOST, "netmap host ring -> host stack");
    }

    #[test]
    #[ignore = "lab: needs the netmap module and a NIC (cargo xtask test-hw --iface IF)"]
    fn lab_iface_hardware_rings_open_send_and_loopback() {
        let Some(iface) = env("NETHUNS_HW_IFACE", "lab_iface_hardware_rings") else {
            return;
        };
        let all = Sock::create(&format!("netmap:{iface}"), None, NetmapFlags::default()).unwrap();
        let rings = all.rx_rings();
        assert!(rings >= 1 && all.tx_rings() >= 1);
        drop(all);
        // Ring pair 0 by queue, and the last ring pair by suffix.
        let q0 = Sock::create(&format!("netmap:{iface}"), Some(0), NetmapFlags::default()).unwrap();
        assert_eq!((q0.rx_rings(), q0.tx_rings()), (1, 1));
        let last = format!("netmap:{iface}-{}", rings - 1);
        drop(Sock::create(&last, None, NetmapFlags::default()).unwrap());
        let beyond = format!("netmap:{iface}-{}", rings + 64);
        assert!(Sock::create(&beyond, None, NetmapFlags::default()).is_err());
        // Frames leave through the hardware TX ring: the kernel completes every slot.
        send_all(&q0, 256);
        let end = Instant::now() + DEADLINE;
        while q0.tx_pending() > 0 && Instant::now() < end {
            q0.try_flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(q0.tx_pending(), 0, "NIC did not complete transmissions");
        drop(q0);
        if std::env::var("NETHUNS_HW_LOOPBACK").is_ok_and(|v| v == "1") {
            // One socket on all rings sends in chunks and drains what came back in between.
            let nm =
                Sock::create(&format!("netmap:{iface}"), None, NetmapFlags::default()).unwrap();
            let mut got = Vec::new();
            let drain = |nm: &Sock, got: &mut Vec<u32>| loop {
                match nm.recv() {
                    Ok((p, _)) => {
                        if let Some(seq) = frames::seq_of(&p) {
                            frames::check(&p, seq, len_of(seq)).unwrap();
                            got.push(seq);
                        }
                    }
                    Err(Error::NoPacket) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            };
            for chunk in (0..N).collect::<Vec<_>>().chunks(64) {
                for &seq in chunk {
                    let f = frames::frame(seq, len_of(seq));
                    let end = Instant::now() + DEADLINE;
                    while let Err(e) = nm.send(&f) {
                        assert!(matches!(e, Error::NoMemory) && Instant::now() < end, "{e}");
                        nm.flush();
                    }
                }
                nm.try_flush().unwrap();
                drain(&nm, &mut got);
            }
            let end = Instant::now() + DEADLINE;
            while got.len() < N as usize && Instant::now() < end {
                nm.wait_readable(Duration::from_millis(10)).unwrap();
                drain(&nm, &mut got);
            }
            // Several RX rings may share the frames (RSS): compare as a set, exactly once each.
            let set: BTreeSet<u32> = got.iter().copied().collect();
            assert_eq!(set.len(), got.len(), "duplicated frames");
            assert_eq!(set, (0..N).collect(), "loopback lost frames");
        } else {
            eprintln!(
                "loopback part skipped: set NETHUNS_HW_LOOPBACK=1 when {iface} is looped back"
            );
        }
    }
}
