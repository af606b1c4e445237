#!/usr/bin/env python3
"""Writes the seed corpus (corpus/<target>/seed-*): small, well-formed inputs each target
starts from. Run from fuzz/: python3 make_seeds.py"""
import os
import struct

def frame(seq, n, tag=None):
    eth = bytes([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2])
    body = bytes((seq + i) & 0xff for i in range(n - 14))
    if tag is not None:
        return eth + struct.pack(">HH", 0x8100, tag) + b"\x88\xb5" + body[:-4]
    return eth + b"\x88\xb5" + body

FRAMES = [frame(0, 60), frame(1, 64), frame(2, 514), frame(3, 64, tag=7), frame(4, 1514)]

def write(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def pcap(endian, magic, frames, snaplen=65535, trunc=None):
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, 1)
    for i, f in enumerate(frames):
        cap = f[: trunc] if trunc else f
        out += struct.pack(endian + "IIII", 1000 + i, 7 * i, len(cap), len(f)) + cap
    return out

def pcapng(frames):
    def block(t, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", t, n) + body + struct.pack("<I", n)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))
    for i, f in enumerate(frames):
        out += block(6, struct.pack("<IIIII", 0, 0, 1000 + i, len(f), len(f)) + f)
    return out

# savefile: the first byte picks buffer size and holding, the rest is the file.
write("savefile", "le-usec", b"\x01" + pcap("<", 0xA1B2C3D4, FRAMES))
write("savefile", "be-usec", b"\x06" + pcap(">", 0xA1B2C3D4, FRAMES))
write("savefile", "le-nsec", b"\x0d" + pcap("<", 0xA1B23C4D, FRAMES))
write("savefile", "truncated", b"\x00" + pcap("<", 0xA1B2C3D4, FRAMES, snaplen=64, trunc=64))
write("savefile", "pcapng", b"\x02" + pcapng(FRAMES[:3]))

def tp3(next_off, snap, ln, mac, vlan=None, tpid=None):
    status = 1  # TP_STATUS_USER
    tci = 0
    tp = 0
    if vlan is not None:
        status |= 1 << 4  # TP_STATUS_VLAN_VALID
        tci = vlan
        if tpid is not None:
            status |= 1 << 6  # TP_STATUS_VLAN_TPID_VALID
            tp = tpid
    return struct.pack("<IIIIIIHHIIHH8x", next_off, 1, 2, snap, ln, status, mac, mac + 14, 0xabcd, tci, tp, 0)

def block(pkts, size=4096, strip=None):
    """A TPACKET_v3 block as the kernel writes it: block header, then the packets."""
    body = b""
    off = 48
    for i, (f, vlan) in enumerate(pkts):
        mac = 80 if vlan is None else 84
        nxt = 0 if i + 1 == len(pkts) else (mac + len(f) + 15) // 16 * 16
        hdr = tp3(nxt, len(f), len(f), mac, *(vlan or (None, None)))
        pkt = hdr + b"\xee" * (mac - 48) + f
        pkt += b"\0" * ((nxt - len(pkt)) if nxt else 0)
        body += pkt
        off += len(pkt)
    hdr = struct.pack("<IIIIIIQIIII", 1, 0, 1, len(pkts), 48, 48 + len(body), 1, 0, 0, 0, 0)
    blk = hdr + body
    return blk + b"\0" * (size - len(blk)) if len(blk) < size else blk

write("afpacket_block", "plain", b"\x00" + block([(f, None) for f in FRAMES[:3]]))
write("afpacket_block", "vlan", b"\x3c" + block([(FRAMES[0], (7, 0x8100)), (FRAMES[1], (5, None))]) + block([(FRAMES[2], None)]))
write("afpacket_block", "strip-8k", b"\x03" + block([(FRAMES[4], None), (FRAMES[3], None)], size=8192))

# netmap_ring: mode byte, shape bytes, then operations (see ring_session).
shape = bytes([0, 0, 6, 3, 8, 0, 1])
ops = bytes([0, 0, 60, 0, 0x11,  2, 0,  0, 0, 64, 0, 0x22,  3, 1,  5, 64, 0,  6,  4, 0,  2, 0,  8, 2])
write("netmap_ring", "traffic", b"\x01" + shape + ops)
write("netmap_ring", "traffic-corrupt", b"\x01" + shape + bytes([0, 0, 60, 0, 1, 7, 0, 0, 2, 7, 2, 7, 0, 0, 0, 9, 0, 0, 0, 2, 0, 2, 0, 2, 0]))
write("netmap_ring", "layout", b"\x00" + shape + bytes([1, 3, 2, 2, 5, 0, 0, 16, 0, 0, 0, 0]))
write("netmap_ring", "host-rings", b"\x01" + bytes([1, 1, 1, 8, 4, 4, 0]) + ops)

for i, s in enumerate(["netmap:eth0", "netmap:eth0-1", "netmap:eth0^", "netmap:eth0*",
                       "vale0:p1", "vale1:a{3", "netmap:veth0/R", "eth0"]):
    write("netmap_portspec", f"{i}", s.encode() + b"\x01\x00\x02")
for i, s in enumerate(["net_ring0", "net_null0,size=64", "net_af_packet0,iface=veth0,qpairs=1",
                       "0000:01:00.0", "01:00.1,txq_inline=128", "net_af_xdp0,iface=veth0,start_queue=0"]):
    write("dpdk_portspec", f"{i}", s.encode())
for i in range(5):
    write("flags", f"{i}", bytes([i * 0x33 + j & 0xff for j in range(64)]))
