//! Fleet mode's loop: rescans the node on a schedule, asks each new Go listener
//! whether it serves pprof for that very process, keeps a forwarder into a pod's
//! network namespace where one is needed, and hands the registry the targets found.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::admission::{Decision, Ledger, PortKey};
use super::identity::{IdentityLabels, target_name};
use super::netns::{NetnsForwarder, same_netns};
use super::scan::{GoProcess, ProcessKey, Scanner};
use crate::config::{Candidate, Config, DiscoverFilter, DiscoverReport, Refusal, TargetConfig};
use crate::state::AppState;
use crate::system::listener::cmdline_matches;

/// How long the pprof check of one port may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A process port being watched.
#[derive(Debug)]
struct Adopted {
    name: String,
    url: reqwest::Url,
    labels: Vec<(String, String)>,
    /// Into the process's network namespace, when it is not leakwatch's.
    _forwarder: Option<NetnsForwarder>,
}

/// What fleet mode has found so far.
#[derive(Debug)]
pub struct Fleet {
    scanner: Scanner,
    filter: DiscoverFilter,
    max_targets: usize,
    /// The ports watched, refused until their process ends, or over a cap.
    ledger: Ledger<Adopted>,
    client: reqwest::Client,
    /// Ports over `max_targets` at the last scan, for the log.
    over_cap: usize,
    /// What the last rescan found, for `/metrics`.
    report: DiscoverReport,
    /// Targets of processes that ended, kept for [`Fleet::linger`] so an OOM kill is
    /// seen on them (and their last state scraped), unless a live process took the name.
    ended: Vec<(PortKey, Adopted, std::time::Instant)>,
    /// Two rescans: long enough for Prometheus to scrape an ended target's kill.
    linger: Duration,
}

