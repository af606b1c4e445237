//! Property tests of the pure machinery: pool, token validation, channel.

use std::collections::HashSet;

use nethuns_core::channel::{Batch, NethunsPopper, NethunsPusher};
use nethuns_core::pool::PoolContext;
use nethuns_core::{leaked_tokens, Context, Error, Token};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc(u8),
    Release(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Release)
        ],
        0..400,
    )
}

proptest! {
    /// The pool never hands out a buffer that is held, reports exhaustion exactly when all are
    /// held, keeps contents intact, and gets every released buffer back.
    #[test]
    fn pool_never_hands_out_twice(count in 1usize..32, ops in ops()) {
        let ctx = PoolContext::new(count, 16);
        let mut held: Vec<(Token, u8)> = Vec::new();
        let mut descs = HashSet::new();
        for op in ops {
            match op {
                Op::Alloc(v) => match ctx.alloc_token(&[v; 16]) {
                    Ok(t) => {
                        prop_assert!(descs.insert(t.buffer_desc().get()), "buffer handed out twice");
                        held.push((t, v));
                    }
                    Err(Error::NoMemory) => prop_assert_eq!(held.len(), count),
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                },
                Op::Release(i) if !held.is_empty() => {
                    let (t, v) = held.swap_remove(i % held.len());
                    descs.remove(&t.buffer_desc().get());
                    let p = ctx.packet(t);
                    prop_assert_eq!(&p[..], &[v; 16][..]);
                }
                Op::Release(_) => {}
            }
            prop_assert_eq!(ctx.free_buffers(), count - held.len());
        }
        for (t, _) in held {
            drop(ctx.packet(t));
        }
        prop_assert_eq!(ctx.free_buffers(), count);
    }

    /// A token is accepted by its own context (and clones) and refused by any other, which hands
    /// it back intact.
    #[test]
    fn foreign_tokens_are_refused(data in prop::collection::vec(any::<u8>(), 1..64)) {
        let a = PoolContext::new(2, 64);
        let b = PoolContext::new(2, 64);
        let t = a.alloc_token(&data).unwrap();
        prop_assert!(t.check_token(&a));
        prop_assert!(t.check_token(&a.clone()));
        prop_assert!(!t.check_token(&b));
        let refused = b.try_packet(t).unwrap_err();
        prop_assert_eq!(refused.context_pool, b.pool_id());
        let a2 = a.clone();
        let p = refused.token.try_consume(&a2).unwrap();
        prop_assert_eq!(&p[..], &data[..]);
        drop(p);
        prop_assert_eq!(a.free_buffers(), 2);
        prop_assert_eq!(b.free_buffers(), 2);
    }

    /// Tokens pushed one by one with flushes at random points arrive once each, in order, on
    /// another thread.
    #[test]
    fn channel_delivers_every_token_once_in_order(
        n in 0u32..300,
        flush_every in 1u32..50,
        cap in 1usize..8,
    ) {
        let ctx = PoolContext::new(512, 8);
        let (tx, rx) = crossbeam_channel::bounded::<Batch<8>>(cap);
        let mut pusher = NethunsPusher::new(tx, ctx.pool_id());
        let popper = NethunsPopper::new(rx, ctx.clone());
        let producer_ctx = ctx.clone();
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                pusher.push_token(producer_ctx.alloc_token(&i.to_le_bytes()).unwrap()).unwrap();
                if i % flush_every == 0 {
                    pusher.flush().unwrap();
                }
            }
            pusher.flush().unwrap();
        });
        let mut seen = Vec::new();
        while let Some(batch) = popper.pop() {
            prop_assert!(!batch.is_empty() && batch.len() <= 8);
            for p in batch {
                seen.push(u32::from_le_bytes(p[..4].try_into().unwrap()));
            }
        }
        producer.join().unwrap();
        prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(ctx.free_buffers(), 512);
    }
}

#[test]
#[should_panic(expected = "presented to context of pool")]
fn packet_panics_on_foreign_token() {
    let a = PoolContext::new(1, 8);
    let b = PoolContext::new(1, 8);
    let t = a.alloc_token(b"x").unwrap();
    let _ = b.packet(t);
}

#[test]
fn pusher_refuses_foreign_tokens() {
    let a = PoolContext::new(2, 8);
    let b = PoolContext::new(2, 8);
    let (tx, _rx) = crossbeam_channel::bounded::<Batch<4>>(1);
    let mut pusher = NethunsPusher::new(tx, a.pool_id());
    let back = pusher.push_token(b.alloc_token(b"x").unwrap()).unwrap_err();
    drop(back.token.consume(&b));
    assert_eq!(b.free_buffers(), 2);
}

#[test]
fn unconsumed_batch_is_released_on_drop() {
    let ctx = PoolContext::new(4, 8);
    let (tx, rx) = crossbeam_channel::bounded::<Batch<4>>(1);
    let mut pusher = NethunsPusher::new(tx, ctx.pool_id());
    let popper = NethunsPopper::new(rx, ctx.clone());
    for _ in 0..4 {
        pusher.push_token(ctx.alloc_token(b"y").unwrap()).unwrap();
    }
    let mut batch = popper.pop().unwrap();
    let first = batch.next().unwrap();
    assert_eq!(ctx.free_buffers(), 0);
    drop(batch);
    assert_eq!(ctx.free_buffers(), 3);
    drop(first);
    assert_eq!(ctx.free_buffers(), 4);
}

#[test]
fn dropped_token_is_counted_as_leaked_not_reused() {
    let ctx = PoolContext::new(2, 8);
    let before = leaked_tokens();
    let t = ctx.alloc_token(b"z").unwrap();
    drop(t);
    assert!(leaked_tokens() > before);
    // The buffer is lost to the pool (not handed out again while unaccounted).
    assert_eq!(ctx.free_buffers(), 1);
    // Payloads, by contrast, give their buffer back.
    drop(ctx.alloc_payload(b"w").unwrap());
    assert_eq!(ctx.free_buffers(), 1);
}

#[test]
fn payload_round_trips_through_token_on_another_thread() {
    let ctx = PoolContext::new(8, 64);
    let p = ctx.alloc_payload(b"cross").unwrap();
    let tok = p.into_token();
    let ctx2 = ctx.clone();
    let len = std::thread::spawn(move || {
        let mut p = ctx2.packet(tok);
        p[0] = b'C';
        p.len()
    })
    .join()
    .unwrap();
    assert_eq!(len, 5);
    assert_eq!(ctx.free_buffers(), 8);
}
