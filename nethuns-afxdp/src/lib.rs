//! # nethuns-afxdp (placeholder: work in progress)
