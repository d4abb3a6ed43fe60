//! `custom.javascript`: run each record through a user's JavaScript function.
//!
//! The script (setting `script`, or the file named by `script.path`, read at configure
//! time; exactly one of the two) must define a function `process(record)`. It is given the
//! record as an object with `Position` (bytes), `Operation` (`"create"`, `"update"`,
//! `"delete"` or `"snapshot"`), `Metadata` (an object of strings), `Key` and
//! `Payload.Before` / `Payload.After`. Raw data is a `Uint8Array` of its bytes (so
//! `String.fromCharCode.apply(String, rec.Payload.After)` reads it, as in Conduit) and
//! structured data a plain object. The function changes the record and returns it, or
//! returns a new one; `null` or `undefined` drops the record. The globals Conduit gives
//! scripts are there too: `Record()` (an empty record, metadata `{}`), `RawData(text)`
//! (the text's UTF-8 bytes), `StructuredData()` (an empty object) and `logger`, a
//! Zerolog-style logger (`logger.Info().Str("k", v).Msg("text")`) that writes to Culvert's
//! log.
//!
//! The engine is QuickJS (crate `rquickjs`; see `docs/adr/20261201-javascript-engine.md`).
//! Each processor instance owns one runtime on a thread of its own (a runtime cannot move
//! between threads): batches go to it over a channel and come back when done; the thread
//! ends when the processor is dropped. Limits, which Conduit has no parameters for:
//!
//! * each call of `process` may run for [`TIME_LIMIT`] (loading the script for
//!   [`LOAD_TIME_LIMIT`]), checked by QuickJS's interrupt handler;
//! * the runtime may hold [`MEMORY_LIMIT`] bytes, JavaScript's stack [`STACK_LIMIT`].
//!
//! A record whose call breaks a limit fails (so it goes to the dead-letter queue) with a
//! message saying which, and the runtime is then rebuilt from the script for the next
//! record. A script error fails just its record. A script that does not compile, throws
//! while loading or defines no `process` function is refused at configure time.
//!
//! Unlike Conduit, a returned plain object is taken as a record (Conduit only takes the
//! record it gave or one from `Record()`), a string set as key or payload is raw data
//! (Conduit silently drops it) and other values there fail the record; structured data
//! crosses as JSON would (`JSON.parse` of its text in, `JSON.stringify` out), so integers
//! beyond 2^53 lose precision and `1.0` comes back as `1`.
//!
//! Cost: the record is built in JavaScript directly from Rust's values and read back the
//! same way (see `convert`), not printed to JSON text and parsed on the other side; that
//! text was most of the cost per record.

use crate::params::{invalid, setting, with_schema_parameters};
use crate::{AUTHOR, VERSION};
use convert::Capture;
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType};
use culvert_plugins::{PluginError, Settings};
use rquickjs::context::EvalOptions;
use rquickjs::{
    Array, Coerced, Context, Ctx, FromJs, Function, Object, Persistent, Runtime, TypedArray, Value,
};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long one call of `process` may run.
pub const TIME_LIMIT: Duration = Duration::from_millis(100);
/// How long the script's top-level code may run when it is loaded.
pub const LOAD_TIME_LIMIT: Duration = Duration::from_secs(1);
/// How much memory one processor's JavaScript runtime may hold, in bytes.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// How deep JavaScript's stack may grow, in bytes.
pub const STACK_LIMIT: usize = 1 << 20;
/// The stack of the thread that runs the script (room for QuickJS's stack and ours).
const THREAD_STACK: usize = 8 << 20;
/// The function the script must define.
const ENTRYPOINT: &str = "process";

/// `custom.javascript`: process records with a JavaScript function.
pub struct CustomJavascript {
    spec: ProcessorSpecification,
}

