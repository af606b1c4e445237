//! # nethuns-afpacket (placeholder: work in progress)
