//! A sanity measurement of the receive fast path, not a regression test: frames already in the
//! ring are drained with no syscall, so the rate is far above what the link delivers.
//! `cargo test -p nethuns-afpacket --release --test rx_rate -- --ignored --nocapture`.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethuns_afpacket::{AfPacketFlags, Error, Sock, Socket};
use nethuns_testnet::{frames, in_netns, NetPair};

#[test]
#[ignore = "measurement, run by hand in release mode"]
fn drain_rate_of_a_filled_ring() {
    let Some(pair) = NetPair::for_test("afp_rx_rate") else {
        return;
    };
    const N: usize = 100_000;
    let (rx_ns, rx_if) = (pair.ns_b.clone(), pair.veth_b.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || {
        in_netns(&rx_ns, move || {
            let flags = AfPacketFlags {
                block_size: 1 << 20,
                block_count: 32,
                // Blocks retire when full, so 100k small frames fit in ~16 of them.
                block_timeout_ms: 300,
                ..AfPacketFlags::default()
            };
            let sock = Sock::create(&rx_if, None, flags).unwrap();
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap(); // everything sent and retired
            let start = Instant::now();
            let (mut n, mut bytes) = (0usize, 0usize);
            loop {
                match sock.recv() {
                    Ok((p, _)) => {
                        n += 1;
                        bytes += p.len();
                    }
                    Err(Error::NoPacket) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            (n, bytes, start.elapsed(), sock.native_stats().unwrap())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sent: Vec<_> = (0..N as u32).map(|i| frames::frame(i, 64)).collect();
    pair.in_a(|| {
        let sock = Sock::create(&pair.veth_a, None, common::flags()).unwrap();
        common::send_all(&sock, &sent, 64, Duration::from_secs(30));
    });
    std::thread::sleep(Duration::from_millis(400)); // the last block retires
    go_tx.send(()).unwrap();
    let (n, bytes, took, st) = receiver.join().unwrap();
    println!(
        "drained {n} packets ({bytes} bytes) in {took:?}: {:.1} Mpps (kernel: {} received, {} dropped)",
        n as f64 / took.as_secs_f64() / 1e6,
        st.tp_packets,
        st.tp_drops
    );
    assert!(n > N / 2, "only {n} of {N} in the ring");
}
