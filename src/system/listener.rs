//! Finding the process behind a loopback target when the config names none: the
//! process holding the listening TCP socket of the target's port (`/proc/net/tcp{,6}`
//! and each process's `fd/` links), adopted only when its command line is the one the
//! target's own `/debug/pprof/cmdline` reports, so a port forwarder (docker-proxy, ssh,
//! `kubectl port-forward`) in front of the service is never taken for it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use procfs::FromReadSI;
use procfs::net::{TcpNetEntries, TcpState};
use procfs::process::FDTarget;

use crate::{Error, Result};

/// A target on this host's loopback interface: where its service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The target's address; `None` for `localhost` (any loopback address).
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl Listener {
    /// The listener of a target URL on a loopback address (`127.0.0.0/8`, `::1`,
    /// `localhost`), `None` for any other host.
    pub fn of_url(url: &reqwest::Url) -> Option<Listener> {
        let port = url.port_or_known_default()?;
        let host = url.host_str()?;
        if host.eq_ignore_ascii_case("localhost") {
            return Some(Listener { ip: None, port });
        }
        // An IPv6 host comes bracketed (`[::1]`).
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        ip.is_loopback().then_some(Listener { ip: Some(ip), port })
    }

    /// Whether a socket listening on `local` accepts this target's connections: the
    /// same port on the target's address, on a wildcard address (`0.0.0.0`, `::`), or
    /// on any loopback address for `localhost`.
    pub fn accepts(&self, local: std::net::SocketAddr) -> bool {
        if local.port() != self.port {
            return false;
        }
        let ip = local.ip();
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_unspecified()
            || match self.ip {
                Some(want) => ip == want,
                None => ip.is_loopback(),
            }
    }
}

