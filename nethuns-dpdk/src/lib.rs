//! # nethuns-dpdk (placeholder: work in progress)
