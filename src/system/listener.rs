//! Finding the process behind a loopback target when the config names none: the
//! process holding the server side of a TCP connection leakwatch makes to the target
//! for the purpose (that socket's inode found in `/proc/net/tcp{,6}` by the
//! connection's two ends, its holder in each process's `fd/` links), adopted only when
//! its command line is the one the target's own `/debug/pprof/cmdline` reports. A port
//! forwarder in front of the service (docker-proxy, ssh, `kubectl port-forward`) holds
//! that socket but runs another command line; a process merely listening on a similar
//! address, or a supervisor holding the listening socket, never holds it.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procfs::FromReadSI;
use procfs::net::{TcpNetEntries, TcpState};
use procfs::process::{FDTarget, Process};

use crate::{Error, Result};

/// A target on this host's loopback interface: where its service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The target's address; `None` for `localhost` (resolved as the HTTP client does).
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

    /// Where a connection to the target goes, in the order tried: `localhost` through
    /// the system resolver, as the HTTP client's own connections resolve it.
    fn addresses(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self.ip {
            Some(ip) => Ok(vec![SocketAddr::new(ip, self.port)]),
            None => Ok(("localhost", self.port).to_socket_addrs()?.collect()),
        }
    }

    /// A new connection to the target, made as the HTTP client makes its own: the first
    /// address that accepts within `timeout`.
    fn connect(&self, timeout: Duration) -> Result<TcpStream> {
        let io = |source| Error::Io {
            action: "connecting to",
            path: PathBuf::from(match self.ip {
                Some(ip) => SocketAddr::new(ip, self.port).to_string(),
                None => format!("localhost:{}", self.port),
            }),
            source,
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for addr in self.addresses().map_err(io)? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(io(last))
    }
}

/// One line of `/proc/net/tcp` or `tcp6`: a socket's two ends (IPv4-mapped IPv6
/// addresses as IPv4, so both files compare alike), whether it is established, and its
/// inode (0 for a connection the server has not accepted yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub established: bool,
    /// In the LISTEN state: a server socket.
    pub listening: bool,
    pub inode: u64,
}