impl CustomJavascript {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![
                Parameter::new(
                    "script",
                    ParameterType::String,
                    "The JavaScript source. It must define a function `process(record)`, which \
                     changes the record it is given and returns it, or returns a new one made \
                     with `Record()`; returning `null` drops the record from the pipeline.",
                ),
                Parameter::new(
                    "script.path",
                    ParameterType::String,
                    "A file holding the JavaScript source, in place of `script`.",
                ),
            ],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "custom.javascript",
                summary: "Run custom JavaScript code.",
                description: "Runs each record through the function `process(record)` of a \
                              JavaScript script. The record is an object with `Position`, \
                              `Operation`, `Metadata`, `Key` and `Payload` (`Before` and \
                              `After`); raw data is a byte array and structured data a plain \
                              object. The script can also use:\n\
                              * `logger`: writes to the server's log, Zerolog style \
                              (`logger.Info().Msg(\"text\")`);\n\
                              * `Record()`: a new, empty record to return;\n\
                              * `RawData(text)`: raw data holding the text's bytes, e.g. \
                              `record.Key = RawData(\"new key\")`;\n\
                              * `StructuredData()`: a new, empty structured data object.\n\n\
                              Each call may run for 100 ms and the script's runtime may hold \
                              64 MiB; a record that breaks a limit fails.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for CustomJavascript {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for CustomJavascript {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let script = setting(settings, "script");
        let path = setting(settings, "script.path");
        let (key, source) = match (script.is_empty(), path.is_empty()) {
            (false, false) => {
                return Err(invalid(
                    "script",
                    "only one of: [script, script.path] should be provided",
                ))
            }
            (true, true) => {
                return Err(invalid(
                    "script",
                    "one of: [script, script.path] needs to be provided",
                ))
            }
            (false, true) => ("script", script.to_owned()),
            (true, false) => {
                let source = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "script.path",
                        format!("error reading script from path {path}: {e}"),
                    )
                })?;
                ("script.path", source)
            }
        };
        let worker = Worker::start(source).map_err(|e| invalid(key, e))?;
        Ok(Box::new(worker))
    }
}

/// The records of a batch (processed in place) and their outcomes (pushed in order).
type Batch = (Vec<Record>, Vec<Outcome>);

/// A batch for the script's thread (no outcomes yet), and where it goes back.
type Job = (Batch, oneshot::Sender<Batch>);

/// The processor: the thread that owns the script's runtime, and the way to it.
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The vectors of the last batch, empty, for the next one: a batch's vectors are
    /// large (over 64 KiB for 1,000 records), and allocating and freeing them for every
    /// batch made glibc consolidate its free lists each time.
    spare: Batch,
}

