//! What keeps the server answerable when clients misbehave: every
//! connection is watched, and closed when it holds the server without asking
//! anything of it.
//!
//! A connection must send a complete request head within the read-header
//! timeout of being accepted (its TLS handshake included), and of the first
//! byte of each later request; between requests it may stay idle for the
//! idle timeout. A request in progress is never cut (the scrape deadline
//! bounds it); once its response head is written, the client has the idle
//! timeout to read the body. At most `max_connections` are open: a new one
//! beyond that closes the connection that has waited longest without a
//! request in progress (one that never sent a request first), and is itself
//! refused only when every connection is busy. The same rules hold for
//! HTTP/1.1 and HTTP/2, plain and over TLS, because they watch bytes and
//! requests, not the protocol.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The bounds every connection is held to, from the `--web.*` flags.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--web.read-header-timeout`: longest a request head may take to arrive.
    pub read_header_timeout: Duration,
    /// `--web.idle-timeout`: longest a connection may wait between requests.
    pub idle_timeout: Duration,
    /// `--web.max-connections`, lowered to fit the open-file limit.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 512,
        }
    }
}

impl Limits {
    /// `max_connections` lowered so that connections leave room, under the
    /// soft open-file limit, for the Graph API client, the store and the
    /// process (a quarter of the limit, at least 64 descriptors).
    pub fn fitted(mut self) -> Limits {
        if let Some(nofile) = open_file_limit() {
            let room = nofile.saturating_sub((nofile / 4).max(64)).max(1);
            if room < self.max_connections as u64 {
                tracing::warn!(
                    max_connections = self.max_connections,
                    open_file_limit = nofile,
                    lowered_to = room,
                    "--web.max-connections lowered to fit the open-file limit (ulimit -n)"
                );
                self.max_connections = room as usize;
            }
        }
        self
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    soft.parse().ok()
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Why a connection's watch ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No complete request head in time.
    HeaderTimeout,
    /// Idle past the idle timeout.
    IdleTimeout,
    /// Closed to make room for a new connection.
    Evicted,
}

impl Cut {
    /// The `reason` label of `whatsapp_http_connections_closed_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Cut::HeaderTimeout => "header_timeout",
            Cut::IdleTimeout => "idle_timeout",
            Cut::Evicted => "evicted",
        }
    }
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    requests: u64,
    /// When the connection last had no request in progress.
    idle_since: Instant,
    /// First byte read since then, if any: a request head on its way.
    reading_since: Option<Instant>,
    evicted: bool,
}

/// One connection's activity, shared by its I/O, its requests and its watch.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    wake: Notify,
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                requests: 0,
                idle_since: now,
                reading_since: None,
                evicted: false,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_bytes(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.reading_since.is_none() {
            s.reading_since = Some(Instant::now());
            drop(s);
            self.wake.notify_one();
        }
    }

    /// A request head arrived; the guard ends the request when its response
    /// head is ready.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        let mut s = self.lock();
        s.in_flight += 1;
        s.requests += 1;
        s.reading_since = None;
        RequestGuard(self.clone())
    }

    /// When the watch must end the connection, and why; `None` while a
    /// request is in progress.
    fn deadline(&self, limits: &Limits) -> Result<Option<(Instant, Cut)>, Cut> {
        let s = self.lock();
        if s.in_flight > 0 {
            // Evicted as a request began: it is answered, then the connection closes.
            return Ok(None);
        }
        if s.evicted {
            return Err(Cut::Evicted);
        }
        Ok(Some(match (s.requests, s.reading_since) {
            (0, _) => (
                s.idle_since + limits.read_header_timeout,
                Cut::HeaderTimeout,
            ),
            (_, Some(t)) => (t + limits.read_header_timeout, Cut::HeaderTimeout),
            (_, None) => (s.idle_since + limits.idle_timeout, Cut::IdleTimeout),
        }))
    }

    /// Whether it may be closed to make room, and how long it has waited.
    fn evictable(&self) -> Option<(bool, Instant)> {
        let s = self.lock();
        (s.in_flight == 0 && !s.evicted).then_some((s.requests > 0, s.idle_since))
    }

    fn evict(&self) {
        self.lock().evicted = true;
        self.wake.notify_one();
    }

    /// Serves `conn` until it ends, or until the rules say to drop it
    /// (which closes the socket); returns why it was dropped.
    pub async fn watch<F: Future>(&self, limits: &Limits, conn: F) -> Result<F::Output, Cut> {
        tokio::pin!(conn);
        loop {
            let deadline = self.deadline(limits)?;
            let sleep = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut conn => return Ok(out),
                () = self.wake.notified() => {}
                () = sleep => {
                    // Still the same deadline (nothing moved it meanwhile)?
                    if let Some((at, cut)) = self.deadline(limits)?
                        && at <= Instant::now()
                    {
                        return Err(cut);
                    }
                }
            }
        }
    }
}

