//! What a tool may ask of its host: log lines and progress reports.

use crate::bindings::toolmesh::tool::{log as wit_log, progress as wit_progress};

/// Records a log line with the call it belongs to.
pub fn log(level: Level, message: &str) {
    wit_log::log(level, message);
}

/// Log levels.
pub use wit_log::Level;

/// Records an informational log line.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Records a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Reports that `done` of `total` units of work are finished (`total` is
/// `None` when unknown), with an optional message for the user.
pub fn progress(done: f64, total: Option<f64>, message: Option<&str>) {
    wit_progress::report(done, total, message);
}
