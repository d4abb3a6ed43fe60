//! Progress of long work in the CLI tools (`culvert replay`, `culvert verify`): a bar
//! redrawn in place on stderr when stderr is a terminal, otherwise a plain line now and
//! then (every 10% or every 2 s, whichever comes first), and always a last line with the
//! count, the time taken and the rate. Nothing goes to stdout, which stays for results.
//!
//! When to draw is decided by [`Throttle`], which takes the time as an argument so its
//! rules are tested without sleeping.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often a bar is redrawn on a terminal.
const BAR_EVERY: Duration = Duration::from_millis(100);
/// How often a progress line is written when stderr is not a terminal...
const LINE_EVERY: Duration = Duration::from_secs(2);
/// ...or every this many percent of the total, whichever comes first.
const LINE_STEP_PERCENT: u64 = 10;
/// Width of the bar, in characters.
const BAR_WIDTH: usize = 30;

/// The progress of one piece of work: `done` of `total` units.
pub struct Progress {
    what: String,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    throttle: Throttle,
    bar: bool,
}

impl Progress {
    /// Work called `what` (`verify`) on `total` `unit`s (`events`); a bar when stderr is a
    /// terminal, lines otherwise.
    pub fn new(what: impl Into<String>, unit: &'static str, total: u64) -> Self {
        Self::with_output(what, unit, total, std::io::stderr().is_terminal())
    }

    fn with_output(what: impl Into<String>, unit: &'static str, total: u64, bar: bool) -> Self {
        let now = Instant::now();
        let throttle = if bar {
            Throttle::new(now, BAR_EVERY, None)
        } else {
            Throttle::new(now, LINE_EVERY, Some(LINE_STEP_PERCENT))
        };
        Self {
            what: what.into(),
            unit,
            total,
            done: 0,
            started: now,
            throttle,
            bar,
        }
    }

    /// `n` more units done; draws when it is time to (not at the end, which
    /// [`finish`](Self::finish) shows).
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        let now = Instant::now();
        if self.done < self.total && self.throttle.due(now, self.done, self.total) {
            self.draw(now, false);
        }
    }

    /// The work is over: the last line (on a terminal, the bar at its end).
    pub fn finish(self) {
        self.draw(Instant::now(), true);
    }

    fn draw(&self, now: Instant, last: bool) {
        let text = self.line(now.saturating_duration_since(self.started), last);
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr is no reason to fail the work.
        let _ = if self.bar {
            let end = if last { "\n" } else { "" };
            write!(err, "\r\x1b[2K{text}{end}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    /// `verify: [=====>     ] 5000/10000 events (50%), 12000 events/s` or, at the end,
    /// `verify: 10000/10000 events in 0.8s (12000 events/s)`.
    fn line(&self, elapsed: Duration, last: bool) -> String {
        let (what, unit, done, total) = (&self.what, self.unit, self.done, self.total);
        let rate = rate(done, elapsed);
        if last {
            return format!(
                "{what}: {done}/{total} {unit} in {:.1}s ({rate:.0} {unit}/s)",
                elapsed.as_secs_f64()
            );
        }
        let percent = percent(done, total);
        let bar = if self.bar {
            let filled = (percent as usize * BAR_WIDTH / 100).min(BAR_WIDTH);
            format!(
                "[{}{}] ",
                "=".repeat(filled),
                " ".repeat(BAR_WIDTH - filled)
            )
        } else {
            String::new()
        };
        format!("{what}: {bar}{done}/{total} {unit} ({percent}%), {rate:.0} {unit}/s")
    }
}

/// Units per second.
fn rate(done: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    }
}

/// Whole percent of `total` (100 when there is nothing to do).
fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        100
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    }
}

/// Decides when progress is shown: when `every` has passed since it last was, or (with a
/// step) when the work crossed into a new `step`-percent band.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    step: Option<u64>,
    last_at: Instant,
    last_band: u64,
}

impl Throttle {
    /// Nothing shown yet at `now`.
    pub fn new(now: Instant, every: Duration, step_percent: Option<u64>) -> Self {
        Self {
            every,
            step: step_percent.filter(|s| *s > 0),
            last_at: now,
            last_band: 0,
        }
    }

    /// Whether to show progress at `now` with `done` of `total`; if so, it counts as shown.
    pub fn due(&mut self, now: Instant, done: u64, total: u64) -> bool {
        let band = self.step.map_or(0, |step| percent(done, total) / step);
        let due =
            now.saturating_duration_since(self.last_at) >= self.every || band > self.last_band;
        if due {
            self.last_at = now;
            self.last_band = band;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_every_two_seconds_or_every_ten_percent() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut throttle = Throttle::new(start, LINE_EVERY, Some(LINE_STEP_PERCENT));
        // Slow work: only time makes a line due.
        assert!(!throttle.due(at(500), 1, 1000));
        assert!(!throttle.due(at(1999), 2, 1000));
        assert!(throttle.due(at(2000), 3, 1000));
        assert!(!throttle.due(at(3000), 4, 1000));
        assert!(throttle.due(at(4000), 5, 1000));
        // Fast work: each new 10% band makes a line due, once.
        assert!(throttle.due(at(4001), 100, 1000));
        assert!(!throttle.due(at(4002), 150, 1000));
        assert!(!throttle.due(at(4003), 199, 1000));
        assert!(throttle.due(at(4004), 200, 1000));
        // Skipping bands shows one line, not one per band.
        assert!(throttle.due(at(4005), 900, 1000));
        assert!(!throttle.due(at(4006), 950, 1000));
        assert!(throttle.due(at(4007), 1000, 1000));
        assert!(!throttle.due(at(4008), 1000, 1000));
    }

    #[test]
    fn a_bar_is_redrawn_by_time_only() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut throttle = Throttle::new(start, BAR_EVERY, None);
        assert!(!throttle.due(at(50), 500, 1000));
        assert!(throttle.due(at(100), 600, 1000));
        assert!(!throttle.due(at(150), 1000, 1000));
        assert!(throttle.due(at(250), 1000, 1000));
    }

    #[test]
    fn an_unknown_or_empty_total_does_not_divide_by_zero() {
        let start = Instant::now();
        let mut throttle = Throttle::new(start, LINE_EVERY, Some(LINE_STEP_PERCENT));
        assert!(throttle.due(start + Duration::from_millis(1), 0, 0));
        assert!(!throttle.due(start + Duration::from_millis(2), 0, 0));
        assert_eq!(percent(5, 0), 100);
        assert_eq!(percent(7, 5), 100);
        assert_eq!(percent(u64::MAX / 2, u64::MAX), 49);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
    }

    #[test]
    fn lines_say_done_total_percent_and_rate() {
        let mut lines = Progress::with_output("verify", "events", 200, false);
        lines.done = 50;
        assert_eq!(
            lines.line(Duration::from_secs(2), false),
            "verify: 50/200 events (25%), 25 events/s"
        );
        lines.done = 200;
        assert_eq!(
            lines.line(Duration::from_secs(4), true),
            "verify: 200/200 events in 4.0s (50 events/s)"
        );
        let mut bar = Progress::with_output("replay", "events", 100, true);
        bar.done = 50;
        assert_eq!(
            bar.line(Duration::from_secs(1), false),
            format!(
                "replay: [{}{}] 50/100 events (50%), 50 events/s",
                "=".repeat(15),
                " ".repeat(15)
            )
        );
    }
}