impl Fleet {
    /// Fleet mode for `config`'s `discover:` section and `system.proc_root`.
    pub fn new(config: &Config) -> crate::Result<Fleet> {
        let client = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| crate::Error::Config(format!("discover: HTTP client: {e}")))?;
        Ok(Fleet {
            scanner: Scanner::new(&config.system.proc_root),
            filter: config.discover.filter()?,
            max_targets: config.discover.max_targets,
            ledger: Ledger::new(
                config.discover.max_targets,
                config.discover.max_ports_per_process,
            ),
            client,
            over_cap: 0,
            report: DiscoverReport::default(),
            ended: Vec::new(),
            linger: config.discover.rescan_interval * 2,
        })
    }

    /// Looks at the node again: drops what ended, checks what is new. Returns the
    /// target configs of everything adopted, built from `config`'s defaults.
    pub async fn rescan(&mut self, config: &Config) -> Vec<TargetConfig> {
        let started = std::time::Instant::now();
        let mut scanner = std::mem::take(&mut self.scanner);
        let procs = match tokio::task::spawn_blocking(move || {
            let procs = scanner.scan();
            (scanner, procs)
        })
        .await
        {
            Ok((scanner, procs)) => {
                self.scanner = scanner;
                procs
            }
            Err(e) => {
                tracing::error!(error = %e, "fleet scan failed");
                self.scanner = Scanner::new(&config.system.proc_root);
                return self.targets(config);
            }
        };
        let alive: BTreeSet<ProcessKey> = procs.iter().map(|p| p.key).collect();
        for (key, mut a) in self.ledger.begin(&alive) {
            tracing::info!(target_name = %a.name, pid = key.0.pid, "discovered process ended");
            a._forwarder = None;
            self.ended.push((key, a, std::time::Instant::now()));
        }
        let linger = self.linger;
        self.ended.retain(|(_, _, at)| at.elapsed() < linger);
        for p in &procs {
            for (i, addr) in p.listening.iter().enumerate() {
                let key = (p.key, addr.port());
                if self.ledger.decide(key, i) != Decision::Check {
                    continue;
                }
                let found = self.check(p, *addr).await;
                if let Ok(a) = &found {
                    tracing::info!(target_name = %a.name, pid = p.key.pid, url = %a.url, go = %p.build.version, "discovered a Go service serving pprof");
                }
                self.ledger.record(key, found);
            }
        }
        let over = self.ledger.refused_for(Refusal::MaxTargets);
        if over > 0 && over != self.over_cap {
            tracing::warn!(
                over,
                max_targets = self.max_targets,
                "discover.max_targets reached: some Go listeners are not watched"
            );
        }
        self.over_cap = over;
        let scanned = started.elapsed();
        self.report = DiscoverReport {
            targets: self.ledger.len(),
            go_processes: procs.len(),
            skipped: self.scanner.skipped(),
            refused: self.ledger.refused(),
            rescans: self.report.rescans + 1,
            last_rescan_seconds: scanned.as_secs_f64(),
        };
        tracing::debug!(
            ms = scanned.as_secs_f64() * 1000.0,
            go_processes = procs.len(),
            adopted = self.ledger.len(),
            refused = ?self.report.refused,
            "fleet rescan done"
        );
        self.targets(config)
    }

    /// What the last rescan found (before the first: nothing, no rescan).
    pub fn report(&self) -> &DiscoverReport {
        &self.report
    }

    /// The adopted ports as target configs, then the ended ones still lingering whose
    /// name no live process took; a live name used twice gets the pid appended.
    fn targets(&self, config: &Config) -> Vec<TargetConfig> {
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        let live: BTreeSet<&str> = self
            .ledger
            .adopted()
            .map(|(_, a)| a.name.as_str())
            .collect();
        let lingering = self
            .ended
            .iter()
            .filter(|(_, a, _)| !live.contains(a.name.as_str()))
            .map(|(k, a, _)| (k, a));
        for ((key, _), a) in self.ledger.adopted().chain(lingering) {
            let mut name = a.name.clone();
            if config.targets.iter().any(|t| t.name == name) || !names.insert(name.clone()) {
                name = format!("{name}:{}", key.pid);
                names.insert(name.clone());
            }
            let labels: Vec<(&str, &str)> = a
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match config.discovered_target(&name, &a.url, key.pid, &labels) {
                Ok(t) => out.push(t),
                Err(e) => {
                    tracing::warn!(target_name = %name, error = %e, "discovered target refused")
                }
            }
        }
        out
    }

    /// Whether `addr` of `p` is a pprof endpoint of `p` itself (its
    /// `/debug/pprof/cmdline` is `p`'s command line: a forwarder or proxy to another
    /// process is not), allowed by the rules; the target if so, else why not.
    async fn check(&self, p: &GoProcess, addr: SocketAddr) -> Result<Adopted, Refusal> {
        let labels = IdentityLabels::new(&p.identity, &p.view);
        let candidate = Candidate {
            namespace: labels.namespace.as_deref(),
            pod: labels.pod.as_deref(),
            container: labels.container.as_deref(),
            exe: &p.exe,
            port: addr.port(),
        };
        if !self.filter.admits(&candidate) {
            return Err(Refusal::Denied);
        }
        let pid = p.key.pid;
        let inside = reachable_inside(addr);
        let (base, forwarder) = match same_netns(pid) {
            Ok(true) => (inside, None),
            Ok(false) => match NetnsForwarder::start(pid, inside).await {
                Ok(f) => (f.local_addr(), Some(f)),
                Err(e) => {
                    tracing::debug!(pid, %addr, error = %e, "cannot reach a listener in its network namespace");
                    return Err(Refusal::Unreachable);
                }
            },
            Err(e) => {
                tracing::debug!(pid, error = %e, "cannot read a process's network namespace");
                return Err(Refusal::Unreachable);
            }
        };
        let no_pprof = |_| Refusal::NoPprof;
        let url = reqwest::Url::parse(&format!("http://{base}/")).map_err(|_| Refusal::NoPprof)?;
        let cmdline = url
            .join("debug/pprof/cmdline")
            .map_err(|_| Refusal::NoPprof)?;
        let resp = self.client.get(cmdline).send().await.map_err(no_pprof)?;
        if !resp.status().is_success() {
            return Err(Refusal::NoPprof);
        }
        let body = resp.bytes().await.map_err(no_pprof)?;
        if !cmdline_matches(&p.cmdline, &body) {
            tracing::debug!(pid, %addr, "serves pprof for another command line (a forwarder?): not adopted");
            return Err(Refusal::CmdlineMismatch);
        }
        Ok(Adopted {
            name: target_name(&p.identity, &p.view, &p.exe, addr.port()),
            url,
            labels: labels
                .pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _forwarder: forwarder,
        })
    }
}

/// Where a listener is reached from inside its own network namespace: its loopback
/// address for one bound to all addresses, else the address it is bound to.
fn reachable_inside(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        // `[::]` usually takes IPv4 too; its loopback works either way.
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Runs fleet mode until `cancel`: a scan at once, then every `rescan_interval`, each
/// swapping the discovered targets into the registry.
pub async fn run(state: Arc<AppState>, cancel: CancellationToken) {
    let config = state.config();
    let mut fleet = match Fleet::new(&config) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "fleet mode cannot start");
            return;
        }
    };
    tracing::info!(every = ?config.discover.rescan_interval, "fleet mode: watching every Go service with pprof on this node");
    loop {
        let config = state.config();
        let found = fleet.rescan(&config).await;
        state.metrics.set_discover(fleet.report().clone());
        state.set_discovered(found);
        tokio::select! {
            _ = tokio::time::sleep(config.discover.rescan_interval) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_reached_on_their_own_loopback() {
        let cases = [
            ("0.0.0.0:6060", "127.0.0.1:6060"),
            ("127.0.0.1:6060", "127.0.0.1:6060"),
            ("127.0.0.2:6060", "127.0.0.2:6060"),
            ("[::]:6060", "[::1]:6060"),
            ("[::1]:7070", "[::1]:7070"),
        ];
        for (bound, want) in cases {
            let got = reachable_inside(bound.parse().unwrap());
            assert_eq!(got, want.parse::<SocketAddr>().unwrap(), "{bound}");
        }
    }
}