impl Worker {
    /// Start the thread and load the script on it; an error says why the script is
    /// unusable.
    fn start(source: String) -> Result<Self, String> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("custom.javascript".to_owned())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let mut engine = match Engine::load(source) {
                    Ok(engine) => {
                        let _ = ready_tx.send(Ok(()));
                        engine
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                while let Ok(((mut records, mut outcomes), reply)) = jobs_rx.recv() {
                    for slot in records.iter_mut() {
                        // The caller gave up (the processor was dropped mid-batch).
                        if reply.is_closed() {
                            break;
                        }
                        let (record, outcome) = engine.process(std::mem::take(slot));
                        *slot = record;
                        outcomes.push(outcome);
                    }
                    let _ = reply.send((records, outcomes));
                }
            })
            .map_err(|e| format!("failed to start the JavaScript thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                jobs: Some(jobs_tx),
                thread: Some(thread),
                spare: Batch::default(),
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err("the JavaScript thread ended while loading the script".to_owned()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the current record is done
        // (within the time limit); a batch still queued is abandoned.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait::async_trait]
impl Processor for Worker {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        let gone = || PluginError::Other("custom.javascript: the JavaScript thread ended".into());
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        let (mut batch, mut done) = std::mem::take(&mut self.spare);
        batch.clear();
        done.clear();
        batch.extend(records.iter_mut().map(std::mem::take));
        let (reply_tx, reply_rx) = oneshot::channel();
        jobs.send(((batch, done), reply_tx)).map_err(|_| gone())?;
        let (mut batch, mut done) = reply_rx.await.map_err(|_| gone())?;
        for ((slot, outcome), (record, result)) in records
            .iter_mut()
            .zip(outcomes.iter_mut())
            .zip(batch.drain(..).zip(done.drain(..)))
        {
            *slot = record;
            *outcome = result;
        }
        self.spare = (batch, done);
        Ok(())
    }
}

/// Why a call failed.
enum Failure {
    /// The script threw, or returned something that is not a record.
    Script(String),
    /// It ran out of time.
    Time,
    /// It ran out of memory.
    Memory,
}

/// The time budget of the call under way, shared with the interrupt handler.
#[derive(Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    expired: Cell<bool>,
}

/// A loaded script: its runtime and the functions Rust calls. Fields drop in order, the
/// runtime last.
struct Loaded {
    /// The prelude's `run`, bound to the script's `process`: the record's parts in, the
    /// returned record's parts (or null) out. One call per record: Rust builds no objects
    /// the script could as well build, and crosses into JavaScript once.
    run: Persistent<Function<'static>>,
    /// The prelude's `metadataText`: metadata pairs as JSON text (for strings Rust cannot
    /// read).
    metadata_text: Persistent<Function<'static>>,
    /// Structured data the script returned, as `exportRecord` (through `capture`)
    /// converted it.
    capture: Rc<Capture>,
    context: Context,
    /// Kept alive for the context and values above.
    _runtime: Runtime,
    clock: Rc<Clock>,
}

/// The script and, unless a limit was just hit, its loaded runtime.
struct Engine {
    source: String,
    loaded: Option<Loaded>,
}

/// Our globals and helpers, run before the script: a function of the native `encode`
/// (text to UTF-8 bytes), `emit` (write a log line) and `capture` (structured data to
/// Rust's form) that returns `runner` (makes `run` of the script's `process`) and
/// `metadataText`.
const PRELUDE: &str = include_str!("custom_javascript/prelude.js");

impl Engine {
    /// Load the script into a new runtime.
    fn load(source: String) -> Result<Self, String> {
        let loaded = Loaded::new(&source)?;
        Ok(Self {
            source,
            loaded: Some(loaded),
        })
    }

    /// Process one record: the record out and its outcome (a failed record is returned as
    /// it came).
    fn process(&mut self, record: Record) -> (Record, Outcome) {
        let loaded = match &mut self.loaded {
            Some(loaded) => loaded,
            slot => match Loaded::new(&self.source) {
                Ok(loaded) => slot.insert(loaded),
                Err(error) => return (record, Outcome::Fail(error)),
            },
        };
        match loaded.call(&record) {
            Ok(Some(out)) => (out, Outcome::Keep),
            Ok(None) => (record, Outcome::Drop),
            Err(Failure::Script(error)) => (record, Outcome::Fail(error)),
            Err(limit) => {
                // Start afresh: the script may have been stopped half-way through.
                self.loaded = None;
                let error = match limit {
                    Failure::Time => format!(
                        "custom.javascript: the script ran longer than the limit of {} ms per \
                         record and was stopped",
                        TIME_LIMIT.as_millis()
                    ),
                    _ => format!(
                        "custom.javascript: the script ran out of memory (limit {} MiB) and \
                         was stopped",
                        MEMORY_LIMIT >> 20
                    ),
                };
                (record, Outcome::Fail(error))
            }
        }
    }
}

impl Loaded {
    /// A runtime with the limits set, the prelude and the script run, and `process` found.
    fn new(source: &str) -> Result<Self, String> {
        let runtime =
            Runtime::new().map_err(|e| format!("failed to start a JavaScript runtime: {e}"))?;
        runtime.set_memory_limit(MEMORY_LIMIT);
        runtime.set_max_stack_size(STACK_LIMIT);
        let clock = Rc::new(Clock::default());
        let handler_clock = clock.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let over = handler_clock
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline);
            if over {
                handler_clock.expired.set(true);
            }
            over
        })));
        let context = Context::full(&runtime)
            .map_err(|e| format!("failed to start a JavaScript context: {e}"))?;
        clock.deadline.set(Some(Instant::now() + LOAD_TIME_LIMIT));
        let capture = Rc::new(Capture::default());
        let functions = context.with(|ctx| -> Result<_, String> {
            let (runner, metadata_text) = prelude(&ctx, capture.clone())
                .map_err(|e| format!("failed to set up the helpers: {e}"))?;
            let mut options = EvalOptions::default();
            options.global = true;
            options.strict = false;
            options.filename = Some("script".to_owned());
            ctx.eval_with_options::<(), _>(source, options)
                .map_err(|e| {
                    let what = describe(&ctx, e);
                    if clock.expired.get() {
                        format!(
                            "failed to load script: it ran longer than {} ms",
                            LOAD_TIME_LIMIT.as_millis()
                        )
                    } else {
                        format!("failed to load script: {what}")
                    }
                })?;
            let process: Value = ctx.globals().get(ENTRYPOINT).map_err(|e| e.to_string())?;
            let process = process
                .into_function()
                .ok_or_else(|| format!("failed to get entrypoint function {ENTRYPOINT:?}"))?;
            let run: Function = runner
                .call((process,))
                .map_err(|e| format!("failed to set up the helpers: {e}"))?;
            Ok((
                Persistent::save(&ctx, run),
                Persistent::save(&ctx, metadata_text),
            ))
        });
        clock.deadline.set(None);
        let (run, metadata_text) = functions?;
        Ok(Self {
            run,
            metadata_text,
            capture,
            context,
            _runtime: runtime,
            clock,
        })
    }

    /// Call `process` with the record: the record it returns, or none to drop it.
    fn call(&mut self, record: &Record) -> Result<Option<Record>, Failure> {
        self.clock.expired.set(false);
        self.clock.deadline.set(Some(Instant::now() + TIME_LIMIT));
        let result = self.context.with(|ctx| {
            let failed = |e: rquickjs::Error| match e {
                rquickjs::Error::Allocation => Failure::Memory,
                e => {
                    let what = describe(&ctx, e);
                    if self.clock.expired.get() {
                        Failure::Time
                    } else if what.contains("out of memory") {
                        Failure::Memory
                    } else {
                        Failure::Script(format!("custom.javascript: {what}"))
                    }
                }
            };
            let run = self.run.clone().restore(&ctx).map_err(failed)?;
            let input = import(&ctx, record).map_err(failed)?;
            self.capture.clear();
            let parts: Option<Array> = run.call(input).map_err(failed)?;
            parts
                .map(|parts| {
                    build(parts, &self.capture, &self.metadata_text)
                        .map_err(failed)?
                        .map_err(Failure::Script)
                })
                .transpose()
        });
        self.clock.deadline.set(None);
        if self.clock.expired.get() && result.is_err() {
            return Err(Failure::Time);
        }
        result
    }
}

