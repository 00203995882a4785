//! Guest stdout and stderr: captured per call, capped, never written to the
//! host's own stdout.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// A write-only stream that keeps the first `cap` bytes written to it and
/// counts the rest. Writing never fails, so a chatty tool is not killed for
/// printing; it is only truncated.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
}

impl CapturedOutput {
    /// A capture that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        CapturedOutput { cap, inner: Arc::default() }
    }

    /// The kept bytes (lossily decoded) and how many bytes were dropped.
    pub fn take_for_log(&self) -> (String, u64) {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (String::from_utf8_lossy(&guard.kept).into_owned(), guard.dropped)
    }

    /// The last 4 KiB of what was kept, lossily decoded.
    pub fn peek(&self) -> String {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = guard.kept.len().saturating_sub(4096);
        String::from_utf8_lossy(&guard.kept[start..]).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(guard.kept.len());
        let kept = room.min(bytes.len());
        guard.kept.extend_from_slice(&bytes[..kept]);
        guard.dropped += (bytes.len() - kept) as u64;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let out = CapturedOutput::new(5);
        out.push(b"hel");
        out.push(b"lo world");
        assert_eq!(out.take_for_log(), ("hello".to_owned(), 6));
        assert_eq!(out.peek(), "hello");
    }
}
