//! Micro-benchmarks of the core machinery, in ns per packet: a payload's receive and drop, a
//! token's round trip through a context, the pool's get/put, and the channel moving batches.

// `criterion_main!` writes an undocumented `pub fn main`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nethuns_core::channel::{Batch, NethunsPopper, NethunsPusher};
use nethuns_core::pool::PoolContext;
use nethuns_core::{Context, Payload};

fn pool(c: &mut Criterion) {
    let ctx = PoolContext::new(1024, 2048);
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get+put", |b| {
        b.iter(|| {
            let d = ctx.pool().get().unwrap();
            // SAFETY: `d` was taken from this pool just above and is not used again.
            unsafe { ctx.pool().put(black_box(d)) };
        })
    });
    let frame = [0xABu8; 64];
    g.bench_function("recv 64B copy + payload drop", |b| {
        b.iter(|| {
            let t = ctx.alloc_token(black_box(&frame)).unwrap();
            // SAFETY: the token was just made by this context.
            let p: Payload<'_, PoolContext> = unsafe { Payload::from_token_unchecked(t, &ctx) };
            black_box(p[0]);
        })
    });
    let mut tok = Some(ctx.alloc_token(&frame).unwrap());
    g.bench_function("token round trip (packet + into_token)", |b| {
        b.iter(|| {
            let p = ctx.packet(tok.take().unwrap());
            black_box(p[0]);
            tok = Some(p.into_token());
        })
    });
    drop(ctx.packet(tok.take().unwrap()));
    g.finish();
}

fn channel(c: &mut Criterion) {
    const N: usize = 32;
    let ctx = PoolContext::new(4096, 64);
    let (tx, rx) = crossbeam_channel::bounded::<Batch<N>>(64);
    let mut pusher = NethunsPusher::new(tx, ctx.pool_id());
    let popper = NethunsPopper::new(rx, ctx.clone());
    let mut g = c.benchmark_group("channel");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("push+pop batch of 32 (same thread)", |b| {
        b.iter(|| {
            for _ in 0..N {
                pusher
                    .push_token(ctx.alloc_token(&[1; 64]).unwrap())
                    .unwrap();
            }
            let batch = popper.pop().unwrap();
            for p in batch {
                black_box(p[0]);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, pool, channel);
criterion_main!(benches);