/// Set up the globals and return the `runner` and `metadataText` helpers.
fn prelude<'js>(
    ctx: &Ctx<'js>,
    capture: Rc<Capture>,
) -> rquickjs::Result<(Function<'js>, Function<'js>)> {
    let encode = Function::new(ctx.clone(), |ctx: Ctx<'js>, text: Coerced<String>| {
        TypedArray::<u8>::new(ctx, text.0.into_bytes())
    })?;
    let emit = Function::new(
        ctx.clone(),
        |level: String, message: String, fields: Option<String>| log(&level, &message, fields),
    )?;
    let capture = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>,
              value: Value<'js>,
              object_proto: Object<'js>,
              array_proto: Object<'js>,
              member: Function<'js>,
              stringify: Function<'js>| {
            capture.capture(&ctx, value, (object_proto, array_proto), member, stringify)
        },
    )?;
    let setup: Function = ctx.eval(PRELUDE)?;
    let helpers: Array = setup.call((encode, emit, capture))?;
    Ok((helpers.get(0)?, helpers.get(1)?))
}

/// Write a script's log line.
fn log(level: &str, message: &str, fields: Option<String>) {
    let fields = fields.unwrap_or_default();
    let fields = fields.as_str();
    match level {
        "trace" => tracing::trace!(target: "custom.javascript", fields, "{message}"),
        "debug" => tracing::debug!(target: "custom.javascript", fields, "{message}"),
        "info" => tracing::info!(target: "custom.javascript", fields, "{message}"),
        "warn" => tracing::warn!(target: "custom.javascript", fields, "{message}"),
        _ => tracing::error!(target: "custom.javascript", fields, "{message}"),
    }
}

