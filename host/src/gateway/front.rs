//! The HTTP front of a serving process: every accepted connection is pinned
//! to one of a few event loops (one thread each, single-threaded runtime),
//! where its requests are parsed, handled and answered without leaving the
//! thread.
//!
//! On a work-stealing runtime a request hops between worker threads several
//! times (rmcp hands each request to tasks of its own, and a hand-off may
//! wake an idle worker that then steals the task): at one client on
//! loopback that cost ~35 µs a call, more than the sandboxed call itself.
//! Pinned loops keep a short call on one thread, caches warm. A call that
//! has to wait (its time slice used up, a queue, a first compile) moves to
//! the shared pool with [`inline_then_pool`], and so, for a while, do the
//! calls of a kind whose first slice ran long, so long calls never hold up
//! the connections that share their loop; connections are accepted on a
//! thread of their own, so a pool busy with long calls never delays them.
//! (rmcp runs a legacy session's requests where the session began, so
//! those stay on that session's loop whichever connection brings them.)

use crate::sandbox::meter::thread_cpu_time;
use axum::Router;
use axum::serve::Listener;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;

thread_local! {
    /// On an event-loop thread: what the loop knows about running calls.
    static LOOP: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// A call whose first slice on a loop takes longer than this, in CPU time
/// of the loop's thread, marks its kind as long: the next calls of that
/// kind go straight to the pool.
const LONG_SLICE: Duration = Duration::from_millis(1);

/// How long a loop remembers a kind of call as long before it lets one run
/// inline again.
const REMEMBER_LONG: Duration = Duration::from_secs(10);

/// An event loop's view of the calls it runs.
struct EventLoop {
    /// Where calls that wait go on.
    pool: Handle,
    /// Kinds of call whose first slice ran long, and when.
    long: HashMap<u64, Instant>,
}

impl EventLoop {
    fn new(pool: Handle) -> Self {
        EventLoop { pool, long: HashMap::new() }
    }

    fn is_long(&mut self, kind: u64) -> bool {
        match self.long.get(&kind) {
            Some(since) if since.elapsed() < REMEMBER_LONG => true,
            Some(_) => {
                self.long.remove(&kind);
                false
            }
            None => false,
        }
    }

    fn mark_long(&mut self, kind: u64) {
        if self.long.len() >= 4096 {
            self.long.retain(|_, since| since.elapsed() < REMEMBER_LONG);
        }
        self.long.insert(kind, Instant::now());
    }
}

/// Serves `app` on `listener` from `loops` event-loop threads (at least
/// one). A thread of its own accepts connections and gives each to the
/// loop with the fewest open ones, so accepting never waits behind the
/// calls that run in the pool (the current runtime). Returns only if the
/// acceptor or an event loop stops.
pub async fn serve(listener: TcpListener, app: Router, loops: usize) -> io::Result<()> {
    let local = listener.local_addr()?;
    let listener = listener.into_std()?;
    let pool = Handle::current();
    let lanes =
        (0..loops.max(1)).map(|index| Lane::start(index, &app, local, &pool)).collect::<io::Result<Vec<_>>>()?;
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("toolmesh-accept".into()).spawn(move || {
        let accepted = single_threaded()
            .and_then(|runtime| runtime.block_on(async { accept(TcpListener::from_std(listener)?, &lanes).await }));
        let _ = done.send(accepted);
    })?;
    outcome.await.unwrap_or_else(|_| Err(io::Error::other("the HTTP acceptor stopped")))
}

/// Accepts connections on `listener` and hands each to one of `lanes`.
async fn accept(listener: TcpListener, lanes: &[Lane]) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small writes (streamed events) go out at once, not after an ACK.
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand a connection over");
                continue;
            }
        };
        let lane = lanes.iter().min_by_key(|l| l.open.load(Ordering::Relaxed)).expect("at least one loop");
        lane.open.fetch_add(1, Ordering::Relaxed);
        if lane.sender.send((stream, peer)).is_err() {
            return Err(io::Error::other("an HTTP event loop has stopped"));
        }
    }
}

