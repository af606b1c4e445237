//! # nethuns-netmap (placeholder: work in progress)
