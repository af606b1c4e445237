//! [`DpdkError`]: DPDK's own error (an `rte_errno` / negative return code and its
//! `rte_strerror` text), carried as the source of [`Error::Engine`] with engine `"dpdk"`.

use std::fmt;

use nethuns_core::Error;

use crate::sys;

/// An error DPDK reported: the errno-style code and DPDK's text for it (`rte_strerror`).
///
/// Found as the source of an [`Error::Engine`] whose engine is `"dpdk"`:
///
/// ```
/// # use nethuns_dpdk::{DpdkError, Error};
/// fn dpdk_code(e: &Error) -> Option<i32> {
///     e.engine_source::<DpdkError>().map(|d| d.code)
/// }
/// # let _ = dpdk_code(&Error::NoPacket);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkError {
    /// The positive error code (`rte_errno`, or the negated return value of an ethdev call).
    pub code: i32,
    /// DPDK's description of the code (`rte_strerror`).
    pub message: String,
}

impl DpdkError {
    /// The error for code `code` (either sign: DPDK calls return `-errno`).
    pub fn from_code(code: i32) -> Self {
        let code = code.checked_abs().unwrap_or(i32::MAX);
        DpdkError {
            code,
            message: sys::strerror(code),
        }
    }

    /// The calling thread's `rte_errno`.
    pub fn last() -> Self {
        Self::from_code(sys::errno())
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rte_errno {})", self.message, self.code)
    }
}

impl std::error::Error for DpdkError {}

/// An [`Error::Engine`] from a DPDK return code.
pub(crate) fn engine(context: impl Into<String>, code: i32) -> Error {
    Error::engine("dpdk", context, DpdkError::from_code(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_code_and_text() {
        let e = engine("probing net_x0", -libc::ENOENT);
        let d = e.engine_source::<DpdkError>().unwrap();
        assert_eq!(d.code, libc::ENOENT);
        let s = e.to_string();
        assert!(s.starts_with("dpdk: probing net_x0: "), "{s}");
        assert!(s.contains("No such file or directory"), "{s}");
    }
}