fn single_threaded() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The number of event loops to run by default: one per core.
pub fn default_loops() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `call` where it is, as long as it never has to wait; once it does
/// (its first time slice used up, a queue, a first compile), it goes on in
/// the shared pool. Everything the call registers (timers, spawned tasks)
/// belongs to the pool from the start. Calls of a `kind` whose first slice
/// ran long go straight to the pool for a while, so spinning calls never
/// take turns holding up a loop. Off an event loop the call simply runs.
/// Dropping the returned future cancels the call wherever it runs.
pub async fn inline_then_pool<F>(kind: u64, call: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some((pool, long)) = LOOP.with(|l| l.borrow_mut().as_mut().map(|l| (l.pool.clone(), l.is_long(kind)))) else {
        return call.await;
    };
    let mut call = Box::pin(call);
    if !long {
        let (started, cpu_started) = (Instant::now(), thread_cpu_time());
        let first = std::future::poll_fn(|cx| {
            let _pool = pool.enter();
            Poll::Ready(call.as_mut().poll(cx))
        })
        .await;
        // The slice's own CPU time decides, not the wall clock: a loop that
        // other threads kept off the CPU for a while still ran a short
        // call. (Judged by the wall clock, one preemption sent a tool's
        // calls to the pool for REMEMBER_LONG, where their hops between
        // threads caused more preemptions: a lone client's calls then ran
        // at 0.8× their usual rate for as long as that lasted.)
        if started.elapsed() > LONG_SLICE && thread_cpu_time().saturating_sub(cpu_started) > LONG_SLICE {
            LOOP.with(|l| l.borrow_mut().as_mut().map(|l| l.mark_long(kind)));
        }
        if let Poll::Ready(output) = first {
            return output;
        }
    }
    let mut task = AbortOnDropJoinHandle::from(pool.spawn(call));
    match (&mut *task).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Aborted only by our own drop, or when the pool shuts down with
        // the process.
        Err(_) => std::future::pending().await,
    }
}

/// The accepting side's handle on one event loop.
struct Lane {
    sender: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
}

impl Lane {
    /// Starts event loop `index`, serving `app`, with `pool` for long calls.
    fn start(index: usize, app: &Router, local: SocketAddr, pool: &Handle) -> io::Result<Lane> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let listener = LoopListener { receiver, local, open: open.clone() };
        let (app, pool) = (app.clone(), pool.clone());
        std::thread::Builder::new().name(format!("toolmesh-http-{index}")).spawn(move || {
            LOOP.with(|l| *l.borrow_mut() = Some(EventLoop::new(pool)));
            // On failure the receiver goes, and the acceptor stops serving.
            match single_threaded().and_then(|runtime| runtime.block_on(async { axum::serve(listener, app).await })) {
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "an HTTP event loop stopped"),
            }
        })?;
        Ok(Lane { sender, open })
    }
}

