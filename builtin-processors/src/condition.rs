//! A processor's `condition`: a Go template rendered per record and read as a boolean, as
//! Conduit does; the processor sees only the records it is true for.

use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::PluginError;
use culvert_template::{parse_bool, Template};

/// A processor that only sees the records its condition is true for; the others pass
/// through unchanged, in place.
pub(crate) struct Conditional {
    condition: Template,
    inner: Box<dyn Processor>,
    chosen: Vec<usize>,
    scratch: Vec<Record>,
    scratch_outcomes: Vec<Outcome>,
}

impl Conditional {
    /// `inner`, shown only the records `condition` renders true for.
    pub(crate) fn new(condition: Template, inner: Box<dyn Processor>) -> Self {
        Self {
            condition,
            inner,
            chosen: Vec::new(),
            scratch: Vec::new(),
            scratch_outcomes: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl Processor for Conditional {
    fn identify(&mut self, id: &str) {
        self.inner.identify(id);
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        self.chosen.clear();
        for (i, record) in records.iter().enumerate() {
            let verdict = self
                .condition
                .render(record)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    parse_bool(&text).ok_or_else(|| {
                        format!(
                            "error converting the condition go-template output to boolean, \
                             strconv.ParseBool: parsing {text:?}: invalid syntax"
                        )
                    })
                });
            match verdict {
                Ok(true) => self.chosen.push(i),
                Ok(false) => {}
                Err(error) => {
                    outcomes[i] = Outcome::Fail(format!("failed evaluating condition: {error}"))
                }
            }
        }
        if self.chosen.len() == records.len() {
            return self.inner.process(records, outcomes).await;
        }
        if self.chosen.is_empty() {
            return Ok(());
        }
        // Move the chosen records out, process them as one batch, move them back.
        self.scratch.clear();
        self.scratch
            .extend(self.chosen.iter().map(|&i| std::mem::take(&mut records[i])));
        self.scratch_outcomes.clear();
        self.scratch_outcomes
            .resize(self.scratch.len(), Outcome::Keep);
        self.inner
            .process(&mut self.scratch, &mut self.scratch_outcomes)
            .await?;
        for ((&i, record), outcome) in self
            .chosen
            .iter()
            .zip(self.scratch.drain(..))
            .zip(self.scratch_outcomes.drain(..))
        {
            records[i] = record;
            outcomes[i] = outcome;
        }
        Ok(())
    }
}
