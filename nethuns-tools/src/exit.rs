//! Exit codes and the error every tool ends with.

use nethuns::errors::Error;

/// The run finished: its limit (count, duration, end of file) was reached or it was stopped by
/// SIGINT/SIGTERM, and the totals were printed.
pub const OK: i32 = 0;
/// A runtime error: the engine or the OS failed while the tool ran (receive, send, write).
pub const RUNTIME: i32 = 1;
/// The command line is wrong (unknown option, malformed value); clap's own code.
pub const USAGE: i32 = 2;
/// The backend named by `--backend` was not compiled into this binary.
pub const NOT_COMPILED: i32 = 3;
/// The backend refused the configuration at create: a flag, the portspec, a queue, a filter,
/// or a frame size the link cannot carry.
pub const CONFIG: i32 = 4;
/// The interface does not exist, or disappeared while the tool ran.
pub const NO_INTERFACE: i32 = 5;
/// A file (savefile to read or write) could not be opened, read or written.
pub const FILE: i32 = 6;

/// Why a tool stopped with an error; [`ToolError::code`] is its exit status.
#[derive(Debug)]
pub enum ToolError {
    /// Bad command line (exit 2).
    Usage(String),
    /// `--backend` names a backend that is not compiled in (exit 3).
    NotCompiled {
        /// The backend as named on the command line.
        backend: &'static str,
        /// The cargo feature of `nethuns-tools` that enables it.
        feature: &'static str,
    },
    /// The backend refused the configuration (exit 4).
    Config(String),
    /// No such interface, or it went away (exit 5).
    NoInterface(String),
    /// A savefile could not be opened, read or written (exit 6).
    File(String),
    /// Anything else while running (exit 1).
    Runtime(String),
}

impl ToolError {
    /// The exit status this error means.
    pub fn code(&self) -> i32 {
        match self {
            ToolError::Usage(_) => USAGE,
            ToolError::NotCompiled { .. } => NOT_COMPILED,
            ToolError::Config(_) => CONFIG,
            ToolError::NoInterface(_) => NO_INTERFACE,
            ToolError::File(_) => FILE,
            ToolError::Runtime(_) => RUNTIME,
        }
    }

    /// An error of `Socket::create` (or of setting a socket up), classified: a refused flag,
    /// portspec or feature is [`ToolError::Config`], a missing interface
    /// [`ToolError::NoInterface`].
    pub fn from_create(what: &str, e: Error) -> ToolError {
        let msg = format!("{what}: {e}");
        match &e {
            Error::InvalidFlag { .. }
            | Error::InvalidPortspec { .. }
            | Error::Unsupported(_)
            | Error::TooBigPacket(_)
            | Error::TooSmallPacket(_) => ToolError::Config(msg),
            Error::InterfaceDown(_) => ToolError::NoInterface(msg),
            _ if matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO)) => {
                ToolError::NoInterface(msg)
            }
            _ if msg.contains("No such device") || msg.contains("doesn't exist") => {
                ToolError::NoInterface(msg)
            }
            _ => ToolError::Runtime(msg),
        }
    }

    /// An error while running, classified like [`ToolError::from_create`] but defaulting to
    /// [`ToolError::Runtime`].
    pub fn from_run(what: &str, e: Error) -> ToolError {
        match e {
            Error::InterfaceDown(_) => ToolError::NoInterface(format!("{what}: {e}")),
            e => ToolError::Runtime(format!("{what}: {e}")),
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Usage(m)
            | ToolError::Config(m)
            | ToolError::NoInterface(m)
            | ToolError::File(m)
            | ToolError::Runtime(m) => f.write_str(m),
            ToolError::NotCompiled { backend, feature } => write!(
                f,
                "backend {backend} is not compiled into this binary (compiled: {}); rebuild with \
                 the cargo feature `{feature}`, e.g. `cargo install --path nethuns-tools \
                 --features {feature}`",
                crate::backend::Backend::compiled_names().join(", ")
            ),
        }
    }
}

impl std::error::Error for ToolError {}

/// The `--help` text on exit codes, shared by every tool.
pub const EXIT_CODES_HELP: &str = "\
Exit status: 0 done (limit reached, end of file, or stopped by SIGINT/SIGTERM), 1 runtime \
error, 2 usage error, 3 backend not compiled in, 4 configuration refused by the backend, \
5 no such interface (or it went away), 6 savefile error.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    #[test]
    fn a_backend_not_compiled_in_names_its_feature() {
        for b in Backend::ALL {
            let e = b.not_compiled();
            assert_eq!(e.code(), NOT_COMPILED);
            assert!(
                e.to_string()
                    .contains(&format!("feature `{}`", b.feature())),
                "{e}"
            );
        }
    }

    #[test]
    fn create_errors_are_classified() {
        let flag = ToolError::from_create("x", Error::flag("block_size", "bad"));
        assert_eq!(flag.code(), CONFIG);
        let gone = ToolError::from_create(
            "x",
            Error::os("bind", std::io::Error::from_raw_os_error(libc::ENODEV)),
        );
        assert_eq!(gone.code(), NO_INTERFACE);
        assert_eq!(ToolError::from_run("x", Error::Unknown).code(), RUNTIME);
    }
}
