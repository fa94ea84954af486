//! leakwatch's own HTTP server loop: accepting under a connection cap
//! (`--web.max-connections`), header-read and idle timeouts as Go's `http.Server` has
//! them, TLS handshakes inside each connection's task, graceful shutdown; and raising
//! the soft open-file limit at start.
//!
//! Why it is not `axum::serve`: that accepts without bound and never times a
//! connection out, so 1,100 connections that send nothing exhausted a 1024 open-file
//! limit and `/metrics` failed on accept for as long as they were held (issue 15).
//!
//! The policy, for a server that must keep answering Prometheus:
//! - at most `max_connections` connections are open (Prometheus' default, 512), so
//!   the exporter's own work (scrapes, dumps, config reads) always has descriptors;
//! - when the cap is reached, a new connection replaces, first, the oldest one that
//!   has owed a complete request head for [`HEAD_DUE`] (since it was accepted or its
//!   last answer was sent), however many bytes it trickles; else the oldest one that
//!   has no request running and has been quiet (no byte either way) for a second: an
//!   idle or half-header connection makes way for one that may be about to send a
//!   request. Only when every connection is busy does accepting wait, as Prometheus'
//!   does. (Before the first rule, 640 connections sending a header byte every 0.9 s
//!   were never quiet for a second and held every slot: `/metrics` answered 1 time
//!   in 13.)
//! - a request head must arrive within `header_read_timeout` (hyper counts the wait
//!   for the next request on a kept-alive connection as part of it, so this is also
//!   how long a kept-alive connection may sit idle);
//! - a connection with no request running that moves no byte for `idle_timeout`
//!   (a client that stopped reading its answer) is closed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client that connects and never finishes its TLS handshake holds its slot only
/// this long (and is replaced sooner when the cap is reached).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection must have been quiet before a new one may replace it at the
/// cap: long enough for a client that just connected to send its request.
const REPLACEABLE_AFTER: Duration = Duration::from_secs(1);

/// How long a connection may take to send a complete request head (from its accept,
/// or from its last answer on a kept-alive connection) before it is the first to be
/// replaced at the cap: ample for any client that means to send one, TLS handshake
/// included.
pub const HEAD_DUE: Duration = Duration::from_secs(2);

/// [`Conn::awaiting_head_since`] while a request is being answered.
const ANSWERING: u64 = u64::MAX;

/// Limits of leakwatch's own HTTP server. The defaults are what `leakwatch` runs with;
/// `--web.max-connections` sets the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once (Prometheus' `--web.max-connections`, default 512).
    pub max_connections: usize,
    /// Time allowed for a request head, and for a kept-alive connection to send the
    /// next one (Go's `ReadHeaderTimeout`; 30 s, hyper's default).
    pub header_read_timeout: Duration,
    /// Time a connection with no request running may move no byte (Go's
    /// `IdleTimeout` and, for answers nobody reads, `WriteTimeout`; 60 s).
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Prometheus' default for `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does at start
/// since Go 1.19, and returns the limit now in force (warns and returns what it
/// can read on failure).
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open-file limit");
            Some(limit)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

// ---------------------------------------------------------------------------------
// The connection table
// ---------------------------------------------------------------------------------

/// One open connection as the accept loop sees it.
struct Conn {
    /// Milliseconds since the table's epoch at the last byte read or written.
    last_progress: AtomicU64,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// Milliseconds since the table's epoch at which the connection began to owe a
    /// request head (its accept, or the end of its last answer); [`ANSWERING`] from a
    /// complete head until its answer is sent.
    awaiting_head_since: AtomicU64,
    /// Cancelled to close the connection at once (replaced at the cap).
    close: CancellationToken,
}

/// Every open connection, by accept order, and a signal when one closes.
struct Table {
    epoch: Instant,
    max: usize,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    freed: Notify,
}

