//! What a plugin writes to stderr, made safe to relay into our logs.
//!
//! A plugin's stderr is untrusted: it may never end a line, write bytes that are not
//! UTF-8, or write faster than anyone can read logs. [`LineSplitter`] cuts the byte
//! stream into lines of at most [`MAX_LINE`] bytes (the rest of a longer line is counted,
//! not kept; bytes that are not UTF-8 become U+FFFD), so the memory a relay holds is
//! bounded whatever the plugin writes, and the relay keeps draining the pipe (a plugin is
//! never blocked on, nor killed by, a stderr nobody reads). [`RateLimit`] lets at most
//! [`LINES_PER_SECOND`] lines a second into the logs and says how many it held back.

use std::time::{Duration, Instant};

/// The longest line kept from a plugin's stderr, in bytes; the rest is cut.
pub const MAX_LINE: usize = 8 * 1024;

/// How many of a plugin's stderr lines a second reach the logs.
pub const LINES_PER_SECOND: u32 = 200;

/// Cuts a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// The line being read (at most [`MAX_LINE`] bytes of it).
    current: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE`], dropped.
    cut: usize,
}

impl LineSplitter {
    /// Feed the next bytes read; `line` is called with every line they complete.
    pub fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(String)) {
        while !bytes.is_empty() {
            let (part, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => (&bytes[..end], true),
                None => (bytes, false),
            };
            let room = MAX_LINE - self.current.len();
            let kept = part.len().min(room);
            self.current.extend_from_slice(&part[..kept]);
            self.cut += part.len() - kept;
            if ended {
                line(self.take());
                bytes = &bytes[part.len() + 1..];
            } else {
                bytes = &[];
            }
        }
    }

    /// The stream ended: the last line, if it had no newline.
    pub fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.cut > 0).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.current.last() == Some(&b'\r') {
            self.current.pop();
        }
        let mut text = String::from_utf8_lossy(&self.current).into_owned();
        if self.cut > 0 {
            text.push_str(&format!(" [{} more bytes of this line cut]", self.cut));
        }
        self.current.clear();
        self.cut = 0;
        text
    }
}

/// At most [`LINES_PER_SECOND`] lines a second, counting the ones held back.
#[derive(Debug)]
pub struct RateLimit {
    window: Instant,
    admitted: u32,
    held_back: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Log it.
    pub log: bool,
    /// Say first that this many lines were held back in the window that just ended.
    pub held_back: Option<u64>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            window: Instant::now(),
            admitted: 0,
            held_back: 0,
        }
    }
}

impl RateLimit {
    /// The verdict on a line that arrived at `now`.
    pub fn admit(&mut self, now: Instant) -> Verdict {
        let mut held_back = None;
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            if self.held_back > 0 {
                held_back = Some(self.held_back);
            }
            self.window = now;
            self.admitted = 0;
            self.held_back = 0;
        }
        let log = self.admitted < LINES_PER_SECOND;
        if log {
            self.admitted += 1;
        } else {
            self.held_back += 1;
        }
        Verdict { log, held_back }
    }

    /// The lines held back in the current window (to report when the stream ends).
    pub fn pending(&mut self) -> Option<u64> {
        let held_back = std::mem::take(&mut self.held_back);
        (held_back > 0).then_some(held_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |l| lines.push(l));
        }
        lines.extend(splitter.finish());
        lines
    }

    #[test]
    fn lines_are_split_across_chunks() {
        assert_eq!(split(&[b"one\ntw", b"o\r\nthree"]), ["one", "two", "three"]);
        assert_eq!(split(&[b"\n\n"]), ["", ""]);
        assert!(split(&[b""]).is_empty());
    }

    #[test]
    fn a_line_that_does_not_end_is_cut_and_counted() {
        let long = vec![b'x'; MAX_LINE + 100];
        let lines = split(&[&long[..5000], &long[5000..], b"\nnext\n"]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&"x".repeat(MAX_LINE)));
        assert!(lines[0].ends_with(" [100 more bytes of this line cut]"));
        assert_eq!(lines[1], "next");
        // Memory stays bounded however long the line grows.
        let mut splitter = LineSplitter::default();
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..64 {
            splitter.push(&chunk, |_| panic!("no line ended"));
        }
        assert!(splitter.current.capacity() <= 2 * MAX_LINE);
        assert!(splitter.finish().unwrap().contains("67100672 more bytes"));
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_end_the_relay() {
        assert_eq!(
            split(&[b"\xff\xfe bad \xc3\x28\nok\n"]),
            ["\u{fffd}\u{fffd} bad \u{fffd}(", "ok"]
        );
    }

    #[test]
    fn the_rate_limit_holds_back_lines_and_says_how_many() {
        let start = Instant::now();
        let mut limit = RateLimit {
            window: start,
            admitted: 0,
            held_back: 0,
        };
        let logged = (0..1000)
            .filter(|_| limit.admit(start + Duration::from_millis(500)).log)
            .count();
        assert_eq!(logged, LINES_PER_SECOND as usize);
        assert_eq!(
            limit.admit(start + Duration::from_secs(1)),
            Verdict {
                log: true,
                held_back: Some(1000 - u64::from(LINES_PER_SECOND))
            }
        );
        assert_eq!(limit.pending(), None);
        for _ in 0..LINES_PER_SECOND + 5 {
            limit.admit(start + Duration::from_millis(1500));
        }
        assert_eq!(limit.pending(), Some(6));
    }
}
