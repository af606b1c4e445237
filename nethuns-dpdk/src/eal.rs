//! The DPDK Environment Abstraction Layer: initialised once per process.
//!
//! DPDK allows one `rte_eal_init` per process, and cannot initialise again after
//! `rte_eal_cleanup`. nethuns therefore initialises the EAL at the first
//! [`Sock::create`](crate::Sock) (or an explicit [`Eal::init`]) and keeps it for the life of the
//! process; later sockets reuse it. The arguments come from, in order:
//!
//! 1. an explicit [`Eal`] builder, `Eal::new().args([..]).init()`, called before any socket;
//! 2. the environment variable [`EAL_ARGS_ENV`] (`NETHUNS_DPDK_EAL_ARGS`), whitespace-separated;
//! 3. [`Eal::default_args`]: what works on an ordinary machine without hugepages or NICs bound
//!    to DPDK — `--no-huge --no-pci --no-shconf -m 128 --no-telemetry`, a per-process
//!    `--file-prefix`, one lcore allowed on the CPUs the calling thread may use, and warnings
//!    only in the log.
//!
//! For PCI NICs bound to vfio-pci with hugepages, pass your own arguments, e.g.
//! `NETHUNS_DPDK_EAL_ARGS="-l 2 -a 0000:01:00.0 --file-prefix app1"`.
//!
//! A second initialisation with different arguments is refused with an [`Error::Engine`] whose
//! [`DpdkError`] code is `EALREADY`; with the same arguments it succeeds and does nothing.
//! A failed initialisation is remembered and returned again (DPDK cannot retry it).
//! The EAL is never cleaned up (`rte_eal_cleanup` is not called): the OS reclaims it at exit.
//!
//! EAL's own threads (`eal-intr-thread` …) live as long as the process, in the network
//! namespace of the thread that initialised the EAL. A first socket created from a thread that
//! entered another namespace therefore has the EAL initialised on a short-lived thread back in
//! the process's namespace, so that no EAL thread pins the caller's namespace (and its
//! interfaces) after the socket is gone. Devices given as `--vdev` EAL arguments are then probed
//! in the process's namespace; a socket's portspec is always probed in its caller's.
//!
//! Note that `--in-memory` cannot be combined with `--no-huge` in DPDK 22.11 (it implies legacy
//! memory); `--no-shconf` gives the same "no shared files" behaviour here.

use std::ffi::CString;
use std::sync::Mutex;

use nethuns_core::{Error, Result};

use crate::error::DpdkError;
use crate::sys;

/// Environment variable holding the EAL arguments (whitespace-separated, without the program
/// name) used when no [`Eal`] was initialised explicitly.
pub const EAL_ARGS_ENV: &str = "NETHUNS_DPDK_EAL_ARGS";

struct State {
    args: Vec<String>,
    outcome: std::result::Result<(), DpdkError>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Builder of the EAL arguments; [`Eal::init`] initialises the process-wide EAL with them.
///
/// ```no_run
/// use nethuns_dpdk::Eal;
/// // Must run before the first socket is created.
/// Eal::new().arg("--log-level=*:info").init()?;
/// # Ok::<(), nethuns_dpdk::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eal {
    args: Vec<String>,
}

impl Default for Eal {
    fn default() -> Self {
        Self::new()
    }
}

impl Eal {
    /// The default arguments ([`Eal::default_args`]); add to them with [`Eal::arg`].
    pub fn new() -> Self {
        Eal {
            args: Self::default_args(),
        }
    }

    /// No arguments at all (DPDK's own defaults: hugepages, PCI scan …); add them with
    /// [`Eal::arg`] / [`Eal::args`].
    pub fn empty() -> Self {
        Eal { args: Vec::new() }
    }

