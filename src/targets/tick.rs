//! A target's loop and its tick: fetch every endpoint that is due, parse, read the
//! system files, then analyse (window and signals). Errors are recorded in the
//! target's state, never returned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::endpoint::{
    ENDPOINT_GOROUTINE, ENDPOINT_GOROUTINELEAK, ENDPOINT_HEAP, ENDPOINT_MEMSTATS, MemStatsSource,
};
use super::goroutines::{GoroutineSummary, blocking_site};
use super::state::{LeakedGoroutines, Status, TargetState, TickObserver};
use super::verdict::{fold_goroutineleak, fold_oom_kills, log_verdict_changes, stale_reason};
use crate::analysis::window::{
    ContainerObservation, GoroutineObservation, Observation, ObserveOutcome,
};
use crate::config::{GcMode, GoroutineFormat, HeapFormat};
use crate::error::Error;
use crate::pprof::heap::{ChunkReader, HeapEstimateReader, HeapMemStatsReader};
use crate::pprof::proto_heap::HeapProtoReader;
use crate::scrape::Fetcher;

/// Runs one target's scrape loop until `shutdown` is cancelled: a jittered first
/// scrape (so many targets don't fire at once), then one scrape per interval, never
/// overlapping, each holding a permit of the shared concurrency bound.
pub async fn run(
    target: Arc<TargetState>,
    fetcher: Fetcher,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    dumps: Option<Arc<crate::dump::DumpManager>>,
    observer: Option<Arc<dyn TickObserver>>,
) {
    // Spread first scrapes over up to half an interval, at most 5 s: enough to avoid a
    // thundering herd of targets, short enough that a new target shows up quickly.
    let spread = (target.config.interval / 2).min(Duration::from_secs(5));
    let jitter = spread.mul_f64(fastrand::f64());
    tokio::select! {
        _ = tokio::time::sleep(jitter) => {}
        _ = shutdown.cancelled() => return,
    }
    loop {
        let started = Instant::now();
        {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            tokio::select! {
                _ = target.scrape_once(&fetcher) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        if let Some(o) = &observer {
            o.tick_done(&target);
        }
        if let Some(d) = &dumps {
            // A verdict turning to "suspected" makes sure a baseline + fresh dump pair is
            // on disk (in the background; cooldown-limited by the dump manager).
            d.on_verdict(&target.config.name, target.leak_suspected());
            d.on_memory(&target.config.name, target.memory_pressure());
        }
        let wait = target.next_delay(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

impl TargetState {
    /// Counts a failed request and drops what that endpoint had reported: a series is
    /// either current or absent, never silently stale. The error text is logged and kept
    /// (pages, `watch`) with the target's known secrets removed: a target may echo the
    /// credentials it refused.
    fn record_error(&self, endpoint: &'static str, err: &Error) {
        let text = self.config.scrub_secrets(&err.to_string());
        tracing::warn!(target_name = %self.config.name, endpoint, error = %text, "scrape failed");
        let mut st = self.status();
        *st.errors.entry((endpoint, err.reason())).or_default() += 1;
        st.last_error = Some(format!("{endpoint}: {text}"));
        match endpoint {
            ENDPOINT_HEAP => {
                st.memstats = None;
                st.heap = None;
                st.heap_totals = None;
            }
            ENDPOINT_GOROUTINE => st.goroutines = None,
            ENDPOINT_MEMSTATS => st.memstats = None,
            ENDPOINT_GOROUTINELEAK => st.leaked = None,
            _ => {}
        }
    }

    /// One tick of the target's loop: every endpoint that is due under the overhead
    /// budget is requested, then the system files are read and the window and signals
    /// updated. Errors are recorded, never returned: a failing target only changes its
    /// own series.
    pub async fn scrape_once(&self, fetcher: &Fetcher) {
        // Readers of the status meanwhile see the previous tick's series (`/metrics`
        // serves the block encoded after it) until this one has written every piece.
        let _tick = self.begin_tick();
        let plan = self.plan(Instant::now());
        if plan.detect_memstats {
            self.detect_memstats_source(fetcher).await;
        }
        if plan.detect_goroutineleak {
            self.detect_goroutineleak(fetcher).await;
        }
        let plan = self.plan(Instant::now());
        let mut heap_ok = None;
        if plan.heap {
            heap_ok = Some(self.scrape_heap(fetcher).await);
        }
        if plan.memstats {
            self.scrape_memstats(fetcher).await;
        }
        if plan.goroutine {
            self.scrape_goroutines(fetcher).await;
        }
        if plan.goroutineleak {
            self.scrape_goroutineleak(fetcher).await;
        }
        if self.config.watches_system() || self.listener.is_some() {
            self.read_system(fetcher).await;
        }
        let now = SystemTime::now();
        // The window is updated on a copy, outside the status lock (and, for a huge heap
        // profile, off the async workers): `/metrics` and the other targets must not wait
        // for it. Readers keep seeing the previous window meanwhile.
        let (obs, window) = {
            let mut st = self.status();
            st.scrapes += 1;
            if let Some(ok) = heap_ok {
                st.up = ok;
                if ok {
                    st.last_success = Some(now);
                }
            }
            st.last_scrape = Some(now);
            (observation(&st, now), st.window.clone())
        };
        let cfg = self.signal_config.clone();
        let big = obs
            .heap
            .as_ref()
            .is_some_and(|h| h.samples.len() > BIG_RECORDS);
        let analysed = off_thread(big, move || {
            let mut window = window;
            let outcome = window.observe(obs);
            let signals = crate::analysis::signals::compute(&window, &cfg);
            Ok((outcome, window, signals))
        })
        .await;
        let Ok((outcome, window, mut signals)) = analysed else {
            tracing::error!(target_name = %self.config.name, "analysis task failed");
            return;
        };
        let mut st = self.status();
        st.window = window;
        if outcome == ObserveOutcome::Restarted {
            tracing::info!(target_name = %self.config.name, "process restarted: analysis window starts again");
            st.leaked_first = None;
            st.leaked = None;
            st.goroutineleak_available = None;
            st.durations.remove(ENDPOINT_GOROUTINELEAK);
            let mut sched = self.schedule();
            sched.goroutineleak_available = None;
            sched.memstats_source = None;
        }
        crate::analysis::verdict::hold(
            &mut signals.verdict,
            st.signals.as_ref().map(|s| &s.verdict),
        );
        fold_goroutineleak(&mut signals, &st);
        fold_oom_kills(
            &mut signals,
            &st,
            crate::units::unix_secs_f64(now),
            st.window.config().span.as_secs_f64(),
        );
        if let Some(why) = stale_reason(&st, !self.selector.is_empty()) {
            signals.verdict.mark_stale(&why);
            signals.time_to_oom = None;
        }
        let suspected = signals.verdict.any_suspected();
        log_verdict_changes(&self.config.name, st.signals.as_ref(), &signals);
        st.signals = Some(signals);
        drop(st);
        self.schedule().policy.on_verdict(suspected, Instant::now());
    }

    /// Asks `/debug/vars` whether the service exposes expvar's `memstats` (the cheapest
    /// MemStats); without it MemStats come from `heap?debug=1` at a lower rate.
    async fn detect_memstats_source(&self, fetcher: &Fetcher) {
        let source = match self.request(fetcher, "/debug/vars").await {
            Ok(f) if crate::pprof::memstats::parse_expvar(&f.body).is_ok() => {
                MemStatsSource::Expvar
            }
            _ => MemStatsSource::HeapDebug1,
        };
        let interval = match source {
            MemStatsSource::Expvar => self.config.interval,
            MemStatsSource::HeapDebug1 => self.config.interval * self.config.memstats_text_every,
        };
        tracing::info!(target_name = %self.config.name, source = source.as_str(), ?interval, "MemStats source detected");
        let mut s = self.schedule();
        s.memstats_source = Some(source);
        s.expvar_failures = 0;
        s.set_memstats_interval(interval);
    }

    /// Whether the `/debug/pprof/` index lists `goroutineleak` (Go 1.27, or 1.26 built
    /// with `GOEXPERIMENT=goroutineleakprofile`). The index is cheap; the profile is not.
    async fn detect_goroutineleak(&self, fetcher: &Fetcher) {
        let available = match self.request(fetcher, "/debug/pprof/").await {
            Ok(f) => Some(String::from_utf8_lossy(&f.body).contains("goroutineleak")),
            // Unreachable: ask again next tick.
            Err(_) => None,
        };
        if let Some(a) = available {
            tracing::info!(target_name = %self.config.name, available = a, "goroutineleak profile detection");
            self.schedule().goroutineleak_available = Some(a);
            let mut st = self.status();
            st.goroutineleak_available = Some(a);
            if !a {
                st.leaked = None;
                st.leaked_first = None;
                st.durations.remove(ENDPOINT_GOROUTINELEAK);
            }
        }
    }

    /// One GET of a path under the target, with its timeout, size cap and credentials.
    async fn request(
        &self,
        fetcher: &Fetcher,
        path: &str,
    ) -> crate::error::Result<crate::scrape::Fetched> {
        let url = self.config.endpoint(path);
        fetcher
            .get_with(
                &url,
                self.request_timeout(),
                self.config.max_body_bytes,
                &self.config.auth,
            )
            .await
    }

    async fn fetch(
        &self,
        fetcher: &Fetcher,
        endpoint: &'static str,
        path: &str,
    ) -> Option<Vec<u8>> {
        let started = Instant::now();
        let result = self.request(fetcher, path).await;
        self.settle(endpoint, started, result.map(|f| (f.elapsed, f.body)))
    }

    /// Books a request to `endpoint`: its time against the overhead budget, then its
    /// duration, or its error.
    fn settle<T>(
        &self,
        endpoint: &'static str,
        started: Instant,
        result: crate::error::Result<(Duration, T)>,
    ) -> Option<T> {
        let took = result.as_ref().map_or(started.elapsed(), |(d, _)| *d);
        self.charge(endpoint, started, took);
        match result {
            Ok((took, value)) => {
                self.status().durations.insert(endpoint, took.as_secs_f64());
                Some(value)
            }
            Err(e) => {
                self.record_error(endpoint, &e);
                None
            }
        }
    }

    /// [`Target::fetch`] with the body parsed as it arrives by `reader`, a batch of
    /// [`BIG_BODY`] at a time on the blocking pool (which only ever parses: it never
    /// waits for the network), so a big body is never held whole (the reader keeps what
    /// it parsed and one line) and a body that stops parsing stops the download. A body
    /// under a batch is parsed here at its end, as a buffered one was. `None` when the
    /// fetch failed (recorded), else the parse.
    async fn fetch_parsed<R: ChunkReader>(
        &self,
        fetcher: &Fetcher,
        endpoint: &'static str,
        path: &str,
        reader: R,
    ) -> Option<crate::error::Result<R::Output>> {
        let started = Instant::now();
        // Booked with the target's time: without the time spent parsing.
        let fetched = self.download_into(fetcher, path, reader).await;
        let parsed = self.settle(endpoint, started, fetched)?;
        // A reader may leave work to its end (a gzipped protobuf is decoded there).
        Some(match parsed {
            Ok((reader, size)) => off_thread(size >= BIG_BODY, move || reader.finish()).await,
            Err(e) => Err(e),
        })
    }

    /// The download of [`Target::fetch_parsed`]: the target's timeout covers the target's
    /// time only (the time spent parsing is added to the deadline, so a slow parse, in a
    /// debug build or on a busy machine, never becomes the target's timeout). Returns
    /// that time and the reader with the body's size, or the parse error that stopped
    /// the download.
    async fn download_into<R: ChunkReader>(
        &self,
        fetcher: &Fetcher,
        path: &str,
        mut reader: R,
    ) -> crate::error::Result<(Duration, crate::error::Result<(R, usize)>)> {
        let url = self.config.endpoint(path);
        let timeout = self.request_timeout();
        let start = tokio::time::Instant::now();
        let mut deadline = start + timeout;
        let mut parsing = Duration::ZERO;
        let get = fetcher.get_streamed(&url, self.config.max_body_bytes, &self.config.auth);
        let mut resp = tokio::time::timeout_at(deadline, get)
            .await
            .map_err(|_| crate::scrape::timed_out(&url, timeout))??;
        let mut batch: Vec<bytes::Bytes> = Vec::new();
        let mut size = 0;
        loop {
            let next = tokio::time::timeout_at(deadline, resp.chunk()).await;
            let chunk = next.map_err(|_| crate::scrape::timed_out(&url, timeout))??;
            let end = chunk.is_none();
            batch.extend(chunk);
            let batched: usize = batch.iter().map(|c| c.len()).sum();
            if batched >= BIG_BODY || (end && batched > 0) {
                size += batched;
                let before = tokio::time::Instant::now();
                let pieces = std::mem::take(&mut batch);
                let fed = off_thread(batched >= BIG_BODY, move || {
                    let fed = pieces.iter().try_for_each(|c| reader.feed(c));
                    Ok((reader, fed))
                })
                .await;
                parsing += before.elapsed();
                deadline += before.elapsed();
                match fed {
                    Ok((r, Ok(()))) => reader = r,
                    Ok((_, Err(e))) | Err(e) => {
                        return Ok((start.elapsed().saturating_sub(parsing), Err(e)));
                    }
                }
            }
            if end {
                return Ok((start.elapsed().saturating_sub(parsing), Ok((reader, size))));
            }
        }
    }

    /// Whether this heap request asks for a GC first (see [`GcMode`]).
    fn wants_gc(&self) -> bool {
        let st = self.status();
        let ask = self
            .schedule()
            .wants_gc(self.config.gc, self.config.warmup, &st.window);
        if ask && self.config.gc == GcMode::Auto {
            tracing::debug!(target_name = %self.config.name, "gc: auto: no GC for a while but HeapAlloc grew; asking for one");
        }
        ask
    }

    /// The heap profile, parsed (text) or decoded (protobuf) as it downloads: never held
    /// whole. The text brings MemStats too (`Some`, even when it has none).
    async fn scrape_heap(&self, fetcher: &Fetcher) -> bool {
        let force_gc = self.wants_gc();
        let parsed = match self.config.heap_format {
            HeapFormat::Text => {
                let gc = if force_gc { "&gc=1" } else { "" };
                let path = format!("/debug/pprof/heap?debug=1{gc}");
                let reader = HeapEstimateReader::new();
                let parsed = self.fetch_parsed(fetcher, ENDPOINT_HEAP, &path, reader);
                parsed
                    .await
                    .map(|r| r.map(|e| (e.profile, Some(e.memstats))))
            }
            HeapFormat::Proto => {
                let gc = if force_gc { "?gc=1" } else { "" };
                let path = format!("/debug/pprof/heap{gc}");
                let reader = HeapProtoReader::new(self.config.max_body_bytes);
                let parsed = self.fetch_parsed(fetcher, ENDPOINT_HEAP, &path, reader);
                parsed.await.map(|r| r.map(|p| (p, None)))
            }
        };
        match parsed {
            None => false,
            Some(Ok((profile, memstats))) => {
                let mut st = self.status();
                st.heap_totals = Some(profile.totals());
                st.heap = Some(Arc::new(profile));
                st.heap_current = force_gc;
                if let Some(m) = memstats {
                    st.memstats = m.map(|m| (m, MemStatsSource::HeapDebug1));
                }
                true
            }
            Some(Err(e)) => {
                self.record_error(ENDPOINT_HEAP, &e);
                false
            }
        }
    }

    /// MemStats alone (heap records come from the protobuf profile).
    async fn scrape_memstats(&self, fetcher: &Fetcher) {
        let source = self.schedule().memstats_source;
        let parsed = match source {
            Some(MemStatsSource::Expvar) => {
                let Some(body) = self.fetch(fetcher, ENDPOINT_MEMSTATS, "/debug/vars").await else {
                    let mut s = self.schedule();
                    s.expvar_failures += 1;
                    if s.expvar_failures >= 3 {
                        s.memstats_source = None;
                    }
                    return;
                };
                crate::pprof::memstats::parse_expvar(&body)
            }
            Some(MemStatsSource::HeapDebug1) => {
                let path = "/debug/pprof/heap?debug=1";
                let reader = HeapMemStatsReader::default();
                let Some(parsed) = self
                    .fetch_parsed(fetcher, ENDPOINT_MEMSTATS, path, reader)
                    .await
                else {
                    return;
                };
                parsed.and_then(|m| {
                    m.ok_or_else(|| Error::NotFormat {
                        format: "heap?debug=1",
                        reason: "no # runtime.MemStats trailer".to_string(),
                    })
                })
            }
            None => return,
        };
        match (parsed, source) {
            (Ok(m), Some(src)) => {
                self.schedule().expvar_failures = 0;
                self.status().memstats = Some((m, src));
            }
            (Err(e), _) => self.record_error(ENDPOINT_MEMSTATS, &e),
            _ => {}
        }
    }

    async fn scrape_goroutineleak(&self, fetcher: &Fetcher) {
        let Some(body) = self
            .fetch(
                fetcher,
                ENDPOINT_GOROUTINELEAK,
                "/debug/pprof/goroutineleak?debug=1",
            )
            .await
        else {
            return;
        };
        match off_thread(body.len() > BIG_BODY, move || {
            crate::pprof::goroutine::parse_goroutine_text(&body).map(|t| t.to_profile())
        })
        .await
        {
            Ok(p) => {
                let mut by_function: BTreeMap<String, u64> = BTreeMap::new();
                for r in &p.records {
                    *by_function
                        .entry(blocking_site(&r.stack).to_string())
                        .or_default() += r.count;
                }
                let mut by_function: Vec<(String, u64)> = by_function.into_iter().collect();
                by_function.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let mut st = self.status();
                if st.leaked_first.is_none() {
                    st.leaked_first = Some(p.total);
                }
                st.leaked = Some(LeakedGoroutines {
                    total: p.total,
                    by_function,
                });
            }
            Err(e) => self.record_error(ENDPOINT_GOROUTINELEAK, &e),
        }
    }

    async fn scrape_goroutines(&self, fetcher: &Fetcher) {
        let parsed = match self.config.goroutine_format {
            GoroutineFormat::Text => {
                let Some(body) = self
                    .fetch(
                        fetcher,
                        ENDPOINT_GOROUTINE,
                        "/debug/pprof/goroutine?debug=1",
                    )
                    .await
                else {
                    return;
                };
                off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::goroutine::parse_goroutine_text(&body).map(|t| t.to_profile())
                })
                .await
            }
            GoroutineFormat::Proto => {
                let Some(body) = self
                    .fetch(fetcher, ENDPOINT_GOROUTINE, "/debug/pprof/goroutine")
                    .await
                else {
                    return;
                };
                let max = self.config.max_body_bytes;
                off_thread(body.len() > BIG_BODY, move || {
                    crate::pprof::proto::decode(&body, max)
                        .and_then(|p| crate::pprof::proto::goroutine_profile(&p))
                })
                .await
            }
        };
        let summary = match parsed {
            Ok(p) => {
                off_thread(p.records.len() > BIG_RECORDS, move || {
                    Ok(GoroutineSummary::from_profile(&p))
                })
                .await
            }
            Err(e) => Err(e),
        };
        match summary {
            Ok(g) => self.status().goroutines = Some(g),
            Err(e) => self.record_error(ENDPOINT_GOROUTINE, &e),
        }
    }
}

/// The observation the window gets from one scrape's state.
fn observation(st: &Status, at: SystemTime) -> Observation {
    let mut obs = Observation::at(at);
    obs.pid = st.system.pid;
    obs.memstats = st.memstats.as_ref().map(|(m, _)| m.clone());
    obs.heap = st.heap.clone();
    obs.heap_current = st.heap_current;
    obs.goroutines = st.goroutines.as_ref().map(|g| GoroutineObservation {
        total: g.total,
        http_client_connections: g.http_client_connections,
        by_state: g
            .by_state
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        by_function: g.by_function.clone(),
    });
    if let Some(Ok(c)) = &st.system.cgroup {
        obs.container = Some(ContainerObservation {
            usage: Some(c.usage),
            working_set: Some(c.working_set()),
            limit: c.limit,
        });
    }
    if let Some(Ok(p)) = &st.system.process {
        obs.rss = Some(p.rss);
        obs.gomemlimit = p.gomemlimit;
        obs.gogc = p.gogc;
        obs.process_start = p.start_time;
        obs.host_available = p.host_available;
    }
    obs
}

/// Bodies and profiles above these sizes are parsed and analysed on the blocking pool.
const BIG_BODY: usize = 1 << 20;
const BIG_RECORDS: usize = 20_000;

/// Runs a parser on the blocking pool when the input is big: a big profile (megabytes of text, a million
/// records) must not stall the async workers that scrape the other targets and serve
/// `/metrics`.
async fn off_thread<T: Send + 'static>(
    big: bool,
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> crate::error::Result<T> {
    if !big {
        // Typical profiles parse in well under a millisecond: not worth a thread hop,
        // and the few blocking threads stay free for the big ones.
        return f();
    }
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::NotFormat {
            format: "profile",
            reason: format!("parser task failed: {e}"),
        })
    })
}
