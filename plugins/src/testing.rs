//! Test support for connector authors: the cancel-safety harness.
//!
//! [`check_cancel_safety`] proves that a [`Source`]'s `read` loses nothing when its future is
//! dropped part-way. It reads a source's whole data set again and again, each pass from a
//! fresh instance; every read gets a random `max` and is either awaited to the end or
//! dropped at its N-th await point (the N-th time it answers `Pending`, N drawn at random,
//! seeded). The records that the completed reads returned, concatenated, must be exactly the
//! expected data, in order: no gap (a record lost by a dropped read), no repeat, nothing
//! extra, and no read returns more than its `max`. Passes repeat until at least
//! [`CancelSafety::cancellations`] reads were dropped.
//!
//! Every built-in source runs under it in its unit tests, and so must every new one. The
//! harness's own tests show it catching a source that keeps records in a local across an
//! await.

use crate::connector::{PluginError, Source};
use culvert_domain::Record;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How hard to try.
#[derive(Clone, Debug)]
pub struct CancelSafety {
    /// Seed of the random choices (the same seed makes the same choices).
    pub seed: u64,
    /// Passes repeat until at least this many reads were dropped part-way.
    pub cancellations: usize,
    /// Most passes, whatever the count of dropped reads (a source with few await points).
    pub max_passes: usize,
    /// Reads ask for between 1 and this many records.
    pub max_batch: usize,
    /// A read is dropped at its first to this-many-th await point.
    pub max_pending: u32,
    /// One read in this many is awaited to the end (the rest are dropped if they wait).
    pub complete_one_in: u32,
    /// A pass that makes no progress for this long has lost records at its end.
    pub stall: Duration,
}

impl Default for CancelSafety {
    fn default() -> Self {
        Self {
            seed: 0x0c4a_5e1f,
            cancellations: 2_000,
            max_passes: 200,
            max_batch: 600,
            max_pending: 4,
            complete_one_in: 3,
            stall: Duration::from_secs(5),
        }
    }
}

/// What a successful check did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Fresh sources read through.
    pub passes: usize,
    /// Reads that completed.
    pub reads: usize,
    /// Reads dropped part-way.
    pub cancelled: usize,
    /// Records returned over every pass.
    pub records: usize,
}

/// How a source failed the check.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// A record came where another was expected: the expected one (and perhaps more) was
    /// lost, or an earlier one came again.
    #[error(
        "pass {pass}: record {index} should be {expected:?} but is {got:?} ({kind}) after {cancelled} dropped reads"
    )]
    Mismatch {
        /// Which pass (from 0).
        pass: usize,
        /// The index in the expected data.
        index: usize,
        /// The identity expected there.
        expected: String,
        /// The identity that came.
        got: String,
        /// `lost` (the one that came is later in the data), `repeated` (earlier) or
        /// `unknown` (not in the data).
        kind: &'static str,
        /// Reads dropped so far in this pass.
        cancelled: usize,
    },
    /// More records came than the data holds.
    #[error("pass {pass}: a record beyond the {expected} expected: {got:?}")]
    Extra {
        /// Which pass.
        pass: usize,
        /// How many records the data holds.
        expected: usize,
        /// The identity of the extra record.
        got: String,
    },
    /// Nothing more came for a while before the data was complete.
    #[error("pass {pass}: stalled after {got} of {expected} records ({missing} lost at the end?)")]
    Stalled {
        /// Which pass.
        pass: usize,
        /// Records returned.
        got: usize,
        /// Records expected.
        expected: usize,
        /// How many never came.
        missing: usize,
    },
    /// A read returned more records than it asked for.
    #[error("pass {pass}: a read of at most {max} returned {returned}")]
    TooMany {
        /// Which pass.
        pass: usize,
        /// What the read asked for.
        max: usize,
        /// What it returned.
        returned: usize,
    },
    /// The source failed.
    #[error("pass {pass}: {error}")]
    Plugin {
        /// Which pass.
        pass: usize,
        /// The source's error.
        error: PluginError,
    },
}

