//! Values over the NATS payload limit (1 MiB by default), sent as numbered
//! parts and put back together on the other side.
//!
//! A message too large for the server is published as `n` messages to the
//! same subject, each carrying the header `Toolmesh-Part: i/n`. One
//! publisher's messages on one subject arrive in order, so a receiver
//! appends part `i` to what it holds for that stream (a reply inbox) and
//! has the whole value after part `n - 1`; a part out of order or a value
//! over the receiver's limit ends that stream with an error.

use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The header naming a part (`index/count`).
pub const PART_HEADER: &str = "Toolmesh-Part";

/// The largest value a node or gateway takes or sends over NATS.
pub const MAX_VALUE: usize = 64 << 20;

/// Room left in each part for the subject, reply and headers.
const HEADROOM: usize = 8 << 10;

/// How long an unfinished value is kept without a new part.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// Publishes `payload` to `subject` (with `reply` as its reply subject),
/// in parts when it is over the server's payload limit.
pub async fn publish(
    client: &async_nats::Client,
    subject: String,
    reply: Option<String>,
    payload: Vec<u8>,
) -> Result<(), async_nats::PublishError> {
    let limit = client.max_payload();
    let payload = Bytes::from(payload);
    if limit == 0 || payload.len() <= limit.saturating_sub(HEADROOM).max(1) {
        return match reply {
            Some(reply) => client.publish_with_reply(subject, reply, payload).await,
            None => client.publish(subject, payload).await,
        };
    }
    let size = limit.saturating_sub(HEADROOM).max(1024);
    let count = payload.len().div_ceil(size);
    for index in 0..count {
        let part = payload.slice(index * size..((index + 1) * size).min(payload.len()));
        let mut headers = HeaderMap::new();
        headers.insert(PART_HEADER, format!("{index}/{count}").as_str());
        match &reply {
            Some(reply) => client.publish_with_reply_and_headers(subject.clone(), reply.clone(), headers, part).await?,
            None => client.publish_with_headers(subject.clone(), headers, part).await?,
        }
    }
    Ok(())
}

/// Which part of a value a message carries, if it is one: `(index, count)`.
pub fn part_of(message: &Message) -> Option<Result<(usize, usize), PartError>> {
    let value = message.headers.as_ref()?.get(PART_HEADER)?.as_str();
    let parsed = value
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(i, n)| i < n);
    Some(parsed.ok_or_else(|| PartError::Malformed(value.to_owned())))
}

/// Why a value could not be put back together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartError {
    /// The part header does not read `index/count`.
    #[error("malformed part header {0:?}")]
    Malformed(String),
    /// A part came that does not follow the one before.
    #[error("part {index} of {count} arrived out of order (expected part {expected})")]
    OutOfOrder {
        /// The part that came.
        index: usize,
        /// How many parts it says there are.
        count: usize,
        /// The part that was due.
        expected: usize,
    },
    /// The value is over the receiver's limit.
    #[error("the value is over {limit} bytes")]
    TooLarge {
        /// The receiver's limit in bytes.
        limit: usize,
    },
    /// The receiver holds as many partly received values as it takes.
    #[error("too many values arriving at once; try again")]
    Busy,
}

/// Values arriving in parts, by stream (a reply inbox): each at most the
/// limit, all together at most four times it, and at most
/// [`MAX_STREAMS`] at once.
pub struct Assembler {
    limit: usize,
    pending: HashMap<String, Pending>,
    /// Bytes held over all pending values.
    held: usize,
}

/// Values an [`Assembler`] receives at once.
pub const MAX_STREAMS: usize = 16;

struct Pending {
    bytes: Vec<u8>,
    next: usize,
    count: usize,
    touched: Instant,
}

