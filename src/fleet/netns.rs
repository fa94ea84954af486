//! Reaching a listener bound to `127.0.0.1` (or `::1`) inside another process's network
//! namespace: connecting from inside that namespace, and a loopback forwarder so the
//! one HTTP client (reqwest, which takes no custom connector) can use such a target.
//!
//! A pod's pprof port bound to its own localhost, as it should be, is unreachable from
//! the node's network namespace. The connection is made inside the pod's namespace: a
//! fresh OS thread (never a pooled one: the namespace would stick to it) opens
//! `/proc/PID/ns/net`, `setns`es into it, connects and exits. A socket belongs to the
//! namespace it was created in, so the connected stream works from any thread after.
//!
//! # Privileges (checked on Linux 6.x with `setpriv`/`nsenter`)
//! - Opening `/proc/PID/ns/net` (and comparing namespaces, [`same_netns`]) needs ptrace
//!   read access to the process: `CAP_SYS_PTRACE`, or the same user with a superset
//!   of the target's capabilities (root without CAP_SYS_PTRACE is refused for a root
//!   process with more capabilities). Without it: `Permission denied` on open, and
//!   leakwatch cannot even tell whether the process shares its namespace.
//! - `setns` into a network namespace needs `CAP_SYS_ADMIN` (in leakwatch's user
//!   namespace and the one owning the target's). Without it: `Operation not
//!   permitted` from [`NetnsForwarder::start`]; listeners on the pod's `0.0.0.0` may
//!   still be reachable at the pod's IP, listeners on its `127.0.0.1` are not.
//!
//! Each error names the step and the missing privilege ([`NetnsStep::hint`]).
//!
//! The forwarder listens on the host's `127.0.0.1`, so any process of the node's network
//! namespace can use it while it runs; it forwards only to the one loopback address it
//! was started for, and connections in the target namespace stay on its loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, NetnsStep, Result};
use crate::system::ns::{self, EnterStep, NsKind};

/// The most connections one forwarder carries at once; further ones wait in the
/// listen backlog until one ends. Idle keep-alive connections count (the scrape client
/// keeps at most 2 per host).
pub const MAX_FORWARDED_CONNECTIONS: usize = 8;
/// How long a connection inside the namespace may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A network namespace's identity: device and inode of its `ns/net` file.
pub type NetnsId = ns::NsId;

fn ns_path(pid: Option<u32>) -> PathBuf {
    ns::ns_file(Path::new("/proc"), pid, NsKind::Net)
}

fn netns_error(pid: u32, step: NetnsStep, source: std::io::Error) -> Error {
    Error::Netns { pid, step, source }
}

/// The network namespace of `pid` (`None`: leakwatch's own).
pub fn netns_id(pid: Option<u32>) -> Result<NetnsId> {
    ns::ns_id(&ns_path(pid))
        .map_err(|e| netns_error(pid.unwrap_or_else(std::process::id), NetnsStep::Open, e))
}

/// Whether `pid` lives in leakwatch's own network namespace, where its listeners are
/// reached directly and no forwarder is needed.
pub fn same_netns(pid: u32) -> Result<bool> {
    Ok(netns_id(Some(pid))? == netns_id(None)?)
}

/// Connects to `to` (a loopback address) from inside the network namespace `ns` of
/// `pid`, on a new OS thread that exits afterwards. Blocks up to [`CONNECT_TIMEOUT`].
pub fn connect_in_netns(pid: u32, ns: NetnsId, to: SocketAddr) -> Result<std::net::TcpStream> {
    check_loopback(pid, to)?;
    let (tx, rx) = std::sync::mpsc::channel();
    on_own_thread(pid, move || {
        let _ = tx.send(connect_here(pid, ns, to));
    })?;
    rx.recv().unwrap_or_else(|_| Err(thread_lost(pid)))
}

/// Enters the namespace and connects: only ever on a thread of its own that ends
/// right after, so no other work runs in the foreign namespace.
fn connect_here(pid: u32, ns: NetnsId, to: SocketAddr) -> Result<std::net::TcpStream> {
    enter(pid, ns)?;
    std::net::TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)
        .map_err(|e| netns_error(pid, NetnsStep::Connect(to), e))
}

/// Runs `f` on a new OS thread of its own (`ns::on_own_thread`), named for the pid.
fn on_own_thread(pid: u32, f: impl FnOnce() + Send + 'static) -> Result<()> {
    ns::on_own_thread(format!("netns-{pid}"), f).map_err(|e| netns_error(pid, NetnsStep::Enter, e))
}

fn thread_lost(pid: u32) -> Error {
    netns_error(
        pid,
        NetnsStep::Enter,
        std::io::Error::other("the namespace thread ended without an answer"),
    )
}

/// Moves the calling thread into `pid`'s network namespace, checking it is still `ns`
/// (the pid may have been reused since).
fn enter(pid: u32, ns: NetnsId) -> Result<()> {
    ns::enter(&ns_path(Some(pid)), NsKind::Net, Some(ns)).map_err(|(step, e)| {
        let step = match step {
            EnterStep::Open => NetnsStep::Open,
            EnterStep::Changed => NetnsStep::Changed,
            EnterStep::Enter => NetnsStep::Enter,
        };
        netns_error(pid, step, e)
    })
}

fn check_loopback(pid: u32, to: SocketAddr) -> Result<()> {
    if to.ip().is_loopback() {
        return Ok(());
    }
    Err(netns_error(
        pid,
        NetnsStep::Connect(to),
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "only loopback addresses are reached inside a namespace",
        ),
    ))
}

