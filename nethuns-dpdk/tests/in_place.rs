//! The in-place paths against the real engine, in-process over net_ring ports (one EAL per
//! process, so one #[test] running the cases in sequence): `send_with` writing into the mbuf,
//! `send_payload` handing a received mbuf from one port to another (no copy, no leak: the
//! mempools' in-use counts come back), `recv_batch` / `send_batch` in whole bursts.

use std::time::{Duration, Instant};

use nethuns_core::pool::PoolContext;
use nethuns_dpdk::{Context, DpdkFlags, Eal, Error, Payload, Sock, Socket, BURST};
use nethuns_testnet::frames;

/// Receives exactly `n` packets (bounded in time) as copies.
fn recv_n(sock: &Sock, n: usize) -> Vec<Vec<u8>> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < end, "{} of {n} packets", got.len());
        match sock.recv() {
            Ok((p, _)) => got.push(p.to_vec()),
            Err(Error::NoPacket) => std::hint::spin_loop(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// One received payload (bounded in time).
fn recv_one(sock: &Sock) -> Payload<'_, nethuns_dpdk::DpdkContext> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match sock.recv() {
            Ok((p, _)) => return p,
            Err(Error::NoPacket) if Instant::now() < end => std::hint::spin_loop(),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn assert_empty(sock: &Sock) {
    assert!(matches!(sock.recv(), Err(Error::NoPacket)));
}

fn send_with_in_place() {
    let sock = Sock::create("net_ring0", None, DpdkFlags::default()).unwrap();
    let sizes = [60usize, 64, 333, 1514];
    for i in 0..40u32 {
        let len = sizes[i as usize % sizes.len()];
        let want = frames::frame(i, len);
        sock.send_with(len, |f| {
            assert_eq!(f.len(), len);
            f.copy_from_slice(&want);
        })
        .unwrap();
    }
    sock.flush();
    for (i, f) in recv_n(&sock, 40).iter().enumerate() {
        frames::check(f, i as u32, sizes[i % sizes.len()]).unwrap();
    }
    // The size rule before `fill` (no call) and after it (a 1518-byte frame needs a tag).
    for n in [0usize, 13] {
        let r = sock.send_with(n, |_| panic!("fill called for {n} bytes"));
        assert!(
            matches!(r, Err(Error::TooSmallPacket(m)) if m == n),
            "{r:?}"
        );
    }
    let r = sock.send_with(1519, |_| panic!("fill called for 1519 bytes"));
    assert!(matches!(r, Err(Error::TooBigPacket(1519))), "{r:?}");
    let r = sock.send_with(1518, |f| f.fill(0));
    assert!(matches!(r, Err(Error::TooBigPacket(1518))), "{r:?}");
    sock.send_with(1518, |f| {
        f.copy_from_slice(&frames::frame(99, 1518));
        f[12..14].copy_from_slice(&[0x81, 0x00]);
    })
    .unwrap();
    // A panicking `fill` loses nothing (the mbuf goes back).
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sock.send_with(64, |_| panic!("fill fails"))
    }));
    assert!(r.is_err());
    assert_eq!(sock.pending(), 1, "only the tagged frame is queued");
    sock.flush();
    assert_eq!(recv_n(&sock, 1)[0].len(), 1518);
    assert_empty(&sock);
    // Every mbuf is back once the socket (its TX stash) is gone.
    let ctx = sock.context().clone();
    drop(sock);
    assert_eq!(ctx.in_use(), 0, "mbufs of {ctx:?} leaked");
}

