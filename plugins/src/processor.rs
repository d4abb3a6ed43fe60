//! The processor contract: the trait every processor implements (built-in or WASM) and
//! the specification a processor plugin publishes.
//!
//! A processor works on a batch in place: it may change any record and says, for each one,
//! whether it goes on ([`Outcome::Keep`]), is dropped ([`Outcome::Drop`]; the engine acks
//! it, so it is never lost), failed ([`Outcome::Fail`]; the engine nacks it) or replaced by
//! several ([`Outcome::Split`]; the original is acked once every one is). The
//! built-in processors, the registry and `condition` handling are in `culvert-processors`.

use crate::connector::{PluginError, Settings};
use crate::spec::Parameter;
use culvert_domain::Record;

/// What became of one record in a processor.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It goes on to the next node (possibly changed).
    Keep,
    /// It is filtered out: acked, not passed on.
    Drop,
    /// Processing it failed, with this error.
    Fail(String),
    /// It is replaced by these records, in order, which go on in its place (Conduit's
    /// `MultiRecord`, as `split` and `clone` make). They keep the original's position; the
    /// original counts as handled (and its position may be persisted) only once every one
    /// of them is: written, dropped or sent to the dead-letter queue. None: as `Drop`.
    Split(Vec<Record>),
}

/// A configured processor instance.
#[async_trait::async_trait]
pub trait Processor: Send {
    /// The processor's id (a standalone processor logs with it); called before `open`.
    fn identify(&mut self, _id: &str) {}
    /// Get ready before the first batch (a standalone processor starts here); an error
    /// keeps the pipeline from starting.
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    /// Process `records` in place. `outcomes` has one entry per record, all
    /// [`Outcome::Keep`] on entry; set the others. An error means the processor itself
    /// failed (not one record): the pipeline stops with it.
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError>;
}

/// A processor plugin's description (what ListProcessorPlugins shows).
#[derive(Clone, Debug)]
pub struct ProcessorSpecification {
    /// The plugin's name, e.g. `field.set`.
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// More on what it does.
    pub description: &'static str,
    /// Its version (`v0.1.0`).
    pub version: &'static str,
    /// Who wrote it.
    pub author: &'static str,
    /// The settings it accepts.
    pub parameters: Vec<Parameter>,
    /// Whether it is a standalone (WASM) plugin.
    pub standalone: bool,
}

impl ProcessorSpecification {
    /// The name it is listed under: `builtin:NAME@VERSION` or `standalone:NAME@VERSION`.
    pub fn full_name(&self) -> String {
        crate::connector::full_name(self.standalone, self.name, self.version)
    }
}

/// A kind of processor that can be configured into instances.
pub trait ProcessorPlugin: Send + Sync {
    /// What it is and which settings it takes.
    fn specification(&self) -> &ProcessorSpecification;
    /// An instance with these settings (already validated against the parameters, with
    /// defaults applied). Errors say which setting is wrong.
    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError>;
}
