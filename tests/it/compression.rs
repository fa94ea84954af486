//! A real Prometheus (2.42, which asks for `Accept-Encoding: gzip`) scraping leakwatch
//! through a loopback relay that records what went over the wire: the answers are
//! gzip, and Prometheus stores the samples.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::stack::{Proc, prom_query};
use crate::support::{Leakwatch, free_port, wait_until};

/// Relays every connection on a free loopback port to `upstream`, keeping the first
/// bytes of each direction (request and response heads) in `heads`.
fn recording_relay(upstream: String, heads: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let heads = heads.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        {
                            let mut h = heads.lock().unwrap();
                            if h.len() < 1 << 20 {
                                h.extend_from_slice(&buf[..n.min(512)]);
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    port
}

fn sample(base: &str, expr: &str) -> Option<f64> {
    let resp = prom_query(base, expr);
    resp["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_gzip_metrics() {
    let down = free_port();
    let lw = Leakwatch::start(&format!(
        "system:\n  kernel_log: 'off'\ntargets:\n  - name: gone\n    url: http://127.0.0.1:{down}\n    interval: 1s\n"
    ));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let relay = recording_relay(
        lw.url.trim_start_matches("http://").to_string(),
        heads.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: leakwatch\n    static_configs:\n      - targets: ['127.0.0.1:{relay}']\n"
        ),
    )
    .unwrap();
    let prom_url = format!("http://127.0.0.1:{}", free_port());
    let mut prometheus = Proc::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!(
                "--web.listen-address={}",
                prom_url.trim_start_matches("http://")
            )),
        dir.path(),
    );
    prometheus.wait_ready(&format!("{prom_url}/-/ready"), Duration::from_secs(30));
    let up = wait_until(
        Duration::from_secs(30),
        "Prometheus to scrape leakwatch",
        || sample(&prom_url, "up{job=\"leakwatch\"}").filter(|&v| v == 1.0),
    );
    assert_eq!(up, 1.0);
    let target_up = wait_until(
        Duration::from_secs(30),
        "leakwatch_up in Prometheus",
        || sample(&prom_url, "leakwatch_up{job=\"leakwatch\",target=\"gone\"}"),
    );
    assert_eq!(target_up, 0.0, "the target on a closed port is down");
    let wire = String::from_utf8_lossy(&heads.lock().unwrap()).to_lowercase();
    assert!(
        wire.contains("get /metrics") && wire.contains("accept-encoding: gzip"),
        "Prometheus asked for gzip:\n{wire}"
    );
    assert!(
        wire.contains("content-encoding: gzip"),
        "leakwatch answered gzip:\n{wire}"
    );
    drop(prometheus);
}
