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
