//! The tokio adapter (`nethuns::tokio::AsyncSocket`) on pcap, AF_PACKET and AF_XDP: on a veth
//! pair it receives exactly the N frames the peer sent (through `recv().await`, through
//! `recv_token().await` and as a `Stream`), sends N frames with `send` + `flush().await` that
//! the peer receives, and its futures are `Send`. DPDK has no descriptor to wait on: `new`
//! refuses such a socket (its docs say how to run it beside tokio).

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use nethuns::api::{Context, Socket};
use nethuns::errors::Error;
use nethuns::tokio::AsyncSocket;
use nethuns_testnet::peer::RawPeer;
use nethuns_testnet::{frames, NetPair};

use futures_core::Stream;

const N: u32 = 200;
const LIMIT: Duration = Duration::from_secs(5);

/// Sends frames `first..first + N` from the peer, 20 ms after the receiver started waiting,
/// in bursts of 16 (as the conformance suite does: libpcap's kernel ring at the default
/// snaplen holds a few dozen frames, and a debug-build receiver can fall behind a longer
/// burst; drops are the engine's, not the adapter's).
fn send_later(peer: &RawPeer, first: u32) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(20));
    for seq in first..first + N {
        peer.send(&frames::frame(seq, 64 + (seq as usize % 512)))
            .map_err(|e| format!("peer send on {}: {e}", peer.ifname()))?;
        if seq % 16 == 15 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    Ok(())
}

/// How a test frame is received: by one of the three async ways.
#[derive(Clone, Copy, Debug)]
enum Way {
    Recv,
    RecvToken,
    Stream,
}

/// The next test frame's sequence number, other traffic skipped.
async fn next_seq<S: Socket>(sock: &mut AsyncSocket<S>, way: Way) -> Result<u32, String> {
    loop {
        let bytes = match way {
            Way::Recv => {
                let (p, _) = sock.recv().await.map_err(|e| format!("recv: {e}"))?;
                p.to_vec()
            }
            Way::RecvToken => {
                let (t, _) = sock
                    .recv_token()
                    .await
                    .map_err(|e| format!("recv_token: {e}"))?;
                sock.context().packet(t).to_vec()
            }
            Way::Stream => {
                let item = poll_fn(|cx| Pin::new(&mut *sock).poll_next(cx)).await;
                let (t, _) = item
                    .ok_or("the stream ended")?
                    .map_err(|e| format!("stream: {e}"))?;
                sock.context().packet(t).to_vec()
            }
        };
        if let Some(seq) = frames::seq_of(&bytes) {
            return Ok(seq);
        }
    }
}

/// The sequence numbers of the test frames the peer receives until it has N or none comes.
fn peer_seqs(peer: &RawPeer) -> Vec<u32> {
    let mut seqs = vec![];
    while let Some(f) = peer.recv(Duration::from_millis(500)) {
        if let Some(seq) = frames::seq_of(&f) {
            seqs.push(seq);
        }
        if seqs.len() == N as usize {
            break;
        }
    }
    seqs
}

