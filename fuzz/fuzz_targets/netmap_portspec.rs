//! The netmap portspec parser (`netmap:eth0-1`, `vale0:a{1`, `netmap:eth0^`, …): any string is
//! parsed without a panic; a parsed spec takes a queue and gives its register mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nethuns_netmap::PortSpec;

fuzz_target!(|input: (&str, Option<u16>)| {
    let (spec, queue) = input;
    let Ok(p) = PortSpec::parse(spec) else {
        return;
    };
    let _ = p.rings.register_mode();
    if let Ok(q) = p.clone().with_queue(spec, queue.map(usize::from)) {
        let _ = q.rings.register_mode();
    }
});
