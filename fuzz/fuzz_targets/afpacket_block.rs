//! AF_PACKET's TPACKET_v3 block walker over blocks the fuzzer wrote (block header, packet
//! headers, offsets, lengths, VLAN fields): see `nethuns_afpacket::fuzzing::walk_blocks`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nethuns_afpacket::fuzzing::walk_blocks(data);
});