/// [`connect_in_netns`] for async callers: the thread is still a dedicated one (not
/// tokio's blocking pool), awaited without blocking the runtime.
pub async fn connect_in_netns_async(pid: u32, ns: NetnsId, to: SocketAddr) -> Result<TcpStream> {
    check_loopback(pid, to)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    on_own_thread(pid, move || {
        let _ = tx.send(connect_here(pid, ns, to));
    })?;
    let stream = rx.await.unwrap_or_else(|_| Err(thread_lost(pid)))?;
    let step = NetnsStep::Connect(to);
    stream
        .set_nonblocking(true)
        .map_err(|e| netns_error(pid, step, e))?;
    TcpStream::from_std(stream).map_err(|e| netns_error(pid, step, e))
}

/// A listener on the host's `127.0.0.1:<ephemeral>` piping each connection to a new
/// connection made inside `pid`'s network namespace to `target`. Runs on the tokio
/// runtime it was started on; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct NetnsForwarder {
    local: SocketAddr,
    pid: u32,
    target: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl NetnsForwarder {
    /// Starts forwarding to `target` (a loopback address as the process sees it, e.g.
    /// `127.0.0.1:6060`) in `pid`'s namespace. Fails at once, with the step and the
    /// privilege named, when the process is gone or its namespace cannot be entered.
    pub async fn start(pid: u32, target: SocketAddr) -> Result<NetnsForwarder> {
        check_loopback(pid, target)?;
        let ns = netns_id(Some(pid))?;
        // Enter once now, on a thread of its own, so a forwarder that can never
        // work (no CAP_SYS_ADMIN) says so here rather than on every scrape.
        let (tx, rx) = tokio::sync::oneshot::channel();
        on_own_thread(pid, move || {
            let _ = tx.send(enter(pid, ns));
        })?;
        rx.await.unwrap_or_else(|_| Err(thread_lost(pid)))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| netns_error(pid, NetnsStep::Listen, e))?;
        let local = listener
            .local_addr()
            .map_err(|e| netns_error(pid, NetnsStep::Listen, e))?;
        let task = tokio::spawn(accept_loop(listener, pid, ns, target)).abort_handle();
        tracing::debug!(pid, %target, %local, "forwarding into the network namespace");
        Ok(NetnsForwarder {
            local,
            pid,
            target,
            task,
        })
    }

    /// Where to connect on the host: `127.0.0.1:<ephemeral>`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The process whose namespace this forwards into.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The address connected to inside the namespace.
    pub fn target(&self) -> SocketAddr {
        self.target
    }
}

impl Drop for NetnsForwarder {
    fn drop(&mut self) {
        // The loop owns the listener and the connections' JoinSet: aborting it drops
        // both, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, pid: u32, ns: NetnsId, target: SocketAddr) {
    let limit = Arc::new(Semaphore::new(MAX_FORWARDED_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return; // never closed
        };
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, pid, "netns forwarder: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = forward(client, pid, ns, target).await {
                tracing::warn!(%error, pid, %target, "netns forwarder: connection failed");
            }
        });
    }
}

async fn forward(mut client: TcpStream, pid: u32, ns: NetnsId, target: SocketAddr) -> Result<()> {
    let mut upstream = connect_in_netns_async(pid, ns, target).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .map_err(|e| netns_error(pid, NetnsStep::Connect(target), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn hints_name_the_missing_privilege() {
        let to: SocketAddr = "127.0.0.1:6060".parse().unwrap();
        let cases = [
            (
                NetnsStep::Open,
                ErrorKind::NotFound,
                "the process has exited",
            ),
            (
                NetnsStep::Open,
                ErrorKind::PermissionDenied,
                "CAP_SYS_PTRACE",
            ),
            (
                NetnsStep::Enter,
                ErrorKind::PermissionDenied,
                "CAP_SYS_ADMIN",
            ),
            (NetnsStep::Changed, ErrorKind::Other, "pid was reused"),
            (
                NetnsStep::Connect(to),
                ErrorKind::ConnectionRefused,
                "nothing listens",
            ),
            (NetnsStep::Connect(to), ErrorKind::TimedOut, ""),
            (NetnsStep::Listen, ErrorKind::AddrInUse, ""),
        ];
        for (step, kind, want) in cases {
            let hint = step.hint(kind);
            assert!(
                hint.contains(want) && (want.is_empty() == hint.is_empty()),
                "{step:?} {kind:?}: {hint:?}"
            );
        }
    }

    #[test]
    fn own_namespace_and_gone_processes() {
        assert!(same_netns(std::process::id()).unwrap());
        assert_eq!(
            netns_id(None).unwrap(),
            netns_id(Some(std::process::id())).unwrap()
        );
        // Above the kernel's pid_max limit (4194304): never a live pid.
        let err = same_netns(4_194_305).unwrap_err().to_string();
        assert!(
            err.starts_with("network namespace of pid 4194305: opening /proc/PID/ns/net: ")
                && err.ends_with("(the process has exited)"),
            "{err}"
        );
    }

    #[test]
    fn only_loopback_targets() {
        let ns = netns_id(None).unwrap();
        for to in ["10.0.0.1:80", "0.0.0.0:80", "[2001:db8::1]:80"] {
            let err = connect_in_netns(1, ns, to.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains("only loopback addresses"), "{to}: {err}");
        }
    }
}