impl Table {
    fn new(max: usize) -> Table {
        Table {
            epoch: Instant::now(),
            max: max.max(1),
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            freed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A slot for a connection just accepted: at once when under the cap; otherwise
    /// after replacing the oldest quiet connection, or when one closes.
    async fn slot(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            {
                let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                if open.len() < self.max {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let conn = Arc::new(Conn {
                        last_progress: AtomicU64::new(self.now_ms()),
                        in_flight: AtomicUsize::new(0),
                        awaiting_head_since: AtomicU64::new(self.now_ms()),
                        close: CancellationToken::new(),
                    });
                    open.insert(id, conn.clone());
                    return Slot {
                        table: self.clone(),
                        id,
                        conn,
                    };
                }
                let now = self.now_ms();
                let head_overdue = now.saturating_sub(HEAD_DUE.as_millis() as u64);
                let quiet_since = now.saturating_sub(REPLACEABLE_AFTER.as_millis() as u64);
                let idle = || {
                    open.values().filter(|c| {
                        !c.close.is_cancelled() && c.in_flight.load(Ordering::Acquire) == 0
                    })
                };
                let oldest_overdue =
                    idle().find(|c| c.awaiting_head_since.load(Ordering::Relaxed) <= head_overdue);
                let victim = oldest_overdue.or_else(|| {
                    idle().find(|c| c.last_progress.load(Ordering::Relaxed) <= quiet_since)
                });
                if let Some(c) = victim {
                    tracing::debug!(
                        "connection limit reached: closing the oldest connection owing a request head or idle"
                    );
                    c.close.cancel();
                }
            }
            // The replaced connection's task frees its slot promptly; if none could
            // be replaced, look again when one closes or becomes quiet.
            let _ = tokio::time::timeout(Duration::from_millis(100), freed).await;
        }
    }
}

/// A connection's place in the table; dropping it frees the place.
struct Slot {
    table: Arc<Table>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.table.freed.notify_one();
    }
}

/// Marks a request's handler as running on its connection.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: &Arc<Conn>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that marks its connection as owing the next request head once
/// the answer is sent (hyper drops the body at its end, or with the connection).
struct Answer {
    body: Body,
    table: Arc<Table>,
    conn: Arc<Conn>,
}

impl hyper::body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.conn
            .awaiting_head_since
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

/// A stream that records when bytes last moved, for the idle timeout and for choosing
/// which connection to replace.
struct Metered {
    inner: TcpStream,
    table: Arc<Table>,
    conn: Arc<Conn>,
}

impl Metered {
    fn moved(&self) {
        self.conn
            .last_progress
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------

/// Accepts on `listener` under `limits` and serves `app` on each connection (over TLS
/// with `tls`) until `shutdown` completes; then stops accepting, lets in-flight
/// requests finish and returns when every connection has closed.
pub(super) async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Table::new(limits.max_connections));
    let stopping = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning, as axum does.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let slot = tokio::select! {
            s = table.slot() => s,
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = Metered {
            inner: stream,
            table: table.clone(),
            conn: slot.conn.clone(),
        };
        tokio::spawn(connection(
            io,
            peer,
            slot,
            app.clone(),
            tls.clone(),
            limits,
            stopping.clone(),
        ));
    }
    drop(listener);
    stopping.cancel();
    while table.len() > 0 {
        let _ = tokio::time::timeout(Duration::from_millis(100), table.freed.notified()).await;
    }
    Ok(())
}

/// One connection, from the TLS handshake to its close.
async fn connection(
    io: Metered,
    peer: std::net::SocketAddr,
    slot: Slot,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    stopping: CancellationToken,
) {
    let conn = slot.conn.clone();
    match tls {
        None => serve_http(io, false, slot, app, limits, stopping).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => r,
                _ = conn.close.cancelled() => return,
                _ = stopping.cancelled() => return,
            };
            match handshake {
                Ok(Ok(tls)) => serve_http(tls, true, slot, app, limits, stopping).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/1.1 on an accepted (and, with TLS, handshaken) connection.
async fn serve_http<I>(
    io: I,
    tls: bool,
    slot: Slot,
    app: axum::Router,
    limits: ServerLimits,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = slot.conn.clone();
    let for_requests = conn.clone();
    let table = slot.table.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        // A complete head: the connection owes none until its answer is sent.
        for_requests
            .awaiting_head_since
            .store(ANSWERING, Ordering::Relaxed);
        let running = InFlight::new(&for_requests);
        let (app, table, conn) = (app.clone(), table.clone(), for_requests.clone());
        let mut req = req.map(Body::new);
        if tls {
            req.extensions_mut().insert(super::address::ServedOverTls);
        }
        async move {
            let response = app.oneshot(req).await;
            drop(running);
            response.map(|r| r.map(|body| Answer { body, table, conn }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let served = builder.serve_connection(TokioIo::new(io), service);
    let mut served = std::pin::pin!(served);
    let mut graceful = false;
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection closed with an error");
                }
                return;
            }
            _ = conn.close.cancelled() => return,
            _ = stopping.cancelled(), if !graceful => {
                graceful = true;
                served.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(check_every) => {
                let quiet = slot.table.now_ms().saturating_sub(conn.last_progress.load(Ordering::Relaxed));
                if conn.in_flight.load(Ordering::Acquire) == 0 && quiet >= idle_ms {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}