/// Check that `make()`'s sources, opened from the start, return exactly `expected` (as told
/// apart by `identity`), in order, however their reads are dropped. See the module docs.
pub async fn check_cancel_safety<M, I>(
    mut make: M,
    expected: &[Vec<u8>],
    identity: I,
    options: &CancelSafety,
) -> Result<Report, Violation>
where
    M: FnMut() -> Box<dyn Source>,
    I: Fn(&Record) -> Vec<u8>,
{
    let mut rng = SmallRng::seed_from_u64(options.seed);
    let mut report = Report::default();
    for pass in 0..options.max_passes.max(1) {
        let plugin = |error| Violation::Plugin { pass, error };
        let mut source = make();
        source.open(None).await.map_err(plugin)?;
        let mut got = 0;
        let mut cancelled_in_pass = 0;
        let mut progress_at = tokio::time::Instant::now();
        while got < expected.len() {
            if progress_at.elapsed() > options.stall {
                return Err(Violation::Stalled {
                    pass,
                    got,
                    expected: expected.len(),
                    missing: expected.len() - got,
                });
            }
            let max = rng.gen_range(1..=options.max_batch.max(1));
            let complete = rng.gen_ratio(1, options.complete_one_in.max(1));
            let pendings = rng.gen_range(1..=options.max_pending.max(1));
            let read = source.read(max);
            let outcome = if complete {
                Some(read.await)
            } else {
                DropAt::new(read, pendings).await
            };
            let Some(read) = outcome else {
                report.cancelled += 1;
                cancelled_in_pass += 1;
                continue;
            };
            let records = read.map_err(plugin)?;
            report.reads += 1;
            if records.len() > max {
                return Err(Violation::TooMany {
                    pass,
                    max,
                    returned: records.len(),
                });
            }
            for record in &records {
                let id = identity(record);
                let Some(want) = expected.get(got) else {
                    return Err(Violation::Extra {
                        pass,
                        expected: expected.len(),
                        got: text(&id),
                    });
                };
                if id != *want {
                    let kind = if expected[..got].contains(&id) {
                        "repeated"
                    } else if expected[got..].contains(&id) {
                        "lost"
                    } else {
                        "unknown"
                    };
                    return Err(Violation::Mismatch {
                        pass,
                        index: got,
                        expected: text(want),
                        got: text(&id),
                        kind,
                        cancelled: cancelled_in_pass,
                    });
                }
                got += 1;
            }
            if let Some(last) = records.last() {
                progress_at = tokio::time::Instant::now();
                report.records += records.len();
                // As the engine does: acks in order, cumulative.
                source.ack(last.position.clone()).await.map_err(plugin)?;
            }
        }
        source.teardown().await.map_err(plugin)?;
        report.passes += 1;
        if report.cancelled >= options.cancellations {
            break;
        }
    }
    Ok(report)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A future that is dropped at its N-th await point: it resolves to `None` the N-th time the
/// inner future answers `Pending` (the inner future is dropped with it), or to the inner
/// output if that comes first.
pub struct DropAt<F> {
    inner: Pin<Box<F>>,
    pendings_left: u32,
}

impl<F: Future> DropAt<F> {
    /// `inner`, dropped at its `pendings`-th await point (at least the first).
    pub fn new(inner: F, pendings: u32) -> Self {
        Self {
            inner: Box::pin(inner),
            pendings_left: pendings.max(1),
        }
    }
}

impl<F: Future> Future for DropAt<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => {
                self.pendings_left -= 1;
                if self.pendings_left == 0 {
                    Poll::Ready(None)
                } else {
                    // The inner future registered the waker: we are polled again when it
                    // can make progress.
                    Poll::Pending
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{Data, Position};

    /// A source over a list of ids that awaits (yields) between records.
    struct Listed {
        data: Vec<Vec<u8>>,
        next: usize,
        /// Keep what was taken in a local across awaits (the bug the harness exists for).
        leaky: bool,
        /// Records taken and not yet returned (the cancel-safe way).
        taken: Vec<Record>,
    }

    fn record(id: &[u8]) -> Record {
        Record {
            position: Position(id.to_vec()),
            key: Some(Data::Raw(id.to_vec())),
            ..Record::default()
        }
    }

    #[async_trait::async_trait]
    impl Source for Listed {
        async fn open(&mut self, _position: Option<Position>) -> Result<(), PluginError> {
            Ok(())
        }
        async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
            let mut local = Vec::new();
            loop {
                let held = if self.leaky {
                    local.len()
                } else {
                    self.taken.len()
                };
                if held >= max || self.next == self.data.len() {
                    break;
                }
                let r = record(&self.data[self.next]);
                self.next += 1;
                if self.leaky {
                    local.push(r);
                } else {
                    self.taken.push(r);
                }
                if self.next.is_multiple_of(7) {
                    tokio::task::yield_now().await;
                }
            }
            if self.leaky {
                Ok(local)
            } else {
                let take = self.taken.len().min(max);
                Ok(self.taken.drain(..take).collect())
            }
        }
        async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
            Ok(())
        }
        async fn teardown(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
    }

    fn ids() -> Vec<Vec<u8>> {
        (0..5_000).map(|n| format!("id-{n}").into_bytes()).collect()
    }

    fn options() -> CancelSafety {
        CancelSafety {
            stall: Duration::from_millis(200),
            ..CancelSafety::default()
        }
    }

    /// A fresh source over `ids()`.
    fn listed(leaky: bool) -> Listed {
        Listed {
            data: ids(),
            next: 0,
            leaky,
            taken: Vec::new(),
        }
    }

    /// Check sources over `ids()`, leaky or not.
    async fn check(leaky: bool) -> Result<Report, Violation> {
        let make = || -> Box<dyn Source> { Box::new(listed(leaky)) };
        check_cancel_safety(make, &ids(), |r| r.position.0.clone(), &options()).await
    }

    #[tokio::test]
    async fn a_source_that_keeps_what_it_took_in_self_passes() {
        let report = check(false).await.unwrap();
        assert!(report.cancelled >= 2_000, "{report:?}");
        assert_eq!(report.records, report.passes * ids().len(), "{report:?}");
    }

    #[tokio::test]
    async fn a_source_that_keeps_records_in_a_local_across_an_await_fails() {
        let error = check(true).await.unwrap_err();
        assert!(
            matches!(&error, Violation::Mismatch { kind: "lost", .. })
                || matches!(&error, Violation::Stalled { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn repeats_and_oversized_reads_are_caught() {
        // A source that hands out its first record twice.
        struct Stutter(Listed, bool);
        #[async_trait::async_trait]
        impl Source for Stutter {
            async fn open(&mut self, p: Option<Position>) -> Result<(), PluginError> {
                self.0.open(p).await
            }
            async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
                let mut records = self.0.read(max).await?;
                if !self.1 && !records.is_empty() {
                    self.1 = true;
                    records.push(records[0].clone());
                }
                Ok(records)
            }
            async fn ack(&mut self, p: Position) -> Result<(), PluginError> {
                self.0.ack(p).await
            }
            async fn teardown(&mut self) -> Result<(), PluginError> {
                Ok(())
            }
        }
        let data = ids();
        let make = || -> Box<dyn Source> { Box::new(Stutter(listed(false), false)) };
        let error = check_cancel_safety(make, &data, |r| r.position.0.clone(), &options())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                Violation::Mismatch {
                    kind: "repeated",
                    ..
                }
            ) || matches!(&error, Violation::TooMany { .. }),
            "{error}"
        );
    }
}