/// Ends a request's hold on its connection when dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            // Bytes read during the request were its own (a body, HTTP/2
            // frames): the next request head has not started.
            s.reading_since = None;
            drop(s);
            self.0.wake.notify_one();
        }
    }
}

/// The open connections.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next: AtomicU64,
}

/// A connection's place among [`Connections`]; leaves it when dropped.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    /// The connection's activity.
    pub activity: Arc<Activity>,
    owner: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// What admitting a new connection did.
#[derive(Debug)]
pub enum Admitted {
    /// Room was there.
    Room(Slot),
    /// Another connection was told to close to make room.
    Evicted(Slot),
    /// Every connection is busy: refuse this one.
    Full,
}

impl Connections {
    /// None open yet.
    pub fn new(limits: Limits) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits a connection just accepted.
    pub fn admit(self: &Arc<Self>) -> Admitted {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        if open.len() >= self.limits.max_connections {
            // The longest waiting of those that never sent a request, else
            // the longest idle.
            let victim = open
                .values()
                .filter_map(|a| a.evictable().map(|k| (k, a)))
                .min_by_key(|(k, _)| *k)
                .map(|(_, a)| a.clone());
            match victim {
                Some(v) => {
                    v.evict();
                    evicted = true;
                }
                None => return Admitted::Full,
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(Instant::now()));
        open.insert(id, activity.clone());
        let slot = Slot {
            id,
            activity,
            owner: self.clone(),
        };
        if evicted {
            Admitted::Evicted(slot)
        } else {
            Admitted::Room(slot)
        }
    }
}

/// The connection's I/O, noting each read for its [`Activity`].
pub struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    /// Wraps `io`.
    pub fn new(io: I, activity: Arc<Activity>) -> Watched<I> {
        Watched { io, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_bytes();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Go's answer to plain HTTP on a TLS port.
pub const PLAIN_HTTP_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Whether the first bytes of a connection to the TLS port look like a
/// plain HTTP request rather than a TLS handshake (which starts with 0x16).
pub fn looks_like_plain_http(first: &[u8]) -> bool {
    first.first().is_some_and(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            read_header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: max,
        }
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let a = Arc::new(Activity::new(Instant::now()));
        let l = limits(1);
        let (at, cut) = a.deadline(&l).unwrap().unwrap();
        assert_eq!(
            cut,
            Cut::HeaderTimeout,
            "a fresh connection owes a request head"
        );
        let g = a.begin();
        assert_eq!(
            a.deadline(&l).unwrap(),
            None,
            "a request in progress is never cut"
        );
        drop(g);
        let (idle_at, cut) = a.deadline(&l).unwrap().unwrap();
        assert_eq!(cut, Cut::IdleTimeout);
        assert!(idle_at > at);
        a.read_bytes();
        let (_, cut) = a.deadline(&l).unwrap().unwrap();
        assert_eq!(
            cut,
            Cut::HeaderTimeout,
            "a started head has the header timeout"
        );
    }

    #[test]
    fn a_full_house_evicts_the_one_that_never_asked_and_never_a_busy_one() {
        let c = Connections::new(limits(2));
        let Admitted::Room(served) = c.admit() else {
            panic!("room")
        };
        let _done = served.activity.begin();
        drop(_done);
        let Admitted::Room(silent) = c.admit() else {
            panic!("room")
        };
        let Admitted::Evicted(busy) = c.admit() else {
            panic!("evicts")
        };
        assert_eq!(silent.activity.deadline(&c.limits), Err(Cut::Evicted));
        let late = silent.activity.begin();
        assert_eq!(
            silent.activity.deadline(&c.limits),
            Ok(None),
            "a request that began as its connection was evicted is answered"
        );
        drop(late);
        assert_eq!(silent.activity.deadline(&c.limits), Err(Cut::Evicted));
        assert!(served.activity.deadline(&c.limits).is_ok());
        drop(silent);
        let _g1 = served.activity.begin();
        let _g2 = busy.activity.begin();
        assert!(matches!(c.admit(), Admitted::Full), "every connection busy");
    }

    #[test]
    fn plain_http_is_told_apart_from_a_handshake() {
        assert!(looks_like_plain_http(b"GET / HTTP/1.1"));
        assert!(!looks_like_plain_http(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_plain_http(b""));
    }
}
