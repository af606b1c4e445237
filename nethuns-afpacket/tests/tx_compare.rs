//! The measurement behind the TX design choice (ring vs `sendmmsg`), not a regression test:
//! `cargo test -p nethuns-afpacket --release --test tx_compare -- --ignored --nocapture`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, NetPair};

const BATCH: usize = 64;
const RUN: Duration = Duration::from_millis(400);
/// Alternating rounds per variant; the best round counts (the machine is shared).
const ROUNDS: usize = 5;

fn ring_rate(ifname: &str, len: usize, bypass: bool) -> f64 {
    let flags = AfPacketFlags {
        qdisc_bypass: bypass,
        block_size: 1 << 16,
        block_count: 2,
        ..AfPacketFlags::default()
    };
    let sock = Sock::create(ifname, None, flags).unwrap();
    let f = frames::frame(1, len);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..BATCH {
            match sock.send(&f) {
                Ok(()) => n += 1,
                Err(Error::NoMemory) => break,
                Err(e) => panic!("{e}"),
            }
        }
        sock.flush();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn sendmmsg_rate(ifname: &str, len: usize, bypass: bool) -> f64 {
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor nothing else owns (closed when `owned` drops).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let ifindex = nethuns_sys_linux::netdev::if_index(ifname).unwrap();
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size passed, alive for the call.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of_val(&sll) as u32,
        )
    };
    assert_eq!(rc, 0);
    if bypass {
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int of the 4 bytes passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const i32).cast(),
                4,
            )
        };
    }
    let f = frames::frame(1, len);
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: len,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data (integers and pointers); all-zero is valid.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        for b in bufs.iter_mut() {
            b[..len].copy_from_slice(&f); // `send` copies
        }
        // SAFETY: BATCH messages, each with one iovec over a live buffer of `len` bytes.
        let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if rc > 0 {
            n += rc as u64;
        }
    }
    drop(owned);
    n as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "measurement, run by hand in release mode"]
fn tx_ring_vs_sendmmsg() {
    let Some(pair) = NetPair::for_test("afp_tx_compare") else {
        return;
    };
    pair.in_a(|| {
        for len in [64, 1514] {
            for bypass in [false, true] {
                let (mut r, mut m) = (0f64, 0f64);
                for _ in 0..ROUNDS {
                    r = r.max(ring_rate(&pair.veth_a, len, bypass));
                    m = m.max(sendmmsg_rate(&pair.veth_a, len, bypass));
                }
                println!(
                    "{len:>5} B, qdisc bypass {bypass:>5}: TX ring {:>6.3} Mpps, sendmmsg {:>6.3} Mpps",
                    r / 1e6,
                    m / 1e6
                );
            }
        }
    });
}
