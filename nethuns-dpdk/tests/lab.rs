//! Lab tests on a real NIC: DPDK on the PCI device `NETHUNS_HW_PCI` names (bound to vfio-pci
//! or uio_pci_generic), with hugepages. `cargo xtask test-hw --pci ADDR` checks those
//! prerequisites, then runs these `#[ignore]`d tests; `cargo xtask test-vm` runs them in a
//! QEMU guest on an emulated e1000e (vfio-pci behind an emulated IOMMU, then
//! uio_pci_generic); a plain `cargo test` only lists them as ignored.
//!
//! Environment:
//! - `NETHUNS_HW_PCI=ADDR`: the NIC. Unset: every test prints why it skips, and passes.
//! - `NETHUNS_HW_PEER=IF`: a kernel interface of this host cabled to ADDR; the delivery tests
//!   use a plain AF_PACKET raw socket on it (promiscuous) as the other end.
//! - `NETHUNS_HW_LOOPBACK=1`: ADDR is cabled back to itself or to a reflector (which may
//!   rewrite MAC addresses; everything after them is checked): the socket gets what it sends.
//!
//! Without a peer the delivery tests print why they skip. The link must come up within 15 s
//! (a cable to the peer, a loopback plug, a reflector or a switch).
//!
//! One EAL per process: every test initialises it with the same arguments (hugepages,
//! `-a ADDR`, a file prefix unique to the process, `--in-memory`), which DPDK does once and
//! later calls accept; a lock runs the tests one at a time (a port belongs to one socket).

#[path = "lab/peer.rs"]
mod peer;
#[path = "lab/traffic.rs"]
mod traffic;

use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nethuns_dpdk::{
    DpdkError, DpdkFlags, DpdkOptions, Eal, Error, PortKind, PortSpec, Sock, Socket, Token,
};
use nethuns_testnet::frames;

use peer::Peer;
use traffic::*;

/// Frames per delivery check.
const N: u32 = 2000;
/// Frames of the TX exactness check.
const N_TX: u32 = 4000;
/// Frames sent on each queue.
const N_QUEUE: u32 = 512;
/// Queues tested one by one (when the NIC has that many).
const MAX_QUEUES: u16 = 4;
/// Flows of the RSS check (each sent twice).
const FLOWS: u32 = 32;

fn dpdk_code(e: &Error) -> Option<i32> {
    e.engine_source::<DpdkError>().map(|d| d.code)
}

static LAB: Mutex<()> = Mutex::new(());