/// The text of a failed call: the exception's name, message and where it was thrown.
fn describe(ctx: &Ctx<'_>, error: rquickjs::Error) -> String {
    if !matches!(error, rquickjs::Error::Exception) {
        return error.to_string();
    }
    let thrown = ctx.catch();
    if let Some(exception) = thrown.as_exception() {
        let name: String = exception.get("name").unwrap_or_else(|_| "Error".to_owned());
        let mut text = format!("{name}: {}", exception.message().unwrap_or_default());
        // Where in the user's script (not in our helpers) it was thrown.
        let frame = exception.stack().and_then(|stack| {
            let line = stack
                .lines()
                .map(str::trim)
                .find(|l| l.contains("(script:"))?;
            Some(line.to_owned())
        });
        if let Some(frame) = frame {
            text.push(' ');
            text.push_str(&frame);
        }
        return text;
    }
    match Coerced::<String>::from_js(ctx, thrown) {
        Ok(text) => format!("uncaught exception: {}", text.0),
        Err(_) => "uncaught exception".to_owned(),
    }
}

/// The parts of the record `run` makes the object the script is given of: position,
/// operation, metadata, key, before and after.
type Parts<'js> = (
    TypedArray<'js, u8>,
    &'static str,
    Object<'js>,
    Value<'js>,
    Value<'js>,
    Value<'js>,
);

/// The record's parts as `run` takes them.
fn import<'js>(ctx: &Ctx<'js>, record: &Record) -> rquickjs::Result<Parts<'js>> {
    let position = TypedArray::<u8>::new_copy(ctx.clone(), &record.position.0)?;
    let metadata = Object::new(ctx.clone())?;
    for (key, value) in &record.metadata {
        metadata.set(key, value)?;
    }
    Ok((
        position,
        record.operation.as_str(),
        metadata,
        data(ctx, &record.key)?,
        data(ctx, &record.payload.before)?,
        data(ctx, &record.payload.after)?,
    ))
}

/// Data as the script sees it: null, bytes or an object.
fn data<'js>(ctx: &Ctx<'js>, data: &Option<Data>) -> rquickjs::Result<Value<'js>> {
    Ok(match data {
        None => Value::new_null(ctx.clone()),
        Some(Data::Raw(bytes)) => TypedArray::<u8>::new_copy(ctx.clone(), bytes)?.into_value(),
        Some(Data::Structured(map)) => convert::to_js(ctx, map)?,
    })
}

/// Where `exportRecord` puts the parts of a returned record (see prelude.js): tag and
/// value of the position, key, before and after, the operation's name, then the metadata.
const POSITION: u32 = 0;
const OPERATION: u32 = 2;
const KEY: u32 = 3;
const BEFORE: u32 = 5;
const AFTER: u32 = 7;
const METADATA: u32 = 9;

