//! A component's memory images, made before its first instance is, so
//! that a passing refusal of the OS is retried before the instance's store
//! counts anything.
//!
//! Each core module's initial memory becomes an in-memory file that every
//! instance maps copy-on-write; wasmtime makes it once, for the first
//! instance. Making it seals the file, and the kernel refuses the seal
//! with `EBUSY` while something else (a memory sampler, page migration)
//! briefly holds references to its pages; `EAGAIN` and `EINTR` pass
//! likewise. Retried here, in a fresh attempt each time, the image is then
//! kept by the component. Retrying the instantiation instead would leave
//! the failed attempt's instances and memory counted in the call's store.
//! Once the image is made, [`prepare`] costs a lookup.

use std::time::Duration;
use wasmtime::component::Component;

/// Attempts after the first.
const RETRIES: u32 = 3;

/// Makes `component`'s memory images if they are not made yet, retrying
/// passing refusals of the OS (sleeping 20 to 80 ms between tries, on this
/// thread: rare, and short). A refusal that lasts is logged and left for
/// the instantiation, which reports it.
pub(super) fn prepare(component: &Component) {
    let mut tries = 0;
    loop {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return,
            Err(error) if tries < RETRIES && transient(&error) => {
                tries += 1;
                tracing::warn!(%error, tries, "the OS refused a memory image for a passing reason; trying again");
                std::thread::sleep(Duration::from_millis(10 << tries));
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot make the component's memory images");
                return;
            }
        }
    }
}

/// Whether `error` comes from an OS error that passes by itself.
fn transient(error: &wasmtime::Error) -> bool {
    use rustix::io::Errno;
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .filter_map(Errno::from_io_error)
        .any(|code| matches!(code, Errno::BUSY | Errno::AGAIN | Errno::INTR))
}

#[cfg(test)]
mod tests {
    use super::transient;

    #[test]
    fn only_passing_os_errors_are_retried() {
        let busy = std::io::Error::from_raw_os_error(rustix::io::Errno::BUSY.raw_os_error());
        assert!(transient(&wasmtime::Error::new(busy).context("cannot add seals to the memfd")));
        let denied = std::io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        assert!(!transient(&wasmtime::Error::new(denied)));
        assert!(!transient(&wasmtime::Error::msg("wasm trap: unreachable")));
    }
}