/// An address as it compares across `tcp` and `tcp6`: `::ffff:a.b.c.d` as `a.b.c.d`,
/// with no IPv6 flow or scope.
fn plain(a: SocketAddr) -> SocketAddr {
    let ip = match a.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    SocketAddr::new(ip, a.port())
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` (a header line, then one socket a line).
pub fn parse_net_tcp(text: &str) -> Result<Vec<TcpSocket>> {
    let entries = TcpNetEntries::from_read(text.as_bytes(), procfs::current_system_info())
        .map_err(|e| Error::NotFormat {
            format: "/proc/net/tcp",
            reason: e.to_string(),
        })?;
    Ok(entries
        .0
        .into_iter()
        .map(|e| TcpSocket {
            local: plain(e.local_address),
            remote: plain(e.remote_address),
            established: e.state == TcpState::Established,
            listening: e.state == TcpState::Listen,
            inode: e.inode,
        })
        .collect())
}

/// The server side of the connection from `client` to `server`: the established socket
/// whose local end is `server` and whose remote end is `client`. Its inode is 0 until
/// the server accepts the connection.
pub fn serving_socket(
    sockets: &[TcpSocket],
    server: SocketAddr,
    client: SocketAddr,
) -> Option<TcpSocket> {
    let (server, client) = (plain(server), plain(client));
    sockets
        .iter()
        .find(|s| s.established && s.local == server && s.remote == client)
        .copied()
}

/// The TCP sockets of `{proc_root}/net/tcp` and `tcp6` (leakwatch's own network
/// namespace, the one its loopback connections use).
pub fn read_net_tcp(proc_root: &Path) -> Result<Vec<TcpSocket>> {
    read_net_tcp_in(&proc_root.join("net"))
}

/// The listening TCP sockets process `pid` holds open, as its own network namespace
/// sees them (`/proc/PID/net/tcp{,6}`: a pod's sockets, not the node's), one per port,
/// lowest port first.
pub fn listening_sockets(proc_root: &Path, pid: u32) -> Result<Vec<TcpSocket>> {
    listening_sockets_in(proc_root, pid, &mut NetnsListeners::new())
}

/// The listening sockets of each network namespace read so far in one scan, by the
/// inode of its `ns/net`: the kernel builds `/proc/PID/net/tcp` by walking the whole
/// connection table (about 10 ms on a busy node), so a scan reads it once per namespace.
pub type NetnsListeners = std::collections::HashMap<u64, Vec<TcpSocket>>;

/// [`listening_sockets`] reading each network namespace's tables once per `seen`; a
/// process holding no socket costs no table read.
pub fn listening_sockets_in(
    proc_root: &Path,
    pid: u32,
    seen: &mut NetnsListeners,
) -> Result<Vec<TcpSocket>> {
    let dir = proc_root.join(pid.to_string());
    let p = Process::new_with_root(dir.clone()).map_err(|e| Error::Io {
        action: "reading",
        path: dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let held: std::collections::HashSet<u64> = match p.fd() {
        Ok(fds) => fds
            .flatten()
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(i) => Some(i),
                _ => None,
            })
            .collect(),
        Err(_) => Default::default(),
    };
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let ns = std::fs::metadata(dir.join("ns/net"))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let cached = ns.and_then(|i| seen.get(&i));
    let all = match cached {
        Some(v) => v.clone(),
        None => {
            let v: Vec<TcpSocket> = read_net_tcp_in(&dir.join("net"))?
                .into_iter()
                .filter(|s| s.listening && s.inode != 0)
                .collect();
            if let Some(i) = ns {
                seen.insert(i, v.clone());
            }
            v
        }
    };
    let mut listening: Vec<TcpSocket> = all
        .into_iter()
        .filter(|s| held.contains(&s.inode))
        .collect();
    listening.sort_by_key(|s| (s.local.port(), s.local.is_ipv6()));
    listening.dedup_by_key(|s| s.local.port());
    Ok(listening)
}

fn read_net_tcp_in(net: &Path) -> Result<Vec<TcpSocket>> {
    let mut sockets = Vec::new();
    for file in ["tcp", "tcp6"] {
        let path = net.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 on this host: no tcp6 file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == "tcp6" => continue,
            Err(source) => {
                return Err(Error::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        let parsed = parse_net_tcp(&text).map_err(|e| Error::BadFile {
            path,
            reason: e.to_string(),
        })?;
        sockets.extend(parsed);
    }
    Ok(sockets)
}

/// Whether process `pid` holds socket `inode` open; false for a process that vanished
/// or whose `fd/` cannot be read.
fn holds(p: &Process, inode: u64) -> bool {
    let Ok(fds) = p.fd() else { return false };
    fds.flatten()
        .any(|fd| matches!(fd.target, FDTarget::Socket(i) if i == inode))
}

/// Processes holding socket `inode` open (lowest first), never leakwatch itself.
/// `known` (the process found last time) is looked at first: when it still holds the
/// socket, no other process is listed.
pub fn pids_holding(inode: u64, proc_root: &Path, known: Option<u32>) -> Result<Vec<u32>> {
    if let Some(pid) = known.filter(|&p| p != std::process::id())
        && let Ok(p) = Process::new_with_root(proc_root.join(pid.to_string()))
        && holds(&p, inode)
    {
        return Ok(vec![pid]);
    }
    let mut pids: Vec<u32> = super::discover::other_processes(proc_root)?
        .filter(|(_, p)| holds(p, inode))
        .map(|(pid, _)| pid)
        .collect();
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
    /// The process serving leakwatch's connection runs the command line the target
    /// reports.
    Process(u32),
    /// The connection's server side is held by no visible process (another PID
    /// namespace, or no permission to read its `fd/`).
    Nothing,
    /// Processes serve the connection, but none runs the target's command line (a
    /// forwarder): their PIDs.
    NotTheService(Vec<u32>),
}

/// The longest wait between two looks for the accepted connection.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// Finds the process serving a connection leakwatch makes to `l` now, and adopts it
/// when its command line is `pprof_cmdline` (the body of the target's
/// `/debug/pprof/cmdline`). `timeout` bounds both the connection and the wait for the
/// server to accept it; `known` is the process found last time (looked at first). The
/// connection stays open until its holder is known, and carries no request.
pub fn find_listener(
    l: &Listener,
    pprof_cmdline: &[u8],
    proc_root: &Path,
    timeout: Duration,
    known: Option<u32>,
) -> Result<Found> {
    let deadline = Instant::now() + timeout;
    let stream = l.connect(timeout)?;
    let ends = stream
        .local_addr()
        .and_then(|c| Ok((c, stream.peer_addr()?)));
    let (client, server) = ends.map_err(|source| Error::Io {
        action: "reading the ends of a connection to",
        path: PathBuf::from(format!("port {}", l.port)),
        source,
    })?;
    // The server's socket has an inode once its process accepts the connection.
    let mut pause = Duration::from_millis(2);
    let inode = loop {
        match serving_socket(&read_net_tcp(proc_root)?, server, client) {
            Some(s) if s.inode != 0 => break s.inode,
            _ if Instant::now() >= deadline => {
                return Err(Error::Io {
                    action: "waiting for a process to accept leakwatch's connection to",
                    path: PathBuf::from(server.to_string()),
                    source: std::io::ErrorKind::TimedOut.into(),
                });
            }
            _ => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(ACCEPT_POLL);
            }
        }
    };
    let pids = pids_holding(inode, proc_root, known)?;
    drop(stream);
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

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    /// `/proc/net/tcp`: 127.0.0.1:6060 listening (111); the two sides of a connection
    /// from 127.0.0.1:40000 to it, server side first (333, 334); a connection to
    /// 127.0.0.2:6060 not accepted yet (inode 0); one in CLOSE_WAIT (444).
    fn net_tcp() -> String {
        let rest = "00000000:00000000 00:00000000 00000000     0        0";
        let line = |n: u8, local: &str, remote: &str, st: &str, inode: u64| {
            format!(
                "   {n}: {local} {remote} {st} {rest} {inode} 1 0000000000000000 20 4 30 10 -1\n"
            )
        };
        [
            HEADER.to_string(),
            line(0, "0100007F:17AC", "00000000:0000", "0A", 111),
            line(1, "0100007F:17AC", "0100007F:9C40", "01", 333),
            line(2, "0100007F:9C40", "0100007F:17AC", "01", 334),
            line(3, "0200007F:17AC", "0100007F:9C41", "01", 0),
            line(4, "0100007F:17AC", "0100007F:9C42", "08", 444),
        ]
        .concat()
    }

    /// `/proc/net/tcp6`: `[::]:6060` listening (555); the server side of a connection
    /// from 127.0.0.1:40003 accepted by a dual-stack socket, v4-mapped (666); the server
    /// side of one from `[::1]:40004` to `[::1]:6060` (777).
    fn net_tcp6() -> String {
        let rest = "00000000:00000000 00:00000000 00000000     0        0";
        let any = "00000000000000000000000000000000";
        let mapped = "0000000000000000FFFF00000100007F";
        let one = "00000000000000000000000001000000";
        let line = |n: u8, local: String, remote: String, st: &str, inode: u64| {
            format!(
                "   {n}: {local} {remote} {st} {rest} {inode} 1 0000000000000000 20 4 30 10 -1\n"
            )
        };
        [
            HEADER.to_string(),
            line(0, format!("{any}:17AC"), format!("{any}:0000"), "0A", 555),
            line(
                1,
                format!("{mapped}:17AC"),
                format!("{mapped}:9C43"),
                "01",
                666,
            ),
            line(2, format!("{one}:17AC"), format!("{one}:9C44"), "01", 777),
        ]
        .concat()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listening_sockets_are_the_ones_the_process_holds() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("[::1]:0").ok();
        let proc_root = Path::new("/proc");
        let mine = listening_sockets(proc_root, std::process::id()).unwrap();
        let ports: Vec<u16> = mine.iter().map(|s| s.local.port()).collect();
        assert!(ports.contains(&a.local_addr().unwrap().port()), "{mine:?}");
        if let Some(b) = &b {
            assert!(ports.contains(&b.local_addr().unwrap().port()), "{mine:?}");
        }
        assert!(mine.iter().all(|s| s.listening && !s.established));
        // One table read per network namespace: a second process of the same one (here
        // the same process again) comes from the scan's cache, with the same answer.
        let mut seen = NetnsListeners::new();
        let first = listening_sockets_in(proc_root, std::process::id(), &mut seen).unwrap();
        assert_eq!(seen.len(), 1);
        let again = listening_sockets_in(proc_root, std::process::id(), &mut seen).unwrap();
        assert_eq!((first.len(), seen.len()), (again.len(), 1));
        // pid 1 (not this process) holds none of them.
        let init = listening_sockets(proc_root, 1).unwrap_or_default();
        assert!(
            !init
                .iter()
                .any(|s| s.local.port() == a.local_addr().unwrap().port()),
            "{init:?}"
        );
    }

    #[test]
    fn net_tcp_lines_ipv4_ipv6_and_v4_mapped() {
        let v4 = parse_net_tcp(&net_tcp()).unwrap();
        assert_eq!(v4.len(), 5);
        assert_eq!(
            v4[1],
            TcpSocket {
                local: addr("127.0.0.1:6060"),
                remote: addr("127.0.0.1:40000"),
                established: true,
                listening: false,
                inode: 333,
            }
        );
        assert!(!v4[0].established && !v4[4].established);
        let v6 = parse_net_tcp(&net_tcp6()).unwrap();
        let ends: Vec<(SocketAddr, SocketAddr)> = v6.iter().map(|s| (s.local, s.remote)).collect();
        assert_eq!(
            ends,
            [
                (addr("[::]:6060"), addr("[::]:0")),
                // v4-mapped addresses read as IPv4, as leakwatch's own socket sees them.
                (addr("127.0.0.1:6060"), addr("127.0.0.1:40003")),
                (addr("[::1]:6060"), addr("[::1]:40004")),
            ]
        );
        // A header alone: no sockets (a host with no IPv6 traffic).
        assert_eq!(parse_net_tcp(HEADER).unwrap(), []);
        for bad in [
            "header\ngarbage line\n",
            "h\n 0: 0100007F:17AC 00000000:0000 ZZ\n",
        ] {
            let err = parse_net_tcp(bad).unwrap_err().to_string();
            assert!(err.contains("/proc/net/tcp"), "{err}");
        }
    }

    /// Which socket serves a connection, given its two ends as leakwatch's own socket
    /// reports them (server = peer, client = local).
    #[test]
    fn the_socket_serving_a_connection() {
        let mut sockets = parse_net_tcp(&net_tcp()).unwrap();
        sockets.extend(parse_net_tcp(&net_tcp6()).unwrap());
        // (server, client, inode of the serving socket)
        let cases: &[(&str, &str, Option<u64>)] = &[
            ("127.0.0.1:6060", "127.0.0.1:40000", Some(333)),
            // Not accepted yet: found, with no inode.
            ("127.0.0.2:6060", "127.0.0.1:40001", Some(0)),
            // Closing: not established.
            ("127.0.0.1:6060", "127.0.0.1:42000", None),
            // The dual-stack listener's accepted socket, v4-mapped in tcp6, whichever
            // form the ends come in.
            ("127.0.0.1:6060", "127.0.0.1:40003", Some(666)),
            (
                "[::ffff:127.0.0.1]:6060",
                "[::ffff:127.0.0.1]:40003",
                Some(666),
            ),
            ("[::1]:6060", "[::1]:40004", Some(777)),
            // A listening socket never serves a connection; nor does another client's.
            ("127.0.0.1:6060", "0.0.0.0:0", None),
            ("[::]:6060", "[::]:0", None),
            ("127.0.0.1:6060", "127.0.0.1:40004", None),
            ("127.0.0.1:6061", "127.0.0.1:40000", None),
        ];
        for (server, client, want) in cases {
            let got = serving_socket(&sockets, addr(server), addr(client)).map(|s| s.inode);
            assert_eq!(got, *want, "{server} <- {client}");
        }
    }

    /// A fixture `/proc`: both files read, a missing `tcp6` is no error, a garbled file
    /// is one naming it.
    #[test]
    fn net_tcp_files_read_from_a_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/tcp"), net_tcp()).unwrap();
        assert_eq!(read_net_tcp(dir.path()).unwrap().len(), 5);
        std::fs::write(dir.path().join("net/tcp6"), net_tcp6()).unwrap();
        assert_eq!(read_net_tcp(dir.path()).unwrap().len(), 8);
        std::fs::write(dir.path().join("net/tcp6"), "header\ngarbage line\n").unwrap();
        let err = read_net_tcp(dir.path()).unwrap_err().to_string();
        assert!(err.contains("net/tcp6"), "{err}");
    }

    /// On this host's `/proc`: leakwatch never adopts itself; a listener that never
    /// accepts, or no listener at all, is an error, not "nothing there".
    #[test]
    fn looking_on_this_host() {
        let proc_root = Path::new("/proc");
        let short = Duration::from_millis(300);
        let at = |port| Listener {
            ip: Some("127.0.0.1".parse().unwrap()),
            port,
        };
        // Served by this very process: excluded, even when named as the known one.
        let serving = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = serving.local_addr().unwrap().port();
        let accepted = std::thread::spawn(move || serving.accept().map(|(s, _)| s));
        let own = Some(std::process::id());
        let found = find_listener(&at(port), b"x", proc_root, Duration::from_secs(5), own);
        assert_eq!(found.unwrap(), Found::Nothing);
        drop(accepted.join());
        // Bound and listening, never accepting: the kernel completes the handshake, but
        // no process ever holds the server side.
        let idle = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = idle.local_addr().unwrap().port();
        let err = find_listener(&at(port), b"x", proc_root, short, None).unwrap_err();
        assert!(err.to_string().contains("accept"), "{err}");
        drop(idle);
        let err = find_listener(&at(port), b"x", proc_root, short, None).unwrap_err();
        assert!(
            err.to_string().contains("connecting to 127.0.0.1:"),
            "{err}"
        );
    }
}
