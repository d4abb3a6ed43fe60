//! Processors that take each record by itself, synchronously or not: a record they cannot
//! process fails with the reason, and the others in the batch go on.

use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::PluginError;

/// What a processor does to one record. An error fails the record, with that message.
pub(crate) trait RecordProcessor: Send {
    /// Process one record in place.
    fn process_record(&self, record: &mut Record) -> Result<(), String>;
}

/// A [`RecordProcessor`] as a [`Processor`]: the records of a batch one after another.
pub(crate) struct PerRecord<P>(pub(crate) P);

#[async_trait::async_trait]
impl<P: RecordProcessor> Processor for PerRecord<P> {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            if let Err(error) = self.0.process_record(record) {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}

/// What an asynchronous processor (one that calls a service) does to one record: the
/// record out, or why it failed (the record is then left as it came).
#[async_trait::async_trait]
pub(crate) trait AsyncRecordProcessor: Send + Sync {
    /// Process one record.
    async fn process_record(&self, record: &Record) -> Result<Record, String>;
}

/// An [`AsyncRecordProcessor`] as a [`Processor`]: the records of a batch one after another.
pub(crate) struct AsyncPerRecord<P>(pub(crate) P);

#[async_trait::async_trait]
impl<P: AsyncRecordProcessor> Processor for AsyncPerRecord<P> {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            match self.0.process_record(record).await {
                Ok(done) => *record = done,
                Err(error) => *outcome = Outcome::Fail(error),
            }
        }
        Ok(())
    }
}

/// Scratch space for running a processor on some of a batch's records (a `condition`'s
/// choice, the records that decoded), reused from batch to batch.
#[derive(Default)]
pub(crate) struct Subset {
    records: Vec<Record>,
    outcomes: Vec<Outcome>,
}

impl Subset {
    /// Run `inner` on the records at `chosen` (ascending indexes) as one batch; the records
    /// and their outcomes go back in their places, also when the processor fails. The
    /// others are left alone.
    pub(crate) async fn process(
        &mut self,
        inner: &mut dyn Processor,
        chosen: &[usize],
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        if chosen.len() == records.len() {
            return inner.process(records, outcomes).await;
        }
        if chosen.is_empty() {
            return Ok(());
        }
        self.records.clear();
        self.records
            .extend(chosen.iter().map(|&i| std::mem::take(&mut records[i])));
        self.outcomes.clear();
        self.outcomes.resize(self.records.len(), Outcome::Keep);
        let done = inner.process(&mut self.records, &mut self.outcomes).await;
        for ((&i, record), outcome) in chosen
            .iter()
            .zip(self.records.drain(..))
            .zip(self.outcomes.drain(..))
        {
            records[i] = record;
            outcomes[i] = outcome;
        }
        done
    }
}
