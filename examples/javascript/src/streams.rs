//! What a run prints: stdout and stderr, each kept up to a cap counted in
//! the bytes it takes in the result (a control character is 6 bytes there,
//! an emoji 4), so no output makes the report outgrow the node's limit.

/// Bytes of each stream kept, as encoded in the result; the rest is counted.
pub const MAX_STREAM: usize = 200_000;

/// Bytes `c` takes inside a JSON string, as serde_json writes it.
fn encoded_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// One output stream.
#[derive(Default, Debug)]
pub struct Stream {
    kept: String,
    bytes: usize,
    dropped: usize,
}

impl Stream {
    /// Adds `line` (the first characters of a line `count` characters
    /// long) and a newline, as far as the cap allows.
    fn push_line(&mut self, line: &str, count: usize) {
        let mut taken = 0;
        for c in line.chars().chain(std::iter::once('\n')) {
            let cost = encoded_len(c);
            if self.dropped > 0 || self.bytes + cost > MAX_STREAM {
                break;
            }
            self.kept.push(c);
            self.bytes += cost;
            taken += 1;
        }
        // The line's characters plus its newline, less what was kept.
        self.dropped += (count + 1).saturating_sub(taken);
    }

    /// The kept text, with a note of what was dropped.
    pub fn text(&self) -> String {
        if self.dropped == 0 {
            return self.kept.clone();
        }
        format!("{}\n[… {} more characters dropped]", self.kept, self.dropped)
    }
}

/// A run's stdout and stderr.
#[derive(Default, Debug)]
pub struct Streams {
    /// console.log and friends.
    pub stdout: Stream,
    /// console.warn and console.error.
    pub stderr: Stream,
}

impl Streams {
    /// Writes a line to stream 1 (stdout) or 2 (stderr): `line` is its
    /// start, `count` its length in characters.
    pub fn write(&mut self, stream: i32, line: &str, count: usize) {
        match stream {
            2 => self.stderr.push_line(line, count),
            _ => self.stdout.push_line(line, count),
        }
    }

    /// Whether either stream was cut.
    pub fn truncated(&self) -> bool {
        self.stdout.dropped > 0 || self.stderr.dropped > 0
    }
}
