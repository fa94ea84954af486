//! Fleet mode's bookkeeping of process ports, decided without I/O: which listening
//! ports are watched, which are refused (and why) until their process ends, which are
//! over a cap this rescan, and which are new and to be asked for pprof; with the counts
//! `/metrics` shows.
//!
//! A rescan [`Ledger::begin`]s with the processes alive, asks [`Ledger::decide`] for
//! each listening port of each Go process (lowest port first) and [`Ledger::record`]s
//! what the check of a new one found. A port that does not serve pprof for its own
//! process is asked once: not again until the process restarts (a new [`ProcessKey`]).

use std::collections::{BTreeMap, BTreeSet};

use super::scan::ProcessKey;
use crate::config::Refusal;

/// One port of one process, the unit fleet mode adopts or refuses.
pub type PortKey = (ProcessKey, u16);

/// What to do with one listening port at a rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Watched already, or refused until its process ends: nothing to do.
    Known,
    /// Over a cap: not asked this rescan (counted).
    Over(Refusal),
    /// New: ask it whether it serves pprof for its process.
    Check,
}

/// The ports adopted (each with its `T`), refused, and over a cap.
#[derive(Debug)]
pub struct Ledger<T> {
    max_targets: usize,
    max_ports: usize,
    adopted: BTreeMap<PortKey, T>,
    /// Refused until the process ends (only [`Refusal::remembered`] reasons).
    refused: BTreeMap<PortKey, Refusal>,
    /// Ports over a cap at the current rescan.
    over: BTreeMap<Refusal, usize>,
}

impl<T> Ledger<T> {
    /// At most `max_targets` ports adopted, and `max_ports` of each process asked.
    pub fn new(max_targets: usize, max_ports: usize) -> Self {
        Ledger {
            max_targets,
            max_ports,
            adopted: BTreeMap::new(),
            refused: BTreeMap::new(),
            over: BTreeMap::new(),
        }
    }

    /// Starts a rescan: forgets every process not in `alive` (a restarted one is a new
    /// key, looked at afresh) and returns the adopted ports of those that ended.
    pub fn begin(&mut self, alive: &BTreeSet<ProcessKey>) -> Vec<(PortKey, T)> {
        self.over.clear();
        self.refused.retain(|(k, _), _| alive.contains(k));
        let gone: Vec<PortKey> = self
            .adopted
            .keys()
            .filter(|(k, _)| !alive.contains(k))
            .copied()
            .collect();
        gone.into_iter()
            .filter_map(|key| self.adopted.remove(&key).map(|t| (key, t)))
            .collect()
    }

    /// What to do with `key`, the `index`th listening port of its process (lowest
    /// first). A port over a cap is counted for this rescan.
    pub fn decide(&mut self, key: PortKey, index: usize) -> Decision {
        if self.adopted.contains_key(&key) || self.refused.contains_key(&key) {
            return Decision::Known;
        }
        let why = if index >= self.max_ports {
            Refusal::MaxPortsPerProcess
        } else if self.adopted.len() >= self.max_targets {
            Refusal::MaxTargets
        } else {
            return Decision::Check;
        };
        *self.over.entry(why).or_default() += 1;
        Decision::Over(why)
    }

    /// What the check of a new port found: adopted, or refused until its process ends.
    pub fn record(&mut self, key: PortKey, found: Result<T, Refusal>) {
        match found {
            Ok(t) => {
                self.adopted.insert(key, t);
            }
            Err(why) => {
                debug_assert!(why.remembered(), "{why:?} is decided every rescan");
                self.refused.insert(key, why);
            }
        }
    }

    /// The adopted ports, in key order.
    pub fn adopted(&self) -> impl Iterator<Item = (&PortKey, &T)> {
        self.adopted.iter()
    }

    /// How many ports are adopted.
    pub fn len(&self) -> usize {
        self.adopted.len()
    }

    /// Whether no port is adopted.
    pub fn is_empty(&self) -> bool {
        self.adopted.is_empty()
    }

    /// Ports not watched, by why: those refused until their process ends, and those
    /// over a cap at this rescan. Every reason, in [`Refusal::ALL`] order.
    pub fn refused(&self) -> Vec<(Refusal, usize)> {
        Refusal::ALL
            .iter()
            .map(|&why| {
                let kept = self.refused.values().filter(|r| **r == why).count();
                (why, kept + self.over.get(&why).copied().unwrap_or(0))
            })
            .collect()
    }

