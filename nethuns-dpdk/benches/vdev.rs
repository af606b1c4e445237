//! Per-packet cost of the DPDK socket against virtual devices (no NIC, no hugepages):
//! `net_null` as an infinite source (recv + payload drop = rx_burst share + mbuf free) and an
//! infinite sink (send + flush = alloc share + copy + tx_burst share), and `net_ring`
//! loopback (send, flush, recv of the same frame).

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nethuns_dpdk::{DpdkFlags, Eal, Error, Sock, Socket, BURST};

fn vdev(c: &mut Criterion) {
    Eal::new().init().expect("EAL");
    let src = Sock::create("net_null0,size=64", None, DpdkFlags::default()).unwrap();
    let mut g = c.benchmark_group("dpdk");
    g.throughput(Throughput::Elements(1));
    g.bench_function("net_null recv 64B + payload drop", |b| {
        b.iter(|| match src.recv() {
            Ok((p, m)) => {
                black_box((p[0], m.len));
            }
            Err(Error::NoPacket) => {}
            Err(e) => panic!("{e}"),
        })
    });
    let frame = [0xABu8; 64];
    g.bench_function("net_null send 64B (flush every 32)", |b| {
        b.iter(|| src.send(black_box(&frame)).unwrap())
    });
    drop(src);
    let ring = Sock::create("net_ring0", None, DpdkFlags::default()).unwrap();
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("net_ring loopback burst of 32 x 64B", |b| {
        b.iter(|| {
            for _ in 0..BURST {
                ring.send(&frame).unwrap();
            }
            ring.flush();
            let (mut n, mut polls) = (0, 0u32);
            while n < BURST {
                polls += 1;
                assert!(polls < 1_000_000, "net_ring lost frames");
                if let Ok((p, _)) = ring.recv() {
                    black_box(p[0]);
                    n += 1;
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, vdev);
criterion_main!(benches);
