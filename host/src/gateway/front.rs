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
//! the shared pool with [`inline_then_pool`], so a long call never holds up
//! the connections that share its loop; and connections are accepted on a
//! thread of their own, so a pool busy with long calls never delays them.

use axum::Router;
use axum::serve::Listener;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

thread_local! {
    /// On an event-loop thread: the shared pool that long calls move to.
    static POOL: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Serves `app` on `listener` from `loops` event-loop threads (at least
/// one). A thread of its own accepts connections and gives each to the
/// loop with the fewest open ones, so accepting never waits behind the
/// calls that run in the pool (the current runtime). Returns only if
/// accepting fails for good.
pub async fn serve(listener: TcpListener, app: Router, loops: usize) -> io::Result<()> {
    let local = listener.local_addr()?;
    let listener = listener.into_std()?;
    let pool = Handle::current();
    let lanes =
        (0..loops.max(1)).map(|index| Lane::start(index, &app, local, &pool)).collect::<io::Result<Vec<_>>>()?;
    let (done, outcome) = tokio::sync::oneshot::channel();
    let runtime = single_threaded()?;
    std::thread::Builder::new().name("toolmesh-accept".into()).spawn(move || {
        let accepted = runtime.block_on(async move { accept(TcpListener::from_std(listener)?, &lanes).await });
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
/// the shared pool. Off an event loop it simply runs. Dropping the returned
/// future cancels the call wherever it runs.
pub async fn inline_then_pool<F>(call: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(pool) = POOL.with(|p| p.borrow().clone()) else {
        return call.await;
    };
    let mut call = Box::pin(call);
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    if let Poll::Ready(output) = first {
        return output;
    }
    let mut task = AbortOnDrop(pool.spawn(call));
    match std::future::poll_fn(|cx| Pin::new(&mut task.0).poll(cx)).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Aborted only by our own drop, or when the pool shuts down.
        Err(_) => std::future::pending().await,
    }
}

/// Aborts a pool task whose caller has gone away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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
        let runtime = single_threaded()?;
        std::thread::Builder::new().name(format!("toolmesh-http-{index}")).spawn(move || {
            POOL.with(|p| *p.borrow_mut() = Some(pool));
            if let Err(e) = runtime.block_on(async { axum::serve(listener, app).await }) {
                tracing::error!(error = %e, "an HTTP event loop stopped");
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
            POOL.with(|p| *p.borrow_mut() = Some(pool));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(f())
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_never_waits_stays_on_its_loop() {
        let (outer, inner) = on_a_loop(|| async {
            let outer = std::thread::current().id();
            (outer, inline_then_pool(async { std::thread::current().id() }).await)
        })
        .await;
        assert_eq!(outer, inner);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_waits_goes_on_in_the_pool() {
        let (outer, before, after): (ThreadId, ThreadId, (ThreadId, Option<String>)) = on_a_loop(|| async {
            let outer = std::thread::current().id();
            let (before, after) = inline_then_pool(async {
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
            let call = inline_then_pool(async move {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_spread_over_loops_and_stay_on_theirs() {
        let app = Router::new().route("/", get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(serve(listener, app, 2));
        let (mut threads, mut clients) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            // One client, one kept-alive connection.
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(client.get(&url).send().await.unwrap().text().await.unwrap());
            }
            assert!(seen.iter().all(|t| t == &seen[0]), "one connection, one loop: {seen:?}");
            assert!(seen[0].starts_with("toolmesh-http-"), "{seen:?}");
            threads.push(seen[0].clone());
            // Kept open while the next one connects.
            clients.push(client);
        }
        assert_ne!(threads[0], threads[1], "the second connection goes to the idle loop");
        server.abort();
    }
}