    /// Ports refused for `why` (see [`Ledger::refused`]).
    pub fn refused_for(&self, why: Refusal) -> usize {
        self.refused()
            .into_iter()
            .find(|(r, _)| *r == why)
            .map_or(0, |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, start_ticks: u64) -> ProcessKey {
        ProcessKey { pid, start_ticks }
    }

    /// One rescan as the runner drives it: every listening port of every process in
    /// order, `serves` answering the check of each new port. Returns the ports checked.
    fn rescan(
        ledger: &mut Ledger<u16>,
        procs: &[(ProcessKey, &[u16])],
        serves: impl Fn(PortKey) -> Result<u16, Refusal>,
    ) -> Vec<PortKey> {
        let alive: BTreeSet<ProcessKey> = procs.iter().map(|(k, _)| *k).collect();
        ledger.begin(&alive);
        let mut checked = Vec::new();
        for (k, ports) in procs {
            for (i, port) in ports.iter().enumerate() {
                let key = (*k, *port);
                if ledger.decide(key, i) == Decision::Check {
                    checked.push(key);
                    ledger.record(key, serves(key));
                }
            }
        }
        checked
    }

    fn pprof_on_6060(key: PortKey) -> Result<u16, Refusal> {
        match key.1 {
            6060 => Ok(key.1),
            8080 => Err(Refusal::NoPprof),
            9000 => Err(Refusal::CmdlineMismatch),
            _ => Err(Refusal::Denied),
        }
    }

    fn counts(ledger: &Ledger<u16>) -> Vec<(&'static str, usize)> {
        ledger
            .refused()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str(), n))
            .collect()
    }

    #[test]
    fn max_targets_leaves_the_rest_unasked_and_counted_until_room_frees() {
        // (max_targets, processes (each serving pprof on 6060), adopted, over the cap)
        let cases: [(usize, usize, usize, usize); 4] =
            [(1, 3, 1, 2), (2, 3, 2, 1), (3, 3, 3, 0), (200, 3, 3, 0)];
        for (max, n, want_adopted, want_over) in cases {
            let mut l = Ledger::new(max, 8);
            let keys: Vec<ProcessKey> = (0..n as u32).map(|i| proc(100 + i, 7)).collect();
            let procs: Vec<(ProcessKey, &[u16])> =
                keys.iter().map(|k| (*k, &[6060u16][..])).collect();
            let checked = rescan(&mut l, &procs, pprof_on_6060);
            assert_eq!(checked.len(), want_adopted, "max {max}: {checked:?}");
            assert_eq!(l.len(), want_adopted, "max {max}");
            assert_eq!(l.refused_for(Refusal::MaxTargets), want_over, "max {max}");
            // The lowest pids are the ones watched.
            let pids: Vec<u32> = l.adopted().map(|((k, _), _)| k.pid).collect();
            let want: Vec<u32> = (0..want_adopted as u32).map(|i| 100 + i).collect();
            assert_eq!(pids, want, "max {max}");
            // Over the cap is decided again each rescan: still counted, never asked.
            assert!(rescan(&mut l, &procs, pprof_on_6060).is_empty());
            assert_eq!(l.refused_for(Refusal::MaxTargets), want_over, "max {max}");
        }

        // A watched process ends: the first one over the cap is asked and adopted at
        // the next rescan, and nothing is over any more.
        let mut l = Ledger::new(2, 8);
        let (a, b, c) = (proc(100, 1), proc(200, 1), proc(300, 1));
        let port: &[u16] = &[6060];
        rescan(&mut l, &[(a, port), (b, port), (c, port)], pprof_on_6060);
        assert_eq!(counts(&l), [("max_targets", 1)]);
        let checked = rescan(&mut l, &[(b, port), (c, port)], pprof_on_6060);
        assert_eq!(checked, [(c, 6060)]);
        assert_eq!(l.len(), 2);
        assert_eq!(counts(&l), []);
    }

    #[test]
    fn only_the_first_ports_of_a_process_are_asked() {
        // (max_ports_per_process, its listening ports, checked, over the cap)
        let cases: [(usize, &[u16], &[u16], usize); 4] = [
            (8, &[6060, 8080, 9000], &[6060, 8080, 9000], 0),
            (2, &[6060, 8080, 9000], &[6060, 8080], 1),
            (1, &[6060, 8080, 9000, 9100], &[6060], 3),
            // pprof past the cap is never asked.
            (1, &[5000, 6060], &[5000], 1),
        ];
        for (max, ports, want, over) in cases {
            let mut l = Ledger::new(200, max);
            let p = proc(42, 9);
            let checked = rescan(&mut l, &[(p, ports)], pprof_on_6060);
            let got: Vec<u16> = checked.iter().map(|(_, port)| *port).collect();
            assert_eq!(got, want, "max {max}, ports {ports:?}");
            assert_eq!(l.refused_for(Refusal::MaxPortsPerProcess), over);
            // Still over the cap at the next rescan, still not asked.
            assert!(rescan(&mut l, &[(p, ports)], pprof_on_6060).is_empty());
            assert_eq!(l.refused_for(Refusal::MaxPortsPerProcess), over);
        }
    }

    #[test]
    fn a_port_without_pprof_is_asked_once_until_its_process_restarts() {
        let mut l = Ledger::new(200, 8);
        // A Go program with a port but no pprof, a forwarder, a denied one, a service.
        let plain = proc(10, 100);
        let forwarder = proc(11, 100);
        let denied = proc(12, 100);
        let svc = proc(13, 100);
        let node = |plain: ProcessKey| {
            [
                (plain, &[8080u16][..]),
                (forwarder, &[9000][..]),
                (denied, &[7000][..]),
                (svc, &[6060][..]),
            ]
        };
        let first = rescan(&mut l, &node(plain), pprof_on_6060);
        assert_eq!(first.len(), 4, "every new port is asked: {first:?}");
        assert_eq!(
            counts(&l),
            [("denied", 1), ("no_pprof", 1), ("cmdline_mismatch", 1)]
        );
        // Rescans after: nobody is asked again, the counts stand.
        for _ in 0..3 {
            let again = rescan(&mut l, &node(plain), |k| panic!("{k:?} asked again"));
            assert!(again.is_empty());
        }
        assert_eq!(l.len(), 1);
        assert_eq!(
            counts(&l),
            [("denied", 1), ("no_pprof", 1), ("cmdline_mismatch", 1)]
        );
        // The plain program restarts with the same pid: a new incarnation, asked again
        // (once); the old one's refusal is gone with it.
        let restarted = proc(10, 250);
        let checked = rescan(&mut l, &node(restarted), pprof_on_6060);
        assert_eq!(checked, [(restarted, 8080)]);
        assert_eq!(l.refused_for(Refusal::NoPprof), 1);
        // Every process ends: nothing refused or watched is left, and the adopted port
        // is handed back.
        let gone = l.begin(&BTreeSet::new());
        assert_eq!(gone, [((svc, 6060), 6060)]);
        assert_eq!(counts(&l), []);
        assert!(l.is_empty());
    }
}
