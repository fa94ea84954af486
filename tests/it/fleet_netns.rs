//! A leaky-service bound to 127.0.0.1 inside a network namespace of its own (made with
//! `unshare --net`, its `lo` brought up; the namespace ends with the process, so a
//! failing test leaves nothing behind): unreachable from the host's 127.0.0.1, reached
//! through `NetnsForwarder` with reqwest; and the errors without the privileges.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leakwatch::fleet::netns::{
    MAX_FORWARDED_CONNECTIONS, NetnsForwarder, connect_in_netns, netns_id, same_netns,
};

use crate::support::{build_leaky_service, free_port, in_ci, skip_unless_ci, toolchain};

/// A leaky-service in a fresh network namespace; dropping it kills the process, which
/// ends the namespace.
struct NsService {
    child: Child,
    port: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl NsService {
    /// None when namespaces cannot be made here (not root, no `unshare`/`ip`).
    fn start() -> Option<NsService> {
        let bin = build_leaky_service(&toolchain("1.26"));
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        // A port free on the host: whatever answers there from the host is not the
        // service in the namespace.
        let port = free_port();
        let child = Command::new("unshare")
            .args(["--net", "sh", "-c"])
            .arg(r#"ip link set lo up && exec "$0" -addr "127.0.0.1:$1""#)
            .arg(&bin)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .ok()?;
        let mut svc = NsService {
            child,
            port,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(&svc.stderr).unwrap_or_default();
            if log.contains("serving pprof on http://") {
                return Some(svc);
            }
            if svc.child.try_wait().unwrap().is_some() {
                eprintln!("cannot run leaky-service in a new network namespace: {log}");
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "no listen line within 15s: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn target(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for NsService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[test]
fn a_listener_on_another_namespaces_localhost_is_reached_through_the_forwarder() {
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let Some(svc) = skip_unless_ci(
        root.then(NsService::start).flatten(),
        in_ci(),
        "root and unshare --net",
    ) else {
        return;
    };
    let pid = svc.pid();
    let port = svc.port;
    assert!(
        !same_netns(pid).unwrap(),
        "the service shares our namespace"
    );
    assert!(same_netns(std::process::id()).unwrap());
    let refused = TcpStream::connect_timeout(&svc.target(), Duration::from_secs(1));
    assert!(refused.is_err(), "127.0.0.1:{port} answered on the host");

    // A plain connection made inside the namespace.
    let ns = netns_id(Some(pid)).unwrap();
    let mut s = connect_in_netns(pid, ns, svc.target()).unwrap();
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 200") && reply.ends_with("ok"),
        "{reply}"
    );

    let rt = runtime();
    rt.block_on(async {
        let fwd = NetnsForwarder::start(pid, svc.target()).await.unwrap();
        let local = fwd.local_addr();
        assert!(local.ip().is_loopback() && local.port() != port, "{local}");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{local}");

        let (status, cmdline) = get(&client, &format!("{base}/debug/pprof/cmdline")).await;
        let cmdline = String::from_utf8_lossy(&cmdline).to_string();
        assert_eq!(status, 200);
        assert!(
            cmdline.contains("leaky-service") && cmdline.contains(&format!("127.0.0.1:{port}")),
            "{cmdline:?}"
        );
        let (status, heap) = get(&client, &format!("{base}/debug/pprof/heap?debug=1")).await;
        assert_eq!(status, 200);
        assert!(
            heap.starts_with(b"heap profile: "),
            "{:?}",
            String::from_utf8_lossy(&heap[..heap.len().min(80)])
        );
        let (status, proto) = get(&client, &format!("{base}/debug/pprof/heap")).await;
        assert_eq!(status, 200);
        assert!(
            proto.starts_with(&[0x1f, 0x8b]),
            "the protobuf heap profile is gzip"
        );

        // More requests at once than the forwarder carries: they queue, none fails.
        let started = Instant::now();
        let many = (0..3 * MAX_FORWARDED_CONNECTIONS).map(|_| {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let url = format!("{base}/healthz");
            tokio::spawn(async move { get(&client, &url).await })
        });
        for r in futures_util::future::join_all(many).await {
            assert_eq!(r.unwrap(), (200, b"ok".to_vec()));
        }
        eprintln!(
            "{} concurrent GETs through the forwarder in {:?}",
            3 * MAX_FORWARDED_CONNECTIONS,
            started.elapsed()
        );

        // Dropped: the listener closes.
        drop(fwd);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(local).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{local} still accepts after the drop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Nothing listens on another port in the namespace: the client sees the
        // connection closed, the forwarder keeps running.
        let other = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let fwd = NetnsForwarder::start(pid, other).await.unwrap();
        let url = format!("http://{}/healthz", fwd.local_addr());
        assert!(client.get(&url).send().await.is_err());
        assert!(client.get(&url).send().await.is_err());
    });

    helper_runs_without(
        &svc,
        &["--inh-caps=-sys_admin", "--bounding-set=-sys_admin"],
        "setns needs CAP_SYS_ADMIN",
    );
    helper_runs_without(
        &svc,
        &["--reuid=65534", "--regid=65534", "--clear-groups"],
        "needs CAP_SYS_PTRACE",
    );

    // The process gone, its namespace with it: a clear error at start.
    drop(svc);
    let err = rt
        .block_on(NetnsForwarder::start(
            pid,
            SocketAddr::from(([127, 0, 0, 1], port)),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("(the process has exited)"), "{err}");
    let err = same_netns(pid).unwrap_err().to_string();
    assert!(err.contains(&format!("pid {pid}")), "{err}");
}

/// Runs [`unprivileged_start_fails`] in this test binary under `setpriv` with `args`
/// (capabilities are per process: the test cannot drop its own for one call) and checks
/// the error it prints contains `want`.
fn helper_runs_without(svc: &NsService, args: &[&str], want: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(args)
        .arg(&exe)
        .args([
            "fleet_netns::unprivileged_start_fails",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("LW_NETNS_PID", svc.pid().to_string())
        .env("LW_NETNS_TARGET", svc.target().to_string())
        .output()
        .expect("run setpriv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "setpriv {args:?}: {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("forwarder error: "))
        .unwrap_or_else(|| panic!("setpriv {args:?}: no error printed: {text}"));
    assert!(line.contains(want), "setpriv {args:?}: {line}");
}

/// Run by [`helper_runs_without`] only (it sets `LW_NETNS_PID`): starting a forwarder
/// without the privileges fails, and the error is printed for the parent to check.
#[test]
#[ignore = "run by a_listener_on_another_namespaces_localhost_is_reached_through_the_forwarder"]
fn unprivileged_start_fails() {
    let Ok(pid) = std::env::var("LW_NETNS_PID") else {
        return;
    };
    let pid: u32 = pid.parse().unwrap();
    let target: SocketAddr = std::env::var("LW_NETNS_TARGET").unwrap().parse().unwrap();
    let err = runtime()
        .block_on(NetnsForwarder::start(pid, target))
        .expect_err("a forwarder started without the privileges");
    println!("forwarder error: {err}");
}
