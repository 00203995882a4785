//! Where the `tool` binary's log lines go: stderr, written in batches by a
//! background thread, so a busy server's request threads neither make a
//! system call nor wake another thread per line.
//!
//! Lines are appended to a shared buffer and written every [`INTERVAL`] (or
//! at once by the logger itself when the buffer passes [`MAX_PENDING`], so
//! memory stays bounded and nothing is dropped). Dropping the [`Flusher`]
//! writes what is left.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
const INTERVAL: Duration = Duration::from_millis(20);

/// Bytes waiting past which the logger writes them itself.
const MAX_PENDING: usize = 1 << 20;

/// The shared buffer; `MakeWriter` for tracing-subscriber.
#[derive(Clone, Default)]
pub struct BatchedStderr {
    pending: Arc<Mutex<Vec<u8>>>,
}

/// Writes the pending lines every [`INTERVAL`] until dropped, then once more.
pub struct Flusher {
    target: BatchedStderr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedStderr {
    /// A buffer and the thread that empties it.
    pub fn start() -> (BatchedStderr, Flusher) {
        let target = BatchedStderr::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (buffer, flag) = (target.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("toolmesh-log".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    buffer.write_pending();
                }
            })
            .ok();
        (target.clone(), Flusher { target, stop, thread })
    }

    /// Writes what is pending to stderr (outside the buffer's lock).
    fn write_pending(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let _ = std::io::stderr().lock().write_all(&batch);
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.target.write_pending();
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.extend_from_slice(bytes);
            pending.len() > MAX_PENDING
        };
        if full {
            self.write_pending();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_until_written() {
        let (mut writer, flusher) = BatchedStderr::start();
        writer.write_all(b"one line\n").unwrap();
        drop(flusher);
        assert!(writer.pending.lock().unwrap().is_empty(), "dropping the flusher writes what is pending");
        let big = vec![b'x'; MAX_PENDING + 1];
        let mut other = BatchedStderr::default();
        other.write_all(&big).unwrap();
        assert!(other.pending.lock().unwrap().is_empty(), "past the bound the logger writes itself");
    }
}