/// The record from the parts `exportRecord` made of the returned one (and the structured
/// data it captured); the inner error is the script's fault.
fn build(
    parts: Array<'_>,
    capture: &Capture,
    metadata_text: &Persistent<Function<'static>>,
) -> rquickjs::Result<Result<Record, String>> {
    // Read first, as it always was (a name Rust cannot read fails the record right here).
    let operation: String = parts.get(OPERATION as usize)?;
    let position = match bytes(&parts, POSITION)? {
        Ok(position) => position.unwrap_or_default(),
        Err(error) => return Ok(Err(error)),
    };
    let mut sides = Vec::with_capacity(3);
    for (at, name) in [
        (KEY, "Key"),
        (BEFORE, "Payload.Before"),
        (AFTER, "Payload.After"),
    ] {
        match value(&parts, at, name, capture)? {
            Ok(data) => sides.push(data),
            Err(error) => return Ok(Err(error)),
        }
    }
    let after = sides.pop().flatten();
    let before = sides.pop().flatten();
    let key = sides.pop().flatten();
    let Some(operation) = operation_named(&operation) else {
        return Ok(Err(format!(
            "custom.javascript: could not unmarshal operation: unknown operation {operation:?}"
        )));
    };
    let metadata = match metadata_pairs(&parts)? {
        Some(metadata) => metadata,
        None => {
            // A string Rust cannot read (a lone surrogate): the JSON text, which serde_json
            // refuses with the message this record always failed with.
            let text: String = metadata_text.clone().restore(parts.ctx())?.call((parts,))?;
            match serde_json::from_str::<Metadata>(&text) {
                Ok(metadata) => metadata,
                Err(e) => return Ok(Err(format!("custom.javascript: Metadata: {e}"))),
            }
        }
    };
    Ok(Ok(Record {
        position: Position(position),
        operation,
        metadata,
        key,
        payload: Change { before, after },
    }))
}

/// An operation by the name the script gave (empty: the default, `create`).
fn operation_named(name: &str) -> Option<Operation> {
    match name {
        "" => Some(Operation::default()),
        "Operation(1)" => Some(Operation::Create),
        "Operation(2)" => Some(Operation::Update),
        "Operation(3)" => Some(Operation::Delete),
        "Operation(4)" => Some(Operation::Snapshot),
        name => Operation::parse(name),
    }
}

/// Bytes from the tag at `at` and the text after it: 0 none, 1 bytes as a Latin-1 string,
/// 2 text (its UTF-8).
fn bytes(parts: &Array<'_>, at: u32) -> rquickjs::Result<Result<Option<Vec<u8>>, String>> {
    let tag: i32 = parts.get(at as usize)?;
    let text = || parts.get::<String>(at as usize + 1);
    Ok(Ok(match tag {
        0 => None,
        1 => Some(text()?.chars().map(|c| c as u8).collect()),
        2 => Some(text()?.into_bytes()),
        _ => return Ok(Err("custom.javascript: unexpected value".to_owned())),
    }))
}

/// The metadata from the pairs of strings after [`METADATA`]; none if one of them is not
/// valid Unicode.
fn metadata_pairs(parts: &Array<'_>) -> rquickjs::Result<Option<Metadata>> {
    let end = parts.len();
    let mut pairs = Vec::with_capacity(end.saturating_sub(METADATA as usize) / 2);
    let mut i = METADATA as usize;
    while i + 1 < end {
        let key: rquickjs::String = parts.get(i)?;
        let value: rquickjs::String = parts.get(i + 1)?;
        match (key.to_string(), value.to_string()) {
            (Ok(key), Ok(value)) => pairs.push((key, value)),
            _ => return Ok(None),
        };
        i += 2;
    }
    // Sorted once (the last of a repeated key wins, as inserting one by one would).
    Ok(Some(pairs.into_iter().collect()))
}

/// Data from the tag at `at` and the value after it: as [`bytes`] (raw data), or 3 with the
/// slot of the structured data `capture` kept (none there: not a JSON object).
fn value(
    parts: &Array<'_>,
    at: u32,
    name: &str,
    capture: &Capture,
) -> rquickjs::Result<Result<Option<Data>, String>> {
    let tag: i32 = parts.get(at as usize)?;
    if tag != 3 {
        return Ok(bytes(parts, at)?.map(|raw| raw.map(Data::Raw)));
    }
    let slot: u32 = parts.get(at as usize + 1)?;
    Ok(match capture.take(slot as usize) {
        Some(map) => Ok(Some(Data::Structured(map.into()))),
        None => Err(format!(
            "custom.javascript: {name} must be raw data (RawData()), structured data (an \
             object) or null, and this object is not structured data as JSON"
        )),
    })
}

mod convert;
#[cfg(test)]
mod tests;