/// The NIC under test, and the right to use it (tests run one at a time).
struct Lab {
    pci: String,
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// The EAL arguments for the NIC: hugepages and PCI (no `--no-huge`, no `--no-pci`), only
/// this device, a per-process file prefix, no files left behind.
fn eal_args(pci: &str) -> Vec<String> {
    let lcores = Eal::default_args()
        .into_iter()
        .find(|a| a.starts_with("--lcores="))
        .expect("the default arguments pick the lcore");
    vec![
        "-a".into(),
        pci.into(),
        format!("--file-prefix=nethuns-lab-{}", std::process::id()),
        "--in-memory".into(),
        "--no-telemetry".into(),
        lcores,
        "--log-level=*:notice".into(),
    ]
}

/// The NIC of `NETHUNS_HW_PCI` with the EAL started on it; `None` (printed) when unset.
/// An EAL that cannot start is a failure, with DPDK's error.
fn lab(test: &str) -> Option<Lab> {
    let guard = LAB.lock().unwrap_or_else(|p| p.into_inner());
    let value = match std::env::var("NETHUNS_HW_PCI") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => {
            say!(
                "SKIPPED {test}: NETHUNS_HW_PCI is not set (cargo xtask test-hw --pci ADDR sets \
                 it: a NIC bound to vfio-pci, and hugepages)"
            );
            return None;
        }
    };
    let spec = PortSpec::parse(&value).unwrap_or_else(|e| panic!("NETHUNS_HW_PCI: {e}"));
    assert_eq!(
        spec.kind,
        PortKind::Pci,
        "NETHUNS_HW_PCI={value:?} is no PCI address"
    );
    let args = eal_args(&spec.name);
    assert!(!args.iter().any(|a| a == "--no-huge" || a == "--no-pci"));
    if let Err(e) = Eal::empty().args(args).init() {
        panic!(
            "{test}: the DPDK EAL with hugepages and {pci} did not start: {e}\n  (root? {pci} \
             bound to vfio-pci? hugepages reserved and free?)",
            pci = spec.name
        );
    }
    Some(Lab {
        pci: spec.name,
        _one_at_a_time: guard,
    })
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_port_info_link_and_queues() {
    let Some(lab) = lab("lab_dpdk_port_info_link_and_queues") else {
        return;
    };
    let pci = lab.pci.clone();
    let sock = Sock::create(&pci, Some(0), DpdkFlags::default())
        .unwrap_or_else(|e| panic!("socket on {pci} queue 0: {e}"));
    let info = sock.port_info().clone();
    say!("{pci}: {info:?}");
    assert_eq!(
        (info.name.as_str(), info.bus.as_str()),
        (pci.as_str(), "pci")
    );
    assert!(!info.driver.is_empty());
    assert!(
        info.max_rx_queues >= 1 && info.max_tx_queues >= 1,
        "{info:?}"
    );
    assert!(
        info.mtu >= 1500,
        "the tests send 1514-byte frames: {info:?}"
    );
    assert_ne!(info.mac, [0; 6], "{info:?}");
    let link = link_up(&sock);
    say!(
        "{pci}: {link:?}, RSS {}, RX timestamps {}",
        sock.rss_enabled(),
        sock.has_rx_timestamp()
    );
    // A port belongs to one socket.
    let e = Sock::create(&pci, Some(0), DpdkFlags::default()).unwrap_err();
    assert_eq!(dpdk_code(&e), Some(libc::EBUSY), "{e}");
    assert!(e.to_string().contains(&pci), "{e}");
    drop(sock);
    // A queue the NIC does not have.
    let beyond = usize::from(info.max_rx_queues.max(info.max_tx_queues));
    match Sock::create(&pci, Some(beyond), DpdkFlags::default()) {
        Err(Error::InvalidPortspec { reason, .. }) => {
            assert!(reason.contains(&format!("queue {beyond}")), "{reason}")
        }
        other => panic!("queue {beyond}: {other:?}"),
    }
    // One socket per queue, each on its own thread, one after the other: exact TX counts.
    let nq = info.max_rx_queues.min(info.max_tx_queues).min(MAX_QUEUES);
    for q in 0..nq {
        let spec = pci.clone();
        let (queue, sent) = std::thread::spawn(move || {
            let pci = spec;
            let sock = Sock::create(&pci, Some(usize::from(q)), DpdkFlags::default())
                .unwrap_or_else(|e| panic!("socket on {pci} queue {q}: {e}"));
            assert_eq!(sock.queue(), q);
            let mut pacer = Pacer::new(link_up(&sock), f64::INFINITY);
            let before = sock.native_stats().unwrap();
            let frames: Vec<Vec<u8>> = (0..N_QUEUE)
                .map(|s| frames::frame(s, size_of_frame(s)))
                .collect();
            send_paced(&sock, &frames, &mut pacer);
            let after = stats_after_tx(&sock, before.opackets + u64::from(N_QUEUE));
            assert_eq!(after.tx_dropped, 0, "queue {q}: {after:?}");
            (sock.queue(), after.opackets - before.opackets)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert_eq!(
            sent,
            u64::from(N_QUEUE),
            "queue {queue}: opackets rose by {sent}"
        );
        say!("{pci} queue {queue}: {sent} frames out, on its own thread");
    }
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_tx_exact_and_mempool_returns() {
    let Some(lab) = lab("lab_dpdk_tx_exact_and_mempool_returns") else {
        return;
    };
    let flags = DpdkFlags::default();
    let sock = Sock::create(&lab.pci, Some(0), flags.clone())
        .unwrap_or_else(|e| panic!("socket on {}: {e}", lab.pci));
    let mut pacer = Pacer::new(link_up(&sock), f64::INFINITY);
    let ctx = sock.context().clone();
    // The RX ring holds its mbufs from the start; nothing is received here.
    let ring = ctx.in_use();
    let before = sock.native_stats().unwrap();
    let frames: Vec<Vec<u8>> = (0..N_TX)
        .map(|s| frames::frame(s, size_of_frame(s)))
        .collect();
    send_paced(&sock, &frames, &mut pacer);
    assert_eq!(sock.pending(), 0);
    let after = stats_after_tx(&sock, before.opackets + u64::from(N_TX));
    assert_eq!(after.tx_dropped, 0, "{after:?}");
    assert_eq!(after.oerrors, before.oerrors, "{after:?}");
    assert_eq!(
        after.opackets - before.opackets,
        u64::from(N_TX),
        "opackets must rise by exactly {N_TX}: {before:?} -> {after:?}"
    );
    // The TX ring gives the completed mbufs back: what stays out is the RX ring, the socket's
    // TX stash (at most a burst) and at most one group of descriptors the NIC reports done
    // together (tx_rs_thresh, a burst by default). Exactly none once the socket is gone.
    let slack = 2 * nethuns_dpdk::BURST as u32;
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match sock.tx_done_cleanup() {
            Ok(_) if ctx.in_use() <= ring + slack => break,
            Ok(_) if Instant::now() < end => sleep(Duration::from_millis(10)),
            Ok(_) => panic!(
                "{} mbufs still out after the TX ring drained (RX ring: {ring})",
                ctx.in_use()
            ),
            Err(e) if dpdk_code(&e) == Some(libc::ENOTSUP) => {
                say!("{}: no tx_done_cleanup: {e}", sock.port_info().driver);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // With the socket gone (port stopped and closed), every mbuf is back in the mempool.
    drop(sock);
    assert_eq!(ctx.in_use(), 0);
    assert_eq!(ctx.available(), flags.num_mbufs);
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_exact_delivery_both_ways() {
    let test = "lab_dpdk_exact_delivery_both_ways";
    let Some(lab) = lab(test) else { return };
    let Some(peer) = Peer::from_env(test, &lab.pci) else {
        return;
    };
    let sock = Sock::create(&lab.pci, Some(0), DpdkFlags::default())
        .unwrap_or_else(|e| panic!("socket on {}: {e}", lab.pci));
    let link = link_up(&sock);
    if let Peer::Raw(raw) = &peer {
        raw.wait_carrier();
    }
    let frames: Vec<Vec<u8>> = (0..N).map(|s| frames::frame(s, size_of_frame(s))).collect();
    let before = sock.native_stats().unwrap();
    let (sock, got) = to_socket(&peer, sock, &frames, frames::is_test_frame);
    for g in &got {
        assert_eq!(g.meta.len as usize, g.data.len());
        assert_eq!(g.meta.vlan_tci, None, "untagged frame: {:?}", g.meta);
    }
    let data: Vec<&[u8]> = got.iter().map(|g| g.data.as_slice()).collect();
    let what = match &peer {
        Peer::Raw(raw) => format!("{} -> {}", raw.iface, lab.pci),
        Peer::Loopback => format!("{} loopback", lab.pci),
    };
    assert_exact(&data, 0, N, peer.exact_macs(), &what);
    if let Peer::Raw(raw) = &peer {
        // The other way: the socket sends, the kernel peer receives.
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| raw.receive(N as usize));
            sleep(Duration::from_millis(50));
            send_paced(&sock, &frames, &mut Pacer::new(link, PEER_PPS));
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        let data: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
        assert_exact(&data, 0, N, true, &format!("{} -> {}", lab.pci, raw.iface));
    }
    // The socket sent N frames either way (in loopback, those it received).
    let after = sock.native_stats().unwrap();
    assert_eq!(after.opackets - before.opackets, u64::from(N), "{after:?}");
    assert_eq!(after.tx_dropped, 0, "{after:?}");
    assert!(
        after.ipackets - before.ipackets >= u64::from(N),
        "{after:?}"
    );
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_rss_hash_in_meta() {
    let test = "lab_dpdk_rss_hash_in_meta";
    let Some(lab) = lab(test) else { return };
    let Some(peer) = Peer::from_env(test, &lab.pci) else {
        return;
    };
    let sock = Sock::create(&lab.pci, Some(0), DpdkFlags::default())
        .unwrap_or_else(|e| panic!("socket on {}: {e}", lab.pci));
    link_up(&sock);
    if let Peer::Raw(raw) = &peer {
        raw.wait_carrier();
    }
    // Every flow twice: the same 5-tuple must hash the same.
    let sent: Vec<Vec<u8>> = (0..2 * FLOWS).map(|s| udp_frame(s % FLOWS, s)).collect();
    let (sock, got) = to_socket(&peer, sock, &sent, is_udp_test);
    assert_eq!(
        got.len(),
        sent.len(),
        "{} of {} UDP frames",
        got.len(),
        sent.len()
    );
    let mut hashes = vec![None; sent.len()];
    for g in &got {
        let seq = udp_seq(&g.data).unwrap();
        same(&g.data, &sent[seq as usize], peer.exact_macs())
            .unwrap_or_else(|e| panic!("UDP frame {seq}: {e}"));
        assert_eq!(g.meta.len as usize, g.data.len());
        hashes[seq as usize] = Some(g.meta.rss_hash);
    }
    let hashes: Vec<Option<u32>> = hashes
        .into_iter()
        .map(|h| h.expect("every UDP frame once"))
        .collect();
    if !sock.rss_enabled() {
        say!(
            "{} ({}) offers no IP/TCP/UDP RSS: no hash expected ({:?})",
            lab.pci,
            sock.port_info().driver,
            &hashes[..4]
        );
        return;
    }
    let hashes: Vec<u32> = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| h.unwrap_or_else(|| panic!("UDP frame {i}: no RSS hash in Meta")))
        .collect();
    for f in 0..FLOWS as usize {
        assert_eq!(
            hashes[f],
            hashes[f + FLOWS as usize],
            "flow {f}: two hashes"
        );
    }
    let distinct: std::collections::BTreeSet<u32> = hashes.iter().copied().collect();
    assert!(
        distinct.len() > FLOWS as usize / 2,
        "{FLOWS} flows, hashes {distinct:?}"
    );
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_exhausted_mempool_recovers() {
    let test = "lab_dpdk_exhausted_mempool_recovers";
    let Some(lab) = lab(test) else { return };
    let Some(peer) = Peer::from_env(test, &lab.pci) else {
        return;
    };
    let flags = DpdkFlags {
        num_mbufs: 1023,
        mbuf_cache_size: 0,
        ..DpdkFlags::default()
    };
    let opts = DpdkOptions {
        rx_ring_size: 256,
        tx_ring_size: 256,
        ..DpdkOptions::default()
    };
    let sock = Sock::create_with_options(&lab.pci, Some(0), flags.clone(), opts)
        .unwrap_or_else(|e| panic!("socket on {}: {e}", lab.pci));
    let link = link_up(&sock);
    if let Peer::Raw(raw) = &peer {
        raw.wait_carrier();
    }
    let ctx = sock.context().clone();
    let capacity = ctx.available();
    say!(
        "{}: {capacity} of {} mbufs free after start",
        lab.pci,
        flags.num_mbufs
    );
    // Offer frames burst by burst and hold every packet that arrives, until recv says the
    // mempool is exhausted.
    let mut pacer = Pacer::new(link, PEER_PPS);
    let mut held: Vec<Token> = Vec::new();
    let (mut seq, mut tx_exhausted) = (0u32, false);
    let end = Instant::now() + DEADLINE;
    'offer: loop {
        assert!(
            Instant::now() < end && seq < 4 * flags.num_mbufs,
            "the mempool never ran out: {} held, {} free, {seq} frames offered",
            held.len(),
            ctx.available()
        );
        for _ in 0..32 {
            let f = frames::frame(seq, size_of_frame(seq));
            pacer.wait(f.len());
            match &peer {
                Peer::Raw(raw) => raw.send(&f),
                Peer::Loopback => match sock.send(&f) {
                    Ok(()) => {}
                    Err(Error::NoMemory) => {
                        tx_exhausted = true;
                        break;
                    }
                    Err(e) => panic!("send: {e}"),
                },
            }
            seq += 1;
        }
        sock.flush();
        sleep(Duration::from_millis(1));
        for _ in 0..4096 {
            match sock.recv_token() {
                Ok((t, _)) => held.push(t),
                Err(Error::NoPacket) => break,
                Err(Error::NoMemory) => break 'offer,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    let n_held = held.len();
    say!(
        "NoMemory with {n_held} packets held ({seq} offered; send ran out too: {tx_exhausted}); \
         {:?}",
        sock.native_stats().unwrap()
    );
    assert_eq!(ctx.available(), 0);
    assert!(matches!(
        sock.send(&frames::frame(0, 64)),
        Err(Error::NoMemory)
    ));
    if matches!(peer, Peer::Raw(_)) {
        assert!(
            n_held as u32 >= capacity,
            "{n_held} held, {capacity} were free"
        );
    }
    // The held packets are intact and in order; checked (and released) on another thread.
    let (ctx2, exact) = (ctx.clone(), peer.exact_macs());
    let seqs = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        for t in held {
            let p = t.consume(&ctx2);
            if let Some(s) = frames::seq_of(&p) {
                same(&p, &frames::frame(s, size_of_frame(s)), exact)
                    .unwrap_or_else(|e| panic!("held frame {s}: {e}"));
                seqs.push(s);
            }
        }
        seqs
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(!seqs.is_empty(), "no test frame among the held packets");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "held frames: {seqs:?}"
    );
    assert_eq!(
        ctx.available(),
        n_held as u32,
        "the released packets are back"
    );
    // Recovered: new frames arrive exactly (what was left in the ring from before is skipped).
    let _ = sock.tx_done_cleanup();
    let fresh: Vec<Vec<u8>> = (AFTER..AFTER + 200)
        .map(|s| frames::frame(s, size_of_frame(s)))
        .collect();
    let (sock, got) = to_socket(&peer, sock, &fresh, is_after);
    let data: Vec<&[u8]> = got.iter().map(|g| g.data.as_slice()).collect();
    assert_exact(&data, AFTER, 200, peer.exact_macs(), "after recovery");
    sock.send(&frames::frame(1, 64)).unwrap();
    sock.flush();
    drop(sock);
    assert_eq!(ctx.in_use(), 0, "every mbuf back once the socket is gone");
}

#[test]
#[ignore = "lab: needs a PCI NIC bound to vfio-pci and hugepages (cargo xtask test-hw --pci ADDR)"]
fn lab_dpdk_forward_back_to_peer() {
    let test = "lab_dpdk_forward_back_to_peer";
    let Some(lab) = lab(test) else { return };
    let Some(peer) = Peer::from_env(test, &lab.pci) else {
        return;
    };
    let Peer::Raw(raw) = &peer else {
        say!(
            "SKIPPED {test}: with {} cabled back to itself a forwarded frame comes back in \
             again; set NETHUNS_HW_PEER=IF",
            lab.pci
        );
        return;
    };
    let sock = Sock::create(&lab.pci, Some(0), DpdkFlags::default())
        .unwrap_or_else(|e| panic!("socket on {}: {e}", lab.pci));
    link_up(&sock);
    raw.wait_carrier();
    let ctx = sock.context().clone();
    let frames: Vec<Vec<u8>> = (0..N).map(|s| frames::frame(s, size_of_frame(s))).collect();
    // The peer sends, the socket sends every test frame it receives back out of the same
    // port (a forwarder on its own thread), the peer gets exactly the frames it sent.
    let (sock, forwarded, back) = std::thread::scope(|s| {
        let back = s.spawn(|| raw.receive(N as usize));
        let fwd = s.spawn(move || {
            let end = Instant::now() + DEADLINE;
            let mut forwarded = 0u32;
            while forwarded < N && Instant::now() < end {
                match sock.recv() {
                    Ok((p, _)) if frames::is_test_frame(&p) => {
                        loop {
                            match sock.send(&p) {
                                Ok(()) => break,
                                Err(Error::NoMemory) if Instant::now() < end => {
                                    sock.flush();
                                    let _ = sock.tx_done_cleanup();
                                }
                                Err(e) => panic!("forwarding frame {forwarded}: {e}"),
                            }
                        }
                        forwarded += 1;
                    }
                    Ok(_) => {}
                    Err(Error::NoPacket) => {
                        sock.flush();
                        sleep(Duration::from_micros(20));
                    }
                    Err(e) => panic!("recv on {}: {e}", sock.port_info().name),
                }
            }
            sock.flush();
            (sock, forwarded)
        });
        sleep(Duration::from_millis(50));
        let mut pacer = Pacer::new(Default::default(), PEER_PPS);
        for f in &frames {
            pacer.wait(f.len());
            raw.send(f);
        }
        let (sock, forwarded) = fwd.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let back = back.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (sock, forwarded, back)
    });
    assert_eq!(
        forwarded, N,
        "the socket forwarded {forwarded} of {N} frames"
    );
    let data: Vec<&[u8]> = back.iter().map(Vec::as_slice).collect();
    let what = format!("{} -> {} -> {}", raw.iface, lab.pci, raw.iface);
    assert_exact(&data, 0, N, true, &what);
    say!("{what}: {N} frames forwarded back, exactly");
    let stats = sock.native_stats().unwrap();
    assert_eq!(stats.tx_dropped, 0, "{stats:?}");
    drop(sock);
    assert_eq!(ctx.in_use(), 0, "every mbuf back once the socket is gone");
}