impl Assembler {
    /// An assembler that takes values of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Assembler { limit, pending: HashMap::new(), held: 0 }
    }

    /// Adds part `index` of `count` of the value on `stream`: the whole
    /// value once its last part came, `None` while parts are missing.
    pub fn add(&mut self, stream: &str, index: usize, count: usize, data: &[u8]) -> Result<Option<Bytes>, PartError> {
        let now = Instant::now();
        if index == 0 {
            self.forget(stream);
            self.forget_stale(now);
            let per_part = data.len().max(1);
            if count.saturating_mul(per_part) > self.limit.saturating_add(per_part) {
                return Err(PartError::TooLarge { limit: self.limit });
            }
            if self.pending.len() >= MAX_STREAMS {
                return Err(PartError::Busy);
            }
            self.pending.insert(stream.to_owned(), Pending { bytes: Vec::new(), next: 0, count, touched: now });
        }
        let Some(pending) = self.pending.get_mut(stream) else {
            return Err(PartError::OutOfOrder { index, count, expected: 0 });
        };
        if index != pending.next || count != pending.count {
            let expected = pending.next;
            self.forget(stream);
            return Err(PartError::OutOfOrder { index, count, expected });
        }
        if pending.bytes.len() + data.len() > self.limit {
            self.forget(stream);
            return Err(PartError::TooLarge { limit: self.limit });
        }
        if self.held + data.len() > self.limit.saturating_mul(4) {
            self.forget(stream);
            return Err(PartError::Busy);
        }
        pending.bytes.extend_from_slice(data);
        pending.next += 1;
        pending.touched = now;
        self.held += data.len();
        if pending.next < pending.count {
            return Ok(None);
        }
        let whole = self.pending.remove(stream).map(|p| Bytes::from(p.bytes));
        self.held -= whole.as_ref().map_or(0, Bytes::len);
        Ok(whole)
    }

    /// The whole value `message` completes on `stream`: its payload when
    /// it is not a part, `None` while parts are still missing.
    pub fn accept(&mut self, stream: &str, message: &Message) -> Result<Option<Bytes>, PartError> {
        match part_of(message) {
            None => Ok(Some(message.payload.clone())),
            Some(part) => {
                let (index, count) = part?;
                self.add(stream, index, count, &message.payload)
            }
        }
    }

    /// Whether part of a value on `stream` has come and the rest not yet.
    pub fn is_pending(&self, stream: &str) -> bool {
        self.pending.contains_key(stream)
    }

    /// Forgets what `stream` sent so far.
    pub fn forget(&mut self, stream: &str) {
        if let Some(pending) = self.pending.remove(stream) {
            self.held -= pending.bytes.len();
        }
    }

    fn forget_stale(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.touched) >= STALE_AFTER)
            .map(|(s, _)| s.clone())
            .collect();
        for stream in stale {
            self.forget(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_in_order_make_the_value() {
        let mut a = Assembler::new(100);
        assert_eq!(a.add("s", 0, 3, b"ab"), Ok(None));
        assert_eq!(a.add("t", 0, 2, b"xy"), Ok(None));
        assert_eq!(a.add("s", 1, 3, b"cd"), Ok(None));
        assert_eq!(a.add("t", 1, 2, b"z"), Ok(Some(Bytes::from_static(b"xyz"))));
        assert_eq!(a.add("s", 2, 3, b"e"), Ok(Some(Bytes::from_static(b"abcde"))));
        assert!(a.pending.is_empty());
    }

    #[test]
    fn a_gap_or_a_repeat_ends_the_stream() {
        let mut a = Assembler::new(100);
        a.add("s", 0, 3, b"ab").unwrap();
        assert_eq!(a.add("s", 2, 3, b"e"), Err(PartError::OutOfOrder { index: 2, count: 3, expected: 1 }));
        assert_eq!(a.add("s", 1, 3, b"cd"), Err(PartError::OutOfOrder { index: 1, count: 3, expected: 0 }));
        a.add("s", 0, 2, b"ab").unwrap();
        assert_eq!(a.add("s", 1, 3, b"cd"), Err(PartError::OutOfOrder { index: 1, count: 3, expected: 1 }));
    }

    #[test]
    fn values_over_the_limit_are_refused() {
        let mut a = Assembler::new(10);
        // Announced too large by its first part.
        assert_eq!(a.add("s", 0, 100, b"abcd"), Err(PartError::TooLarge { limit: 10 }));
        // Grown too large part by part (a short first part).
        a.add("s", 0, 3, b"a").unwrap();
        a.add("s", 1, 3, b"bcdefgh").unwrap();
        assert_eq!(a.add("s", 2, 3, b"ijkl"), Err(PartError::TooLarge { limit: 10 }));
        assert!(a.pending.is_empty());
        // Many streams at once are bounded together, in bytes on every part…
        for s in ["a", "b", "c", "d"] {
            a.add(s, 0, 2, b"0123456789").unwrap();
        }
        assert_eq!(a.held, 40);
        assert_eq!(a.add("e", 0, 2, b"0"), Err(PartError::Busy));
        assert!(!a.is_pending("e"));
        a.forget("a");
        assert_eq!(a.held, 30);
        // …and in number.
        let mut b = Assembler::new(1 << 20);
        for i in 0..MAX_STREAMS {
            b.add(&i.to_string(), 0, 2, b"x").unwrap();
        }
        assert_eq!(b.add("one more", 0, 2, b"x"), Err(PartError::Busy));
        // Restarting a stream does not count its old bytes twice.
        b.add("0", 0, 2, b"yy").unwrap();
        assert_eq!(b.held, MAX_STREAMS + 1);
    }
}
