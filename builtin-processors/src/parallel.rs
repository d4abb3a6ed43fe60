//! Conduit's `workers`: one processor run by several instances at once, order kept.

use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::PluginError;

/// A processor run by several instances at once (Conduit's `workers`): each batch is cut
/// into as many runs of consecutive records, the runs are processed concurrently, and the
/// records and outcomes are put back in their places, so the order is kept.
pub struct Parallel {
    /// The instances; each is out (in its task) only while a batch is processed.
    instances: Vec<Option<Box<dyn Processor>>>,
}

impl Parallel {
    /// Run `instances` (at least one) as workers of one processor.
    pub fn new(instances: Vec<Box<dyn Processor>>) -> Self {
        assert!(
            !instances.is_empty(),
            "a processor needs at least one worker"
        );
        Self {
            instances: instances.into_iter().map(Some).collect(),
        }
    }

    fn instance(&mut self, index: usize) -> Result<Box<dyn Processor>, PluginError> {
        self.instances[index]
            .take()
            .ok_or_else(|| PluginError::Other("a worker of the processor was lost".into()))
    }
}

#[async_trait::async_trait]
impl Processor for Parallel {
    fn identify(&mut self, id: &str) {
        for instance in self.instances.iter_mut().flatten() {
            instance.identify(id);
        }
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        for instance in self.instances.iter_mut().flatten() {
            instance.open().await?;
        }
        Ok(())
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        let workers = self.instances.len().min(records.len());
        if workers <= 1 {
            let mut instance = self.instance(0)?;
            let result = instance.process(records, outcomes).await;
            self.instances[0] = Some(instance);
            return result;
        }
        let run = records.len().div_ceil(workers);
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (records, outcomes)) in records
            .chunks_mut(run)
            .zip(outcomes.chunks(run))
            .enumerate()
        {
            let mut instance = self.instance(index)?;
            let mut records: Vec<Record> = records.iter_mut().map(std::mem::take).collect();
            let mut outcomes = outcomes.to_vec();
            tasks.spawn(async move {
                let result = instance.process(&mut records, &mut outcomes).await;
                (index, instance, records, outcomes, result)
            });
        }
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, instance, processed, processed_outcomes, result) = joined.map_err(|e| {
                PluginError::Other(format!("a worker of the processor failed: {e}"))
            })?;
            self.instances[index] = Some(instance);
            let start = index * run;
            for (offset, (record, outcome)) in
                processed.into_iter().zip(processed_outcomes).enumerate()
            {
                records[start + offset] = record;
                outcomes[start + offset] = outcome;
            }
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}