fn send_payload_forwards_mbufs() {
    let a = Sock::create("net_ring1", None, DpdkFlags::default()).unwrap();
    let b = Sock::create("net_ring2", None, DpdkFlags::default()).unwrap();
    let (a_ctx, b_ctx) = (a.context().clone(), b.context().clone());
    // 100 frames into A (a loopback), each received payload handed to B as it is.
    for i in 0..100u32 {
        a.send(&frames::frame(i, 64 + i as usize)).unwrap();
    }
    a.flush();
    for _ in 0..100 {
        b.send_payload(recv_one(&a)).unwrap();
    }
    b.flush();
    // The mbufs of A's pool went out of B and came back into B's RX (a loopback).
    for (i, f) in recv_n(&b, 100).iter().enumerate() {
        frames::check(f, i as u32, 64 + i).unwrap();
    }
    assert!(
        b_ctx.in_use() <= 1,
        "B's pool was hardly used: {}",
        b_ctx.in_use()
    );

    // The same mbuf, not a copy: a byte written through the payload arrives.
    a.send(&frames::frame(500, 80)).unwrap();
    a.flush();
    let mut p = recv_one(&a);
    let at = p.as_ptr() as usize;
    p[40] = 0xab;
    p.truncate(70);
    b.send_payload(p).unwrap();
    b.flush();
    let q = recv_one(&b);
    assert_eq!((q.len(), q[40], q.as_ptr() as usize), (70, 0xab, at));
    drop(q);

    // The largest frame goes as it is.
    a.send(&frames::frame(600, 1514)).unwrap();
    a.flush();
    b.send_payload(recv_one(&a)).unwrap();
    b.flush();
    frames::check(&recv_one(&b), 600, 1514).unwrap();

    // A payload of another kind of context is copied.
    let pool = PoolContext::new(4, 2048);
    let foreign = pool.alloc_payload(&frames::frame(700, 90)).unwrap();
    b.send_payload(foreign).unwrap();
    assert_eq!(pool.free_buffers(), 4, "copied, then released");
    let r = b.send_payload(pool.alloc_payload(&[1u8; 10]).unwrap());
    let unsent = r.unwrap_err();
    assert!(matches!(unsent.error, Error::TooSmallPacket(10)));
    assert_eq!(&unsent.payload[..], &[1u8; 10]);
    drop(unsent);
    assert_eq!(pool.free_buffers(), 4);
    b.flush();
    frames::check(&recv_n(&b, 1)[0], 700, 90).unwrap();

    // The source socket may go before B transmits: B keeps A's mempool alive.
    for i in 0..5u32 {
        a.send(&frames::frame(800 + i, 64)).unwrap();
    }
    a.flush();
    let tokens: Vec<_> = (0..5)
        .map(|_| recv_one(&a).into_token())
        .collect::<Vec<_>>();
    let ctx = a.context().clone();
    for t in tokens {
        b.send_payload(t.consume(&ctx)).unwrap();
    }
    drop(ctx);
    drop(a);
    b.flush();
    for (i, f) in recv_n(&b, 5).iter().enumerate() {
        frames::check(f, 800 + i as u32, 64).unwrap();
    }
    assert_empty(&b);
    drop(b);
    assert_eq!(a_ctx.in_use(), 0, "mbufs of A's pool leaked");
    assert_eq!(b_ctx.in_use(), 0, "mbufs of B's pool leaked");
}

/// Mbufs of A's pool that B sent into its own loopback are B's packets now: they stay valid
/// after A, A's context and B's socket are gone (A's mempool waits for its mbufs to come back).
fn forwarded_mbufs_outlive_their_pool_owner() {
    let a = Sock::create("net_ring6", None, DpdkFlags::default()).unwrap();
    let b = Sock::create("net_ring7", None, DpdkFlags::default()).unwrap();
    for i in 0..8u32 {
        a.send(&frames::frame(900 + i, 96)).unwrap();
    }
    a.flush();
    for _ in 0..8 {
        b.send_payload(recv_one(&a)).unwrap();
    }
    b.flush();
    let b_ctx = b.context().clone();
    let tokens: Vec<_> = (0..8).map(|_| recv_one(&b).into_token()).collect();
    drop(a);
    drop(b);
    for (i, t) in tokens.into_iter().enumerate() {
        let p = t.consume(&b_ctx);
        frames::check(&p, 900 + i as u32, 96).unwrap();
    }
    // Another pool's drop frees A's, now that its mbufs are back.
    drop(Sock::create("net_ring8", None, DpdkFlags::default()).unwrap());
    assert_eq!(b_ctx.in_use(), 0, "mbufs of B's pool leaked");
}

