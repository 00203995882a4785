//! `toolmesh:tool/resource-updates`: a package telling its subscribers
//! that one of its resources changed.
//!
//! A call reports URIs as the package offers them; the host passes each
//! distinct one on to whoever placed the call (the gateway, which turns it
//! into the URI it serves and tells the clients subscribed to it). What a
//! call can report is bounded: [`MAX_URIS`] distinct URIs, each a valid
//! absolute URI of at most 2048 bytes; anything else is dropped.

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::resource_updates::Host;
use std::collections::HashSet;
use std::sync::Arc;

/// Receives the URIs a call reports changed, each once. It is called on
/// the call's own thread and must not block.
pub type UpdateSink = Arc<dyn Fn(String) + Send + Sync>;

/// Distinct URIs one call may report.
pub const MAX_URIS: usize = 32;

/// What one call has reported, and where reports go.
#[derive(Default)]
pub struct Reported {
    sink: Option<UpdateSink>,
    seen: HashSet<String>,
}

impl Reported {
    /// Reports go to `sink` (dropped when `None`: nobody placed the call to
    /// hear them).
    pub fn new(sink: Option<UpdateSink>) -> Self {
        Reported { sink, seen: HashSet::new() }
    }

    /// Passes `uri` on unless it is malformed, already reported, or over
    /// the call's bound; returns whether it was passed on.
    pub fn report(&mut self, uri: String) -> bool {
        if !crate::sandbox::offer::is_absolute_uri(&uri) || self.seen.len() >= MAX_URIS || self.seen.contains(&uri) {
            return false;
        }
        self.seen.insert(uri.clone());
        match &self.sink {
            Some(sink) => {
                sink(uri);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reported").field("seen", &self.seen.len()).finish_non_exhaustive()
    }
}

impl Host for CallState {
    fn updated(&mut self, uri: String) {
        if !self.updates.report(uri) {
            tracing::debug!(call = %self.call_id, "resource update dropped: malformed, repeated, over the bound, or unheard");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_are_distinct_valid_and_bounded() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink: UpdateSink = {
            let heard = heard.clone();
            Arc::new(move |uri| heard.lock().unwrap().push(uri))
        };
        let mut reported = Reported::new(Some(sink));
        assert!(reported.report("notes://all".into()));
        assert!(!reported.report("notes://all".into()), "a repeat is passed on once");
        assert!(!reported.report("not a uri".into()));
        assert!(!reported.report(format!("notes://{}", "x".repeat(3000))));
        for i in 0..100 {
            reported.report(format!("notes://page/{i}"));
        }
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), MAX_URIS);
        assert_eq!(heard[0], "notes://all");
        assert_eq!(heard[MAX_URIS - 1], format!("notes://page/{}", MAX_URIS - 2));
    }

    #[test]
    fn without_a_listener_nothing_is_passed_on() {
        assert!(!Reported::new(None).report("notes://all".into()));
    }
}