    /// The arguments from [`EAL_ARGS_ENV`] if it is set (whitespace-separated), else
    /// [`Eal::new`]'s defaults.
    pub fn from_env() -> Self {
        match std::env::var(EAL_ARGS_ENV) {
            Ok(s) if !s.trim().is_empty() => Eal {
                args: s.split_whitespace().map(str::to_owned).collect(),
            },
            _ => Self::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The arguments, without the program name.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// The default arguments: no hugepages, no PCI scan, no shared files, 128 MB, one lcore
    /// (lcore 0) allowed on every CPU the calling thread may run on (so the caller is not
    /// pinned to one CPU), a per-process file prefix, warnings only.
    pub fn default_args() -> Vec<String> {
        vec![
            "--no-huge".into(),
            "--no-pci".into(),
            "--no-shconf".into(),
            "--no-telemetry".into(),
            "-m".into(),
            "128".into(),
            format!("--file-prefix=nethuns-{}", std::process::id()),
            format!("--lcores=0@({})", allowed_cpus()),
            "--log-level=*:warning".into(),
        ]
    }

    /// Initialises the EAL with these arguments, once per process.
    ///
    /// Succeeds without doing anything if the EAL was already initialised with the same
    /// arguments; refuses different ones (`EALREADY`); repeats a failure of an earlier attempt.
    pub fn init(self) -> Result<()> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = st.as_ref() {
            return match &s.outcome {
                Err(e) => Err(Error::engine(
                    "dpdk",
                    format!("EAL initialisation with {:?} failed earlier", s.args),
                    e.clone(),
                )),
                Ok(()) if s.args == self.args => Ok(()),
                Ok(()) => Err(Error::engine(
                    "dpdk",
                    format!(
                        "EAL already initialised in this process with {:?}; cannot initialise \
                         again with {:?} (DPDK allows one EAL per process)",
                        s.args, self.args
                    ),
                    DpdkError::from_code(libc::EALREADY),
                )),
            };
        }
        let outcome = eal_init(&self.args);
        let ret = outcome.clone().map_err(|e| {
            Error::engine(
                "dpdk",
                format!("EAL initialisation with {:?}", self.args),
                e,
            )
        });
        *st = Some(State {
            args: self.args,
            outcome,
        });
        ret
    }
}

/// Whether the EAL has been initialised successfully in this process.
pub fn is_initialized() -> bool {
    let st = STATE.lock().unwrap_or_else(|p| p.into_inner());
    matches!(
        st.as_ref(),
        Some(State {
            outcome: Ok(()),
            ..
        })
    )
}

/// The arguments the EAL was initialised (or attempted) with, if it was.
pub fn current_args() -> Option<Vec<String>> {
    let st = STATE.lock().unwrap_or_else(|p| p.into_inner());
    st.as_ref().map(|s| s.args.clone())
}

/// Initialises the EAL from the environment / defaults unless already done.
pub(crate) fn ensure() -> Result<()> {
    {
        let st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = st.as_ref() {
            return match &s.outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::engine(
                    "dpdk",
                    format!("EAL initialisation with {:?} failed earlier", s.args),
                    e.clone(),
                )),
            };
        }
    }
    match Eal::from_env().init() {
        // Lost a race with an explicit init with other arguments: that EAL is fine to use.
        Err(Error::Engine { source, .. })
            if source
                .downcast_ref::<DpdkError>()
                .is_some_and(|d| d.code == libc::EALREADY)
                && is_initialized() =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Runs `rte_eal_init`, in the process's network namespace: EAL's threads (`eal-intr-thread`
/// and the others it starts) inherit the namespace of the thread that initialises it and live
/// as long as the process, so a caller that entered another namespace (`setns`) would have them
/// pin that namespace, and every interface in it, forever. Such a caller gets the EAL
/// initialised on a short-lived thread that first returns to the namespace of the process's
/// main thread; devices are still probed by each socket in its caller's namespace.
fn eal_init(args: &[String]) -> std::result::Result<(), DpdkError> {
    if netns_inode("/proc/thread-self/ns/net") == netns_inode("/proc/self/ns/net") {
        return eal_init_here(args);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_process_netns()?;
            eal_init_here(args)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// The inode of a namespace file (`None` if it cannot be read).
fn netns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Moves the calling thread into the network namespace of the process's main thread.
fn enter_process_netns() -> std::result::Result<(), DpdkError> {
    let ns = std::fs::File::open("/proc/self/ns/net").map_err(|e| DpdkError {
        code: e.raw_os_error().unwrap_or(libc::EIO),
        message: format!("opening /proc/self/ns/net to initialise the EAL outside the caller's network namespace: {e}"),
    })?;
    // setns changes only the calling thread, a thread of our own that exits after
    // rte_eal_init.
    if let Err(e) = sys::setns_net(std::os::fd::AsFd::as_fd(&ns)) {
        return Err(DpdkError {
            code: e.raw_os_error().unwrap_or(libc::EIO),
            message: format!("entering the process's network namespace to initialise the EAL: {e}"),
        });
    }
    Ok(())
}

fn eal_init_here(args: &[String]) -> std::result::Result<(), DpdkError> {
    let mut all = Vec::with_capacity(args.len());
    for a in args {
        all.push(CString::new(a.as_str()).map_err(|_| DpdkError {
            code: libc::EINVAL,
            message: format!("EAL argument {a:?} contains a NUL byte"),
        })?);
    }
    // The STATE lock held by the caller makes this the only rte_eal_init in the process.
    sys::eal_init(c"nethuns", &all).map_err(DpdkError::from_code)?;
    if args.iter().any(|a| a == "--no-shconf") {
        // With no shared files EAL leaves an empty runtime directory behind; remove it.
        if let Some(dir) = sys::eal_runtime_dir() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(())
}

/// The CPUs the calling thread may run on, as an EAL cpu list (`0,1,4`); `0` if unknown.
fn allowed_cpus() -> String {
    match sys::allowed_cpus() {
        Some(cpus) if !cpus.is_empty() => cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_hugepages_or_pci() {
        let a = Eal::default_args();
        for must in ["--no-huge", "--no-pci", "--no-shconf"] {
            assert!(a.iter().any(|x| x == must), "{a:?}");
        }
        assert!(a.iter().any(|x| x.starts_with("--file-prefix=nethuns-")));
        assert!(a.iter().any(|x| x.starts_with("--lcores=0@(")));
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn builder_appends() {
        let e = Eal::empty().arg("-l").args(["0", "--no-huge"]);
        assert_eq!(e.get_args(), ["-l", "0", "--no-huge"]);
    }
}