/// Inodes of the TCP sockets listening where `l` connects, from `{proc_root}/net/tcp`
/// and `tcp6` (leakwatch's own network namespace, the one its loopback requests use).
pub fn listening_inodes(l: &Listener, proc_root: &Path) -> Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for file in ["tcp", "tcp6"] {
        let path = proc_root.join("net").join(file);
        let entries = match TcpNetEntries::from_file(&path, procfs::current_system_info()) {
            Ok(e) => e,
            // No IPv6 on this host: no tcp6 file.
            Err(procfs::ProcError::NotFound(_)) if file == "tcp6" => continue,
            Err(e) => {
                return Err(Error::BadFile {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        inodes.extend(
            entries
                .0
                .iter()
                .filter(|e| e.state == TcpState::Listen && l.accepts(e.local_address))
                .map(|e| e.inode),
        );
    }
    Ok(inodes)
}

/// Processes holding one of `inodes` open (lowest first), never leakwatch itself.
/// Processes that vanish or cannot be read meanwhile are skipped.
pub fn pids_holding(inodes: &HashSet<u64>, proc_root: &Path) -> Result<Vec<u32>> {
    if inodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut pids = Vec::new();
    for (pid, p) in super::discover::other_processes(proc_root)? {
        let Ok(fds) = p.fd() else { continue };
        let holds = fds.flatten().any(|fd| match fd.target {
            FDTarget::Socket(inode) => inodes.contains(&inode),
            _ => false,
        });
        if holds {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Whether `/proc/PID/cmdline` (NUL-terminated args) is the command line a Go
/// service's `/debug/pprof/cmdline` serves (`os.Args` joined with NULs).
pub fn cmdline_matches(proc_cmdline: &[u8], pprof_cmdline: &[u8]) -> bool {
    !pprof_cmdline.is_empty() && proc_cmdline.strip_suffix(b"\0") == Some(pprof_cmdline)
}

/// What looking for a loopback target's process found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The process listening on the port runs the command line the target reports.
    Process(u32),
    /// Nothing listens there in this network namespace, or its holder is not visible
    /// (another PID namespace, or no permission to read its `fd/`).
    Nothing,
    /// Processes listen there, but none runs the target's command line (a forwarder):
    /// their PIDs.
    NotTheService(Vec<u32>),
}

/// Finds the process listening where `l` connects whose command line is
/// `pprof_cmdline` (the body of the target's `/debug/pprof/cmdline`).
pub fn find_listener(l: &Listener, pprof_cmdline: &[u8], proc_root: &Path) -> Result<Found> {
    let pids = pids_holding(&listening_inodes(l, proc_root)?, proc_root)?;
    if pids.is_empty() {
        return Ok(Found::Nothing);
    }
    for &pid in &pids {
        let path = proc_root.join(pid.to_string()).join("cmdline");
        if let Ok(cmdline) = std::fs::read(&path)
            && cmdline_matches(&cmdline, pprof_cmdline)
        {
            return Ok(Found::Process(pid));
        }
    }
    Ok(Found::NotTheService(pids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_only() {
        let l = |u: &str| Listener::of_url(&reqwest::Url::parse(u).unwrap());
        let v4 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let cases: &[(&str, Option<Listener>)] = &[
            (
                "http://127.0.0.1:6060",
                Some(Listener {
                    ip: v4("127.0.0.1"),
                    port: 6060,
                }),
            ),
            (
                "http://127.0.0.2:8080/base",
                Some(Listener {
                    ip: v4("127.0.0.2"),
                    port: 8080,
                }),
            ),
            (
                "http://[::1]:6060",
                Some(Listener {
                    ip: v4("::1"),
                    port: 6060,
                }),
            ),
            ("http://LocalHost", Some(Listener { ip: None, port: 80 })),
            ("http://10.0.0.5:6060", None),
            ("http://orders:6060", None),
            ("http://[2001:db8::1]:6060", None),
        ];
        for (url, want) in cases {
            assert_eq!(l(url), *want, "{url}");
        }
    }

    #[test]
    fn which_sockets_accept_the_target() {
        let target = Listener {
            ip: Some("127.0.0.1".parse().unwrap()),
            port: 6060,
        };
        let localhost = Listener {
            ip: None,
            port: 6060,
        };
        // (local address, accepts 127.0.0.1:6060, accepts localhost:6060)
        let cases = [
            ("127.0.0.1:6060", true, true),
            ("0.0.0.0:6060", true, true),
            ("[::]:6060", true, true),
            ("[::ffff:127.0.0.1]:6060", true, true),
            ("127.0.0.2:6060", false, true),
            ("[::1]:6060", false, true),
            ("127.0.0.1:6061", false, false),
            ("10.0.0.5:6060", false, false),
        ];
        for (local, want, want_localhost) in cases {
            let a: std::net::SocketAddr = local.parse().unwrap();
            assert_eq!(target.accepts(a), want, "{local}");
            assert_eq!(localhost.accepts(a), want_localhost, "{local} localhost");
        }
    }

    #[test]
    fn cmdline_comparison() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (
                b"/srv/orders\0-addr\0:6060\0",
                b"/srv/orders\0-addr\0:6060",
                true,
            ),
            (b"/srv/orders\0", b"/srv/orders", true),
            (b"docker-proxy\0-host-port\x006060\0", b"/srv/orders", false),
            (b"/srv/orders\0-v\0", b"/srv/orders", false),
            (b"", b"", false),
            (b"\0", b"", false),
        ];
        for (proc, pprof, want) in cases {
            assert_eq!(cmdline_matches(proc, pprof), *want, "{proc:?} {pprof:?}");
        }
    }

    /// A fixture `/proc` with a `net/tcp` listing: which sockets are found.
    #[test]
    fn listening_inodes_from_a_net_tcp_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        // 127.0.0.1:6060 LISTEN (0A) inode 111; 0.0.0.0:6061 LISTEN inode 222;
        // 127.0.0.1:6060 ESTABLISHED (01) inode 333.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:17AC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:17AD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:17AC 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1\n";
        std::fs::write(dir.path().join("net/tcp"), tcp).unwrap();
        let at = |port| Listener {
            ip: Some("127.0.0.1".parse().unwrap()),
            port,
        };
        let got = |port| {
            let mut v: Vec<u64> = listening_inodes(&at(port), dir.path())
                .unwrap()
                .into_iter()
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(got(6060), vec![111]);
        assert_eq!(got(6061), vec![222]);
        assert!(got(6062).is_empty());
        // A garbled file is an error naming it.
        std::fs::write(dir.path().join("net/tcp"), "header\ngarbage line\n").unwrap();
        let err = listening_inodes(&at(6060), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("net/tcp"), "{err}");
    }
}
