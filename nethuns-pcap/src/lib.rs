//! # nethuns-pcap (placeholder: work in progress)