/// What `axum::serve` on an event loop accepts from: the connections the
/// acceptor hands to this loop.
struct LoopListener {
    receiver: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl Listener for LoopListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.receiver.recv().await else {
                // The acceptor is gone; so is the process, shortly.
                return std::future::pending().await;
            };
            let open = OpenConnection(self.open.clone());
            match TcpStream::from_std(stream) {
                Ok(stream) => return (Counted { stream, _open: open }, peer),
                Err(e) => tracing::warn!(error = %e, %peer, "cannot take a connection"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Counts a loop's connection as open until it closes.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection of an event loop, counted while open.
struct Counted {
    stream: TcpStream,
    _open: OpenConnection,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accept errors that concern one connection only (the next accept works).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::sync::atomic::AtomicBool;
    use std::thread::ThreadId;

    /// Runs `f` on a thread set up like an event loop over the current
    /// runtime as its pool.
    async fn on_a_loop<F, Fut>(f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        let pool = Handle::current();
        tokio::task::spawn_blocking(move || {
            LOOP.with(|l| *l.borrow_mut() = Some(EventLoop::new(pool)));
            let runtime = single_threaded().unwrap();
            runtime.block_on(f())
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_never_waits_stays_on_its_loop() {
        let (outer, (inner, flavor)) = on_a_loop(|| async {
            let outer = std::thread::current().id();
            let inner =
                inline_then_pool(1, async { (std::thread::current().id(), Handle::current().runtime_flavor()) });
            (outer, inner.await)
        })
        .await;
        assert_eq!(outer, inner);
        // What it would register (timers, tasks) belongs to the pool.
        assert_eq!(flavor, tokio::runtime::RuntimeFlavor::MultiThread);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_long_first_slice_that_kind_of_call_goes_to_the_pool() {
        let (outer, first, second, other) = on_a_loop(|| async {
            let here = || std::thread::current().id();
            // Busy for 5 ms of CPU without ever waiting, as a spinning guest is.
            let first = inline_then_pool(7, async move {
                let start = thread_cpu_time();
                while thread_cpu_time() - start < Duration::from_millis(5) {
                    std::hint::spin_loop();
                }
                here()
            })
            .await;
            let second = inline_then_pool(7, async move { here() }).await;
            let other = inline_then_pool(8, async move { here() }).await;
            (here(), first, second, other)
        })
        .await;
        assert_eq!(first, outer, "the first call ran inline");
        assert_ne!(second, outer, "the next call of its kind went to the pool");
        assert_eq!(other, outer, "other kinds still run inline");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slice_kept_off_the_cpu_is_not_long() {
        let (outer, first, second) = on_a_loop(|| async {
            let here = || std::thread::current().id();
            // 5 ms of wall clock and almost no CPU: the loop's thread held
            // off the CPU (here by sleeping) while it ran a short call.
            let first = inline_then_pool(9, async move {
                std::thread::sleep(Duration::from_millis(5));
                here()
            })
            .await;
            let second = inline_then_pool(9, async move { here() }).await;
            (here(), first, second)
        })
        .await;
        assert_eq!((first, second), (outer, outer), "both ran inline");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_waits_goes_on_in_the_pool() {
        let (outer, before, after): (ThreadId, ThreadId, (ThreadId, Option<String>)) = on_a_loop(|| async {
            let outer = std::thread::current().id();
            let (before, after) = inline_then_pool(1, async {
                let before = std::thread::current().id();
                tokio::time::sleep(Duration::from_millis(5)).await;
                let here = std::thread::current();
                (before, (here.id(), here.name().map(str::to_owned)))
            })
            .await;
            (outer, before, after)
        })
        .await;
        assert_eq!(before, outer, "the first slice runs on the loop");
        assert_ne!(after.0, outer, "the rest runs in the pool");
        assert_eq!(after.1.as_deref(), Some("tokio-rt-worker"), "a worker of the pool");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_moved_call_cancels_it() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        on_a_loop(move || async move {
            let call = inline_then_pool(1, async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
            // Long enough for the call to move to the pool, not to finish.
            let _ = tokio::time::timeout(Duration::from_millis(20), call).await;
        })
        .await;
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the call kept running in the pool after its caller went away");
    }

    /// Sends `GET /` on `stream` (HTTP/1.1, kept alive) and returns the body.
    async fn get_root(stream: &mut TcpStream) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut response = Vec::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            response.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return body[..length].to_owned();
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_spread_over_loops_and_stay_on_theirs() {
        let app = Router::new().route("/", get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, app, 2));
        let (mut threads, mut connections) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let mut connection = TcpStream::connect(addr).await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(get_root(&mut connection).await);
            }
            assert!(seen.iter().all(|t| t == &seen[0]), "one connection, one loop: {seen:?}");
            assert!(seen[0].starts_with("toolmesh-http-"), "{seen:?}");
            threads.push(seen[0].clone());
            // Kept open while the next one connects.
            connections.push(connection);
        }
        assert_ne!(threads[0], threads[1], "the second connection goes to the idle loop");
        server.abort();
    }
}