fn batches() {
    let sock = Sock::create("net_ring4", None, DpdkFlags::default()).unwrap();
    let frames_: Vec<Vec<u8>> = (0..70u32).map(|i| frames::frame(i, 100)).collect();
    let refs: Vec<&[u8]> = frames_.iter().map(Vec::as_slice).collect();
    assert_eq!(sock.send_batch(&refs).unwrap(), 70);
    assert_eq!(sock.pending(), 0, "send_batch submits");
    let mut buf = nethuns_dpdk::batch::buffer::<nethuns_dpdk::Meta, BURST>();
    let mut seqs = vec![];
    let end = Instant::now() + Duration::from_secs(10);
    while seqs.len() < 64 {
        assert!(Instant::now() < end);
        for (p, meta) in sock.recv_batch(&mut buf).unwrap() {
            assert_eq!(meta.len as usize, p.len());
            seqs.push(frames::seq_of(&p).unwrap());
        }
    }
    assert_eq!(seqs.len(), 64, "two whole bursts");
    // Six left: three, then three of which one is taken and the rest left to the drop.
    let mut small = nethuns_dpdk::batch::buffer::<nethuns_dpdk::Meta, 3>();
    let got: Vec<u32> = sock
        .recv_batch(&mut small)
        .unwrap()
        .map(|(p, _)| frames::seq_of(&p).unwrap())
        .collect();
    seqs.extend(got);
    let mut rest = sock.recv_batch(&mut buf).unwrap();
    assert_eq!(rest.len(), 3);
    seqs.push(frames::seq_of(&rest.next().unwrap().0).unwrap());
    drop(rest);
    assert_eq!(seqs, (0..68).collect::<Vec<_>>());
    assert!(sock.recv_batch(&mut buf).unwrap().is_empty());
    // Errors: nothing queued.
    assert!(matches!(
        sock.send_batch(&[&[0u8; 5][..]]),
        Err(Error::TooSmallPacket(5))
    ));
    let st = Socket::stats(&sock).unwrap();
    assert_eq!((st.received, st.sent), (70, 70), "{st:?}");
    let ctx = sock.context().clone();
    drop(sock);
    assert_eq!(ctx.in_use(), 0, "mbufs of {ctx:?} leaked");
}

/// Payloads released on another thread while the socket thread receives and releases too
/// (both go through the mempool's release cache): every mbuf comes back, none twice.
fn release_from_two_threads() {
    let sock = Sock::create("net_ring5", None, DpdkFlags::default()).unwrap();
    let ctx = sock.context().clone();
    let (to_other, from_main) = std::sync::mpsc::sync_channel::<nethuns_dpdk::Token>(64);
    let other = std::thread::spawn(move || {
        let mut n = 0u32;
        for t in from_main {
            drop(t.consume(&ctx));
            n += 1;
        }
        n
    });
    let end = Instant::now() + Duration::from_secs(20);
    let mut handed = 0u32;
    for round in 0..300u32 {
        for i in 0..BURST as u32 {
            sock.send(&frames::frame(round * 100 + i, 64)).unwrap();
        }
        sock.flush();
        let mut got = 0;
        while got < BURST {
            assert!(Instant::now() < end, "round {round}: {got} of {BURST}");
            match sock.recv_token() {
                Ok((t, _)) => {
                    got += 1;
                    if got % 2 == 0 {
                        to_other.send(t).unwrap();
                        handed += 1;
                    } else {
                        drop(sock.context().packet(t));
                    }
                }
                Err(Error::NoPacket) => std::hint::spin_loop(),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
    drop(to_other);
    assert_eq!(other.join().unwrap(), handed);
    let ctx = sock.context().clone();
    drop(sock);
    assert_eq!(ctx.in_use(), 0, "mbufs of {ctx:?} leaked");
}

#[test]
fn dpdk_in_place() {
    Eal::new().init().expect("EAL with the default arguments");
    send_with_in_place();
    send_payload_forwards_mbufs();
    forwarded_mbufs_outlive_their_pool_owner();
    batches();
    release_from_two_threads();
}
