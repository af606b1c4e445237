//! # nethuns-dpdk-sys (placeholder)
