//! Processors that take each record by itself: a record they cannot process fails with
//! the reason, and the others in the batch go on.

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
