//! What a run prints: stdout and stderr, each kept up to a cap.

/// Characters kept per stream; the rest is counted.
pub const MAX_STREAM: usize = 100_000;

/// One output stream.
#[derive(Default, Debug)]
pub struct Stream {
    kept: String,
    chars: usize,
    dropped: usize,
}

impl Stream {
    /// Adds `line` and a newline, as far as the cap allows.
    fn push_line(&mut self, line: &str) {
        for piece in [line, "\n"] {
            let room = MAX_STREAM - self.chars;
            let count = piece.chars().count();
            if count <= room {
                self.kept.push_str(piece);
                self.chars += count;
            } else {
                let end = piece.char_indices().nth(room).map_or(piece.len(), |(i, _)| i);
                self.kept.push_str(&piece[..end]);
                self.chars += room;
                self.dropped += count - room;
            }
        }
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
    /// Writes a line to stream 1 (stdout) or 2 (stderr).
    pub fn write(&mut self, stream: i32, line: &str) {
        match stream {
            2 => self.stderr.push_line(line),
            _ => self.stdout.push_line(line),
        }
    }

    /// Whether either stream was cut.
    pub fn truncated(&self) -> bool {
        self.stdout.dropped > 0 || self.stderr.dropped > 0
    }
}
