//! Running work on the driver on a call's behalf: error scopes that turn
//! what wgpu catches into the call's error, bounded waits, and the words
//! for what went wrong.

use super::GpuError;
use super::device::GpuDevice;
use std::time::Duration;

/// A validation error met while queued work was recorded or submitted:
/// that work is dropped, and the message says so.
pub(crate) fn discarded(error: GpuError) -> GpuError {
    match error {
        GpuError::InvalidArgument(why) => {
            GpuError::InvalidArgument(format!("{why} (the work queued since the last read or finish was discarded)"))
        }
        other => other,
    }
}

/// Waits for submission `index` for at most `allowance`; `why` is the
/// timeout's message.
pub(crate) fn wait(
    device: &GpuDevice,
    index: wgpu::SubmissionIndex,
    allowance: Duration,
    why: String,
) -> Result<(), GpuError> {
    match device.device.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: Some(allowance) }) {
        Ok(_) => Ok(()),
        Err(wgpu::PollError::Timeout) => Err(GpuError::Timeout(why)),
        Err(e) => Err(GpuError::DeviceLost(format!("waiting for the GPU failed: {e}"))),
    }
}

/// Runs `f` inside validation and out-of-memory error scopes, turning what
/// they catch into the call's error. A timeout or lost device from `f`
/// wins over what the scopes caught: it is what retires the device.
pub(crate) fn scoped<T>(device: &GpuDevice, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
    let validation = device.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let memory = device.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let result = f();
    let out_of_memory = pollster::block_on(memory.pop());
    let invalid = pollster::block_on(validation.pop());
    match result {
        Err(error @ (GpuError::Timeout(_) | GpuError::DeviceLost(_) | GpuError::InvalidShader(_))) => Err(error),
        _ if out_of_memory.is_some() => Err(GpuError::QuotaExceeded(format!(
            "the GPU is out of memory: {}",
            out_of_memory.as_ref().map(error_text).unwrap_or_default()
        ))),
        _ if invalid.is_some() => Err(GpuError::InvalidArgument(invalid.as_ref().map(error_text).unwrap_or_default())),
        result => result,
    }
}

/// A wgpu error as one readable message, with its causes.
pub(crate) fn error_text(error: &wgpu::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text.trim().to_owned()
}

pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}
