//! A processor's `condition`: a Go template rendered per record and read as a boolean, as
//! Conduit does; the processor sees only the records it is true for.

use crate::per_record::Subset;
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
    subset: Subset,
}

impl Conditional {
    /// `inner`, shown only the records `condition` renders true for.
    pub(crate) fn new(condition: Template, inner: Box<dyn Processor>) -> Self {
        Self {
            condition,
            inner,
            chosen: Vec::new(),
            subset: Subset::default(),
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
        self.subset
            .process(self.inner.as_mut(), &self.chosen, records, outcomes)
            .await
    }
}