/// Receives exactly N frames the three ways, then sends N that the peer receives.
fn exactly_n<S: Socket + 'static>(
    name: &str,
    open: impl Fn(&str) -> nethuns::errors::Result<S> + Send + Sync,
) {
    let Some(pair) = NetPair::for_test(&format!("tokio{name}")) else {
        return;
    };
    let peer = pair.in_b(|| RawPeer::open(&pair.veth_b)).expect("peer");
    let sock = pair
        .in_a(|| open(&pair.veth_a))
        .unwrap_or_else(|e| panic!("{name}: create on {}: {e}", pair.veth_a));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut sock = rt.block_on(async { AsyncSocket::new(sock) }).expect("new");
    for (i, way) in [Way::Recv, Way::RecvToken, Way::Stream]
        .into_iter()
        .enumerate()
    {
        let first = 1000 * (i as u32 + 1);
        let got = std::thread::scope(|s| {
            let sender = s.spawn(|| send_later(&peer, first));
            let got = rt.block_on(async {
                let mut seqs = vec![];
                while seqs.len() < N as usize {
                    match tokio::time::timeout(LIMIT, next_seq(&mut sock, way)).await {
                        Ok(r) => seqs.push(r?),
                        Err(_) => break,
                    }
                }
                // Nothing more comes: the next wait times out rather than returning a frame.
                match tokio::time::timeout(Duration::from_millis(100), next_seq(&mut sock, way))
                    .await
                {
                    Err(_) => Ok(seqs),
                    Ok(r) => Err(format!("an extra frame after {N}: {r:?}")),
                }
            });
            sender.join().expect("sender").expect("peer send");
            got
        });
        let got = got.unwrap_or_else(|e| panic!("{name} {way:?}: {e}"));
        let want: Vec<u32> = (first..first + N).collect();
        assert_eq!(
            got,
            want,
            "{name} {way:?}: {} of {N} frames, in order",
            got.len()
        );
        println!("{name}: {way:?}: {N} of {N} frames");
    }
    // send + flush().await: the peer receives exactly N.
    peer.drain();
    rt.block_on(async {
        for seq in 0..N {
            sock.send(&frames::frame(5000 + seq, 128))
                .await
                .unwrap_or_else(|e| panic!("{name}: send: {e}"));
            if seq % 32 == 31 {
                sock.flush().await.expect("flush");
            }
        }
        sock.flush().await.expect("flush");
    });
    let seqs = peer_seqs(&peer);
    assert_eq!(seqs, (5000..5000 + N).collect::<Vec<_>>(), "{name}: sent");
    println!("{name}: send + flush: {N} of {N} frames");
    // send_with + send_payload: frames built in place, then received ones sent back as they are.
    rt.block_on(async {
        for seq in 0..N {
            let f = frames::frame(6000 + seq, 128);
            sock.send_with(f.len(), |b| b.copy_from_slice(&f))
                .await
                .unwrap_or_else(|e| panic!("{name}: send_with: {e}"));
        }
        sock.flush().await.expect("flush");
    });
    assert_eq!(
        peer_seqs(&peer),
        (6000..6000 + N).collect::<Vec<_>>(),
        "{name}: send_with"
    );
    // The peer takes the frames back while it sends (its socket buffer holds fewer than N).
    let (got, back) = std::thread::scope(|s| {
        let sender = s.spawn(|| send_later(&peer, 7000));
        let back = s.spawn(|| peer_seqs(&peer));
        let got = rt.block_on(async {
            let mut n = 0;
            while n < N {
                let Ok(r) = tokio::time::timeout(LIMIT, sock.recv()).await else {
                    break;
                };
                let (p, _) = r.map_err(|e| format!("recv: {e}"))?;
                if frames::seq_of(&p).is_some() {
                    sock.send_payload(p)
                        .await
                        .map_err(|e| format!("send_payload: {e}"))?;
                    n += 1;
                    // In bursts the peer's socket buffer holds (it keeps fewer than N frames).
                    if n % 16 == 0 {
                        sock.flush().await.map_err(|e| format!("flush: {e}"))?;
                    }
                }
            }
            sock.flush().await.map_err(|e| format!("flush: {e}"))?;
            Ok::<u32, String>(n)
        });
        sender.join().expect("sender").expect("peer send");
        (got, back.join().expect("peer receiver"))
    });
    assert_eq!(got, Ok(N), "{name}: received for send_payload");
    assert_eq!(
        back,
        (7000..7000 + N).collect::<Vec<_>>(),
        "{name}: send_payload"
    );
    println!("{name}: send_with, send_payload: {N} of {N} frames each");
    let st = sock.socket().stats().expect("stats");
    assert_eq!(
        (st.received, st.sent),
        (4 * N as u64, 3 * N as u64),
        "{name}: stats"
    );
    drop(rt.block_on(async { sock.into_inner() }));
}

#[test]
fn pcap() {
    exactly_n("pcap", |iface| {
        nethuns::pcap::Sock::create(
            iface,
            None,
            nethuns::pcap::PcapFlags {
                buffer_count: 1024,
                ..Default::default()
            },
        )
    });
}

#[test]
fn af_packet() {
    exactly_n("afpacket", |iface| {
        nethuns::af_packet::Sock::create(iface, None, Default::default())
    });
}

#[test]
fn af_xdp() {
    exactly_n("afxdp", |iface| {
        nethuns::af_xdp::Sock::create(
            iface,
            Some(0),
            nethuns::af_xdp::AfXdpFlags {
                xdp_flags: nethuns::af_xdp::XDP_FLAGS_SKB_MODE,
                ..Default::default()
            },
        )
    });
}

/// The adapter's futures can be spawned on a multi-threaded runtime.
#[test]
fn futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn check(s: &AsyncSocket<nethuns::af_packet::Sock>) {
        is_send(&s.recv());
        is_send(&s.recv_token());
        is_send(&s.send(&[]));
        is_send(&s.flush());
    }
    let _ = check;
}

/// A savefile ends the stream; outside a runtime `new` says so instead of panicking.
#[test]
fn savefile_stream_ends_and_no_runtime_is_an_error() {
    let dir = std::env::temp_dir().join(format!("nethuns-tokio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("five.pcap");
    let sent: Vec<Vec<u8>> = (0..5).map(|i| frames::frame(i, 100)).collect();
    frames::write_savefile(&path, &sent, 1_700_000_000).expect("savefile");
    let spec = format!("file:{}", path.display());
    let open = || nethuns::pcap::Sock::create(&spec, None, Default::default()).expect("open");
    match AsyncSocket::new(open()) {
        Err(Error::Unsupported(m)) => assert!(m.contains("runtime"), "{m}"),
        other => panic!("new outside a runtime: {:?}", other.map(|_| ())),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let n = rt.block_on(async {
        let mut s = AsyncSocket::new(open()).expect("new");
        let mut n = 0;
        while let Some(item) = poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await {
            let (t, _) = item.expect("item");
            assert_eq!(s.context().packet(t).to_vec(), sent[n]);
            n += 1;
        }
        n
    });
    assert_eq!(n, 5);
    let _ = std::fs::remove_dir_all(&dir);
}
