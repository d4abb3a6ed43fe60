//! Standalone processors: WASM modules built with Conduit's processor SDK
//! (`conduit-processor-sdk`, `GOOS=wasip1 GOARCH=wasm`), run unchanged with wasmtime.
//!
//! A module is a WASI preview 1 command. Its `_start` loops: it asks the host for the next
//! command through the host function `conduit.command_request(ptr, size) -> u32`, executes
//! it and hands back its answer through `conduit.command_response(ptr, size) -> u32`, until
//! the host answers "no more commands". Commands and answers are the `processor.v1`
//! protobuf messages (`proto/processor/v1`). When the next command does not fit the
//! guest's buffer, the host answers its size and keeps it for the next call (the guest
//! grows its buffer and asks again). Answers `>= u32::MAX - 100` are error codes. Schemas
//! go through `conduit.create_schema` / `conduit.get_schema`, to the same registry the
//! standalone connectors use.
//!
//! Each processor instance runs its module on a thread of its own: the guest blocks in
//! `command_request` between commands, the engine sends a command and awaits the answer.
//! A module is compiled once, when it is discovered; instances are made from the compiled
//! module (with the host functions linked ahead of time).
//!
//! The sandbox: WASI with no preopened directories (no filesystem), no sockets, arguments
//! or environment beyond what Conduit passes (`CONDUIT_MAGIC_COOKIE`,
//! `CONDUIT_PROCESSOR_ID`, `CONDUIT_LOG_LEVEL`); a memory limit per instance; and a time
//! limit per command (epoch interruption: a module that does not answer in time is stopped
//! where it runs). A module that traps, exits, exceeds its memory or answers garbage fails
//! its pipeline with an error naming the processor and what happened, and its last stderr
//! lines; a record the module reports as failed goes to the pipeline's error path (the
//! DLQ) like any failed record. Nothing a module does can bring the server down.

use crate::connutils::Utilities;
use crate::pb;
use crate::standalone::{from_proto, leak, parameters, to_proto};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::schema::SchemaError;
use culvert_plugins::spec::Parameter;
use culvert_plugins::PluginError;
use culvert_plugins::Settings;
use pb::processor::v1 as api;
use prost::Message;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{AsContextMut, Caller, Engine, Extern, InstancePre, Linker, Module, Store};

/// The environment variable and value the SDK checks before it runs (Conduit's cookie).
pub const MAGIC_COOKIE: (&str, &str) = (
    "CONDUIT_MAGIC_COOKIE",
    "3stnegqd0x02axggy0vrc4izjeq2zik6g7somyb3ye4vy5iivvjm5s1edppl5oja",
);

/// Error codes a host function answers (the SDK's `pprocutils` codes).
mod code {
    pub const NO_MORE_COMMANDS: u32 = u32::MAX;
    pub const UNKNOWN_COMMAND_RESPONSE: u32 = u32::MAX - 2;
    pub const INTERNAL: u32 = u32::MAX - 4;
    pub const SUBJECT_NOT_FOUND: u32 = u32::MAX - 5;
    pub const VERSION_NOT_FOUND: u32 = u32::MAX - 6;
    pub const INVALID_SCHEMA: u32 = u32::MAX - 7;
}

/// How often the epoch advances (the granularity of the time limit).
const TICK: Duration = Duration::from_millis(10);

/// How many of a module's last stderr lines are kept for error messages.
const STDERR_TAIL: usize = 20;

/// The sandbox's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
    /// How long a module may take to answer one command.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// What a module failed with.
#[derive(Debug, thiserror::Error)]
#[error("processor plugin {path}: {reason}{}", tail(.stderr))]
pub struct WasmError {
    /// The module's file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
    /// Its last stderr lines.
    pub stderr: Vec<String>,
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last stderr lines: {}", lines.join(" | "))
    }
}

/// The wasmtime engine shared by every module (epoch interruption on; a thread advances
/// the epoch every [`TICK`]).
fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(true);
            let engine = Engine::new(&config).map_err(|e| format!("wasmtime: {e}"))?;
            let ticking = engine.weak();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                })
                .map_err(|e| format!("wasmtime: cannot start the epoch thread: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// What an instance's thread holds: WASI, the limits, and its end of the exchange.
struct Guest {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    memory_limit: usize,
    /// Set when growing memory was refused (so the error says so).
    memory_refused: Option<usize>,
    deadline_ticks: u64,
    commands: std::sync::mpsc::Receiver<Vec<u8>>,
    /// A command that did not fit the guest's buffer yet.
    parked: Option<Vec<u8>>,
    answers: tokio::sync::mpsc::UnboundedSender<Result<api::CommandResponse, String>>,
    /// A schema answer that did not fit, with the request it answers.
    parked_schema: Option<(Vec<u8>, Vec<u8>)>,
}

impl wasmtime::ResourceLimiter for Guest {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_refused = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the module asked for {desired} bytes, the limit is {} \
                 (--processors.wasm.memory-limit)",
                self.memory_limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The guest's memory and the range `[ptr, ptr + size)` in it, or a trap saying why not.
fn guest_range(
    caller: &mut Caller<'_, Guest>,
    function: &str,
    ptr: u32,
    size: u32,
) -> wasmtime::Result<(wasmtime::Memory, usize, usize)> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Err(wasmtime::Error::msg(format!(
            "{function}: the module exports no memory named \"memory\""
        )));
    };
    let start = ptr as usize;
    let end = start + size as usize;
    let length = memory.data_size(&*caller);
    if end > length {
        return Err(wasmtime::Error::msg(format!(
            "{function}: the buffer at {start}..{end} is outside the module's memory \
             ({length} bytes)"
        )));
    }
    Ok((memory, start, end))
}

/// Link the host functions and WASI, ahead of instantiation.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<Guest>> {
    let mut linker: Linker<Guest> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |guest| &mut guest.wasi)?;
    linker.func_wrap(
        "conduit",
        "command_request",
        |mut caller: Caller<'_, Guest>, ptr: u32, size: u32| -> wasmtime::Result<u32> {
            let (memory, start, end) = guest_range(&mut caller, "command_request", ptr, size)?;
            let command = match caller.data_mut().parked.take() {
                Some(command) => command,
                // Blocks until the engine sends a command; closed: no more commands.
                None => match caller.data().commands.recv() {
                    Ok(command) => command,
                    Err(_) => return Ok(code::NO_MORE_COMMANDS),
                },
            };
            let length = u32::try_from(command.len())
                .map_err(|_| wasmtime::Error::msg("a command larger than 4 GiB"))?;
            if command.len() > end - start {
                caller.data_mut().parked = Some(command);
                return Ok(length);
            }
            memory.data_mut(&mut caller)[start..start + command.len()].copy_from_slice(&command);
            // The module has this long to answer.
            let ticks = caller.data().deadline_ticks;
            caller.as_context_mut().set_epoch_deadline(ticks);
            Ok(length)
        },
    )?;
    linker.func_wrap(
        "conduit",
        "command_response",
        |mut caller: Caller<'_, Guest>, ptr: u32, size: u32| -> wasmtime::Result<u32> {
            let (memory, start, end) = guest_range(&mut caller, "command_response", ptr, size)?;
            let answer = api::CommandResponse::decode(&memory.data(&caller)[start..end]);
            let (answer, code) = match answer {
                Ok(answer) => (Ok(answer), 0),
                Err(error) => (
                    Err(format!("its answer is not a command response: {error}")),
                    code::UNKNOWN_COMMAND_RESPONSE,
                ),
            };
            // The engine may be gone (the pipeline stopped): the answer is not needed then.
            let _ = caller.data().answers.send(answer);
            Ok(code)
        },
    )?;
    for function in ["create_schema", "get_schema"] {
        linker.func_wrap(
            "conduit",
            function,
            move |mut caller: Caller<'_, Guest>, ptr: u32, size: u32| -> wasmtime::Result<u32> {
                let (memory, start, end) = guest_range(&mut caller, function, ptr, size)?;
                let request = memory.data(&caller)[start..end].to_vec();
                // A repeated call with a larger buffer asks again for the parked answer.
                let answer = match caller.data_mut().parked_schema.take() {
                    Some((asked, answer)) if request.starts_with(&asked) => answer,
                    _ => match schema_call(function, &request) {
                        Ok(answer) => answer,
                        Err(code) => return Ok(code),
                    },
                };
                let length = u32::try_from(answer.len()).unwrap_or(code::INTERNAL);
                if answer.len() > end - start {
                    caller.data_mut().parked_schema = Some((request, answer));
                    return Ok(length);
                }
                memory.data_mut(&mut caller)[start..start + answer.len()].copy_from_slice(&answer);
                Ok(length)
            },
        )?;
    }
    Ok(linker)
}

/// A schema call against the registry the connectors use (the request and answer messages
/// have the connector utilities' layout).
fn schema_call(function: &str, request: &[u8]) -> Result<Vec<u8>, u32> {
    use pb::connutils::v1 as utils;
    let utilities = Utilities::get().map_err(|_| code::INTERNAL)?;
    let result = if function == "create_schema" {
        let request = utils::CreateSchemaRequest::decode(request).map_err(|_| code::INTERNAL)?;
        utilities
            .create_schema(&request.subject, request.r#type, &request.bytes)
            .map(|schema| {
                utils::CreateSchemaResponse {
                    schema: Some(schema),
                }
                .encode_to_vec()
            })
    } else {
        let request = utils::GetSchemaRequest::decode(request).map_err(|_| code::INTERNAL)?;
        utilities
            .get_schema(&request.subject, request.version)
            .map(|schema| {
                utils::GetSchemaResponse {
                    schema: Some(schema),
                }
                .encode_to_vec()
            })
    };
    result.map_err(|error| match error {
        SchemaError::SubjectNotFound => code::SUBJECT_NOT_FOUND,
        SchemaError::VersionNotFound => code::VERSION_NOT_FOUND,
        SchemaError::InvalidSchema(_) => code::INVALID_SCHEMA,
        SchemaError::IdNotFound(_) | SchemaError::Unavailable(_) => {
            tracing::warn!(%error, "a WASM processor's schema call failed");
            code::INTERNAL
        }
    })
}

/// A compiled module with its host functions linked.
struct Compiled {
    path: PathBuf,
    pre: InstancePre<Guest>,
    limits: Limits,
}

/// A running instance of a module: its thread, and the engine's end of the exchange.
struct Instance {
    path: String,
    commands: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// The module's answers; when it ends, a last `Err` says how.
    answers: tokio::sync::mpsc::UnboundedReceiver<Result<api::CommandResponse, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    call_timeout: Duration,
    /// Set once the instance failed: it takes no more commands.
    broken: bool,
}

impl Compiled {
    /// Start an instance for processor `id`.
    fn start(self: &Arc<Self>, id: &str) -> Result<Instance, WasmError> {
        let display = self.path.display().to_string();
        let fail = |reason: String| WasmError {
            path: display.clone(),
            reason,
            stderr: vec![],
        };
        let (reader, writer) = std::io::pipe().map_err(|e| fail(format!("no stderr pipe: {e}")))?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let relay_tail = stderr.clone();
        let relay_id = id.to_owned();
        let relay = std::thread::Builder::new()
            .name("wasm-stderr".into())
            .spawn(move || relay_stderr(reader, &relay_id, &relay_tail))
            .map_err(|e| fail(format!("no stderr thread: {e}")))?;
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .env(MAGIC_COOKIE.0, MAGIC_COOKIE.1)
            .env("CONDUIT_PROCESSOR_ID", id)
            .env("CONDUIT_LOG_LEVEL", "info")
            .stderr(wasmtime_wasi::cli::OutputFile::new(std::fs::File::from(
                std::os::fd::OwnedFd::from(writer),
            )))
            .build_p1();
        let (commands_tx, commands) = std::sync::mpsc::sync_channel(1);
        let (answers_tx, answers) = tokio::sync::mpsc::unbounded_channel();
        let last_word = answers_tx.clone();
        let ticks = self
            .limits
            .call_timeout
            .as_millis()
            .div_ceil(TICK.as_millis()) as u64;
        let guest = Guest {
            wasi,
            memory_limit: self.limits.memory_bytes,
            memory_refused: None,
            deadline_ticks: ticks.max(1),
            commands,
            parked: None,
            answers: answers_tx,
            parked_schema: None,
        };
        let compiled = self.clone();
        std::thread::Builder::new()
            .name(format!("wasm-{id}"))
            .spawn(move || {
                let how = compiled.run(guest);
                // The relay ends when the module's stderr closes (with the store), so the
                // error below carries its last lines.
                let _ = relay.join();
                let _ = last_word.send(Err(format!("the module ended: {how}")));
            })
            .map_err(|e| fail(format!("no thread for the module: {e}")))?;
        Ok(Instance {
            path: display,
            commands: Some(commands_tx),
            answers,
            stderr,
            call_timeout: self.limits.call_timeout,
            broken: false,
        })
    }

    /// Instantiate and run `_start` to its end; how it ended.
    fn run(&self, guest: Guest) -> String {
        let timeout = self.limits.call_timeout;
        let engine = self.pre.module().engine().clone();
        let ticks = guest.deadline_ticks;
        let mut store = Store::new(&engine, guest);
        store.limiter(|guest| guest as &mut dyn wasmtime::ResourceLimiter);
        store.set_epoch_deadline(ticks);
        let how = match self.pre.instantiate(&mut store) {
            Err(error) => format!("cannot instantiate it: {error:#}"),
            Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Err(_) => {
                    "it exports no _start function (it is not a WASI command module)".to_owned()
                }
                Ok(start) => match start.call(&mut store, ()) {
                    Ok(()) => "it returned".to_owned(),
                    Err(error) => describe(&error, timeout, store.data().memory_refused),
                },
            },
        };
        how
    }
}

/// How a module's run ended, in words.
fn describe(error: &wasmtime::Error, timeout: Duration, refused: Option<usize>) -> String {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return if exit.0 == 0 {
            "it exited".to_owned()
        } else {
            format!("it exited with code {}", exit.0)
        };
    }
    if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
        return format!(
            "it did not answer within {} s and was stopped (--processors.wasm.call-timeout)",
            timeout.as_secs_f64()
        );
    }
    if refused.is_some() {
        // The limiter's message is in the chain.
        return format!("{error:#}");
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("it trapped: {trap}"),
        None => format!("it failed: {error:#}"),
    }
}

/// Relay a module's stderr to our logs (JSON lines as the SDK's logger writes them:
/// `level`, `message`), keeping the last lines.
fn relay_stderr(reader: std::io::PipeReader, id: &str, tail: &Mutex<VecDeque<String>>) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        {
            let mut tail = tail.lock().expect("stderr lock");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
        let level = parsed
            .as_ref()
            .and_then(|v| v["level"].as_str())
            .unwrap_or("info")
            .to_owned();
        let message = parsed
            .as_ref()
            .and_then(|v| v["message"].as_str())
            .unwrap_or(&line)
            .to_owned();
        match level.as_str() {
            "error" | "fatal" | "panic" => tracing::error!(processor = %id, "{message}"),
            "warn" => tracing::warn!(processor = %id, "{message}"),
            "info" => tracing::info!(processor = %id, "{message}"),
            _ => tracing::debug!(processor = %id, "{message}"),
        }
    }
}

impl Instance {
    /// Send a command and wait for the answer.
    async fn call(
        &mut self,
        request: api::command_request::Request,
    ) -> Result<api::command_response::Response, WasmError> {
        if self.broken {
            return Err(self.error("it failed earlier and takes no more commands".into()));
        }
        let bytes = api::CommandRequest {
            request: Some(request),
        }
        .encode_to_vec();
        let sent = self
            .commands
            .as_ref()
            .map(|commands| commands.try_send(bytes).is_ok())
            .unwrap_or(false);
        let answer = if sent {
            // The epoch stops a module that computes too long; this bounds one that is
            // blocked outside WASM (e.g. sleeping in WASI).
            tokio::time::timeout(
                self.call_timeout + Duration::from_secs(1),
                self.answers.recv(),
            )
            .await
        } else {
            // The module is gone (it exited or trapped between commands): its thread's
            // last word says how.
            Ok(
                tokio::time::timeout(Duration::from_secs(1), self.answers.recv())
                    .await
                    .ok()
                    .flatten(),
            )
        };
        let failure = match answer {
            Ok(Some(Ok(api::CommandResponse {
                response: Some(api::command_response::Response::Error(error)),
            }))) => Some(error.message),
            Ok(Some(Ok(api::CommandResponse {
                response: Some(response),
            }))) => return Ok(response),
            Ok(Some(Ok(api::CommandResponse { response: None }))) => {
                Some("it answered an empty command response".into())
            }
            Ok(Some(Err(reason))) => Some(reason),
            Ok(None) => Some("the module ended".into()),
            Err(_) => Some(format!(
                "it did not answer within {} s (--processors.wasm.call-timeout)",
                self.call_timeout.as_secs_f64()
            )),
        };
        self.broken = true;
        Err(self.error(failure.unwrap_or_default()))
    }

    fn error(&self, reason: String) -> WasmError {
        WasmError {
            path: self.path.clone(),
            reason,
            stderr: self
                .stderr
                .lock()
                .expect("stderr lock")
                .iter()
                .cloned()
                .collect(),
        }
    }

    /// Ask the module to tear down and let it end (no more commands).
    fn close(&mut self) {
        if let Some(commands) = self.commands.take() {
            if !self.broken {
                let teardown = api::CommandRequest {
                    request: Some(api::command_request::Request::Teardown(
                        api::teardown::Request {},
                    )),
                };
                let _ = commands.try_send(teardown.encode_to_vec());
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.close();
    }
}

/// A WASM processor plugin: its compiled module and the specification it gave.
pub struct WasmProcessorPlugin {
    compiled: Arc<Compiled>,
    spec: ProcessorSpecification,
}

impl WasmProcessorPlugin {
    /// Compile the module at `path`, run it once for its specification.
    pub async fn load(path: &Path, limits: Limits) -> Result<Self, WasmError> {
        let display = path.display().to_string();
        let fail = |reason: String| WasmError {
            path: display.clone(),
            reason,
            stderr: vec![],
        };
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        let engine = engine().map_err(fail)?;
        let compile_path = display.clone();
        let pre = tokio::task::spawn_blocking(move || -> Result<InstancePre<Guest>, String> {
            let module = Module::new(engine, &bytes)
                .map_err(|e| format!("not a WASM module wasmtime can compile: {e:#}"))?;
            linker(engine)
                .and_then(|linker| linker.instantiate_pre(&module))
                .map_err(|e| format!("its imports cannot be satisfied: {e:#}"))
        })
        .await
        .map_err(|e| fail(format!("compiling {compile_path} failed: {e}")))?
        .map_err(fail)?;
        let compiled = Arc::new(Compiled {
            path: path.to_owned(),
            pre,
            limits,
        });
        let mut instance = compiled.start("load-specification")?;
        let answer = instance
            .call(api::command_request::Request::Specify(
                api::specify::Request {},
            ))
            .await;
        instance.close();
        let spec = match answer? {
            api::command_response::Response::Specify(spec) => spec,
            other => {
                return Err(fail(format!(
                    "it answered Specify with {}",
                    response_name(&other)
                )))
            }
        };
        if spec.name.is_empty() {
            return Err(fail("its specification has no name".into()));
        }
        let parameters: Vec<Parameter> = parameters(spec.parameters);
        Ok(Self {
            compiled,
            spec: ProcessorSpecification {
                name: leak(spec.name),
                summary: leak(spec.summary),
                description: leak(spec.description),
                version: leak(spec.version),
                author: leak(spec.author),
                parameters,
                standalone: true,
            },
        })
    }

    /// The module's file.
    pub fn path(&self) -> &Path {
        &self.compiled.path
    }
}

fn response_name(response: &api::command_response::Response) -> &'static str {
    use api::command_response::Response as R;
    match response {
        R::Error(_) => "an error",
        R::Specify(_) => "a specification",
        R::Configure(_) => "a Configure answer",
        R::Open(_) => "an Open answer",
        R::Process(_) => "processed records",
        R::Teardown(_) => "a Teardown answer",
    }
}

impl ProcessorPlugin for WasmProcessorPlugin {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        Ok(Box::new(WasmProcessor {
            compiled: self.compiled.clone(),
            settings: settings.clone(),
            id: String::new(),
            instance: None,
        }))
    }
}

/// A configured WASM processor: its instance starts at `open`.
struct WasmProcessor {
    compiled: Arc<Compiled>,
    settings: Settings,
    id: String,
    instance: Option<Instance>,
}

fn plugin_error(error: WasmError) -> PluginError {
    PluginError::Other(error.to_string())
}

#[async_trait::async_trait]
impl Processor for WasmProcessor {
    fn identify(&mut self, id: &str) {
        self.id = id.to_owned();
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        let id = if self.id.is_empty() {
            "processor"
        } else {
            &self.id
        };
        let mut instance = self.compiled.start(id).map_err(plugin_error)?;
        let configure = api::command_request::Request::Configure(api::configure::Request {
            parameters: self.settings.clone().into_iter().collect(),
        });
        for request in [
            configure,
            api::command_request::Request::Open(api::open::Request {}),
        ] {
            instance.call(request).await.map_err(plugin_error)?;
        }
        self.instance = Some(instance);
        Ok(())
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        let instance = self
            .instance
            .as_mut()
            .ok_or_else(|| PluginError::Other("process before open".into()))?;
        let request = api::command_request::Request::Process(api::process::Request {
            records: records.iter().map(to_proto).collect(),
        });
        let processed = match instance.call(request).await.map_err(plugin_error)? {
            api::command_response::Response::Process(processed) => processed.records,
            other => {
                return Err(plugin_error(instance.error(format!(
                    "it answered Process with {}",
                    response_name(&other)
                ))))
            }
        };
        if processed.len() != records.len() {
            return Err(plugin_error(instance.error(format!(
                "it answered {} records for the {} it was sent",
                processed.len(),
                records.len()
            ))));
        }
        use api::process::processed_record::Record as Processed;
        for ((record, outcome), processed) in
            records.iter_mut().zip(outcomes.iter_mut()).zip(processed)
        {
            match processed.record {
                Some(Processed::SingleRecord(changed)) => {
                    *record = from_proto(changed).map_err(|reason| {
                        plugin_error(
                            instance.error(format!("it answered an invalid record: {reason}")),
                        )
                    })?;
                }
                Some(Processed::FilterRecord(_)) => *outcome = Outcome::Drop,
                Some(Processed::ErrorRecord(failed)) => {
                    *outcome = Outcome::Fail(
                        failed
                            .error
                            .map(|e| e.message)
                            .unwrap_or_else(|| "the processor failed the record".into()),
                    )
                }
                Some(Processed::MultiRecord(many)) => {
                    // Several records in this one's place (the engine acks the original once
                    // every one of them is handled).
                    let copies = many
                        .records
                        .into_iter()
                        .map(from_proto)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|reason| {
                            plugin_error(
                                instance.error(format!("it answered an invalid record: {reason}")),
                            )
                        })?;
                    *outcome = Outcome::Split(copies);
                }
                None => {
                    return Err(plugin_error(
                        instance.error("it answered an empty processed record".into()),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Compile and load every `*.wasm` file in `dir` (not recursive), in name order; a missing
/// directory holds none. Files that fail are returned with why.
pub async fn discover(dir: &Path, limits: Limits) -> (Vec<WasmProcessorPlugin>, Vec<WasmError>) {
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (plugins, errors);
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    for path in paths {
        // Compiling a module built with Go takes seconds: say what the start waits for.
        tracing::info!(path = %path.display(), "compiling a WASM processor");
        let started = std::time::Instant::now();
        let loaded = WasmProcessorPlugin::load(&path, limits).await;
        tracing::debug!(path = %path.display(), ms = started.elapsed().as_millis() as u64, "WASM processor compiled");
        match loaded {
            Ok(plugin) => plugins.push(plugin),
            Err(error) => errors.push(error),
        }
    }
    (plugins, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module that speaks the command exchange with canned answers: a specification
    /// named `scripted`, empty Configure/Open/Teardown answers, and `process` (WAT
    /// instructions) for Process commands.
    fn scripted(process: &str) -> String {
        format!(
            r#"(module
  (import "conduit" "command_request" (func $request (param i32 i32) (result i32)))
  (import "conduit" "command_response" (func $respond (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; CommandResponse{{specify: {{name: "scripted"}}}}
  (data (i32.const 1024) "\12\0a\0a\08scripted")
  (data (i32.const 1100) "\1a\00")  ;; configure
  (data (i32.const 1110) "\22\00")  ;; open
  (data (i32.const 1120) "\32\00")  ;; teardown
  ;; CommandResponse{{process: {{records: [{{filter_record: {{}}}}]}}}}
  (data (i32.const 1130) "\2a\04\0a\02\12\00")
  (data (i32.const 1200) "\ff\ff\ff\ff")
  ;; CommandResponse{{process: {{records: [{{multi_record: {{records: [
  ;;   {{position: "a", operation: create}}, {{position: "b", operation: create}}]}}}}]}}}}
  (data (i32.const 1300) "\2a\12\0a\10\22\0e\0a\05\0a\01a\10\01\0a\05\0a\01b\10\01")
  (func (export "_start")
    (local $n i32)
    (loop $next
      (local.set $n (call $request (i32.const 4096) (i32.const 60000)))
      ;; error codes (no more commands): done
      (if (i32.ge_u (local.get $n) (i32.const 0xffffff9b)) (then (return)))
      (block $done
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x0a))
          (then (drop (call $respond (i32.const 1024) (i32.const 12))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x12))
          (then (drop (call $respond (i32.const 1100) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x1a))
          (then (drop (call $respond (i32.const 1110) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x2a))
          (then (drop (call $respond (i32.const 1120) (i32.const 2))) (br $done)))
        {process}
      )
      (br $next)))
)"#
        )
    }

    fn limits() -> Limits {
        Limits {
            memory_bytes: 8 << 20,
            call_timeout: Duration::from_millis(300),
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn record() -> Record {
        Record {
            position: culvert_domain::Position(b"1".to_vec()),
            ..Record::default()
        }
    }

    /// Load `module`, open a processor of it and process one record.
    async fn process_one(module: &str) -> Result<Outcome, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "m.wasm", module);
        let plugin = WasmProcessorPlugin::load(&path, limits())
            .await
            .map_err(|e| e.to_string())?;
        let mut processor = plugin.configure(&Settings::new()).unwrap();
        processor.identify("p1");
        processor.open().await.map_err(|e| e.to_string())?;
        let mut records = vec![record()];
        let mut outcomes = vec![Outcome::Keep];
        processor
            .process(&mut records, &mut outcomes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(outcomes.remove(0))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_module_is_specified_configured_and_processes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "m.wasm",
            &scripted("(drop (call $respond (i32.const 1130) (i32.const 6)))"),
        );
        let plugin = WasmProcessorPlugin::load(&path, limits()).await.unwrap();
        assert_eq!(plugin.specification().full_name(), "standalone:scripted@");
        let outcome = process_one(&scripted(
            "(drop (call $respond (i32.const 1130) (i32.const 6)))",
        ))
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Drop);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_records_made_of_one_take_its_place() {
        let outcome = process_one(&scripted(
            "(drop (call $respond (i32.const 1300) (i32.const 20)))",
        ))
        .await
        .unwrap();
        let Outcome::Split(copies) = outcome else {
            panic!("{outcome:?}")
        };
        let positions: Vec<&[u8]> = copies.iter().map(|r| r.position.0.as_slice()).collect();
        assert_eq!(positions, [&b"a"[..], &b"b"[..]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_loop_is_stopped_at_the_time_limit() {
        let error = process_one(&scripted("(loop $spin (br $spin))"))
            .await
            .unwrap_err();
        assert!(error.contains("did not answer within 0.3 s"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_memory_bomb_is_stopped_at_the_memory_limit() {
        let error = process_one(&scripted(
            "(loop $grow (drop (memory.grow (i32.const 16))) (br $grow))",
        ))
        .await
        .unwrap_err();
        assert!(error.contains("memory limit exceeded"), "{error}");
        assert!(error.contains("the limit is 8388608"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_module_that_ends_says_how() {
        let error = process_one(&scripted("(return)")).await.unwrap_err();
        assert!(error.contains("the module ended: it returned"), "{error}");
        let error = process_one(&scripted("(unreachable)")).await.unwrap_err();
        assert!(error.contains("the module ended: it trapped"), "{error}");
        assert!(error.contains("unreachable"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_answer_bytes_fail_the_processor() {
        let error = process_one(&scripted(
            "(drop (call $respond (i32.const 1200) (i32.const 4)))",
        ))
        .await
        .unwrap_err();
        assert!(error.contains("not a command response"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn out_of_range_pointers_stop_the_module() {
        let error = process_one(&scripted(
            "(drop (call $respond (i32.const 0xfffffff0) (i32.const 1000)))",
        ))
        .await
        .unwrap_err();
        assert!(error.contains("outside the module's memory"), "{error}");
        let error = process_one(&scripted(
            "(drop (call $request (i32.const 131000) (i32.const 60000)))",
        ))
        .await
        .unwrap_err();
        assert!(error.contains("command_request"), "{error}");
        assert!(error.contains("outside the module's memory"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn modules_missing_exports_or_imports_are_refused_at_load() {
        let no_start = scripted("").replace("(export \"_start\")", "");
        let error = process_one(&no_start).await.unwrap_err();
        assert!(error.contains("exports no _start function"), "{error}");
        let no_memory = scripted("").replace("(memory (export \"memory\") 2)", "(memory 2)");
        let error = process_one(&no_memory).await.unwrap_err();
        assert!(error.contains("exports no memory"), "{error}");
        let unknown_import = scripted("").replace(
            "(import \"conduit\" \"command_response\"",
            "(import \"conduit\" \"launch_missiles\"",
        );
        let error = process_one(&unknown_import).await.unwrap_err();
        assert!(error.contains("imports cannot be satisfied"), "{error}");
        let error = process_one("not wasm at all").await.unwrap_err();
        assert!(error.contains("not a WASM module"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_commands_are_parked_until_the_buffer_fits() {
        // A guest with a 16-byte buffer: the host answers the size, the guest asks again
        // with a buffer that fits (as the SDK does).
        let module = scripted("(drop (call $respond (i32.const 1130) (i32.const 6)))").replace(
            "(local.set $n (call $request (i32.const 4096) (i32.const 60000)))",
            "(local.set $n (call $request (i32.const 4096) (i32.const 16)))
      (if (i32.and (i32.gt_u (local.get $n) (i32.const 16))
                   (i32.lt_u (local.get $n) (i32.const 0xffffff9b)))
        (then (local.set $n (call $request (i32.const 4096) (local.get $n)))))",
        );
        let mut big = record();
        big.metadata.insert("pad".into(), "x".repeat(1000));
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "m.wasm", &module);
        let plugin = WasmProcessorPlugin::load(&path, limits()).await.unwrap();
        let mut processor = plugin.configure(&Settings::new()).unwrap();
        processor.open().await.unwrap();
        let mut records = vec![big];
        let mut outcomes = vec![Outcome::Keep];
        processor
            .process(&mut records, &mut outcomes)
            .await
            .unwrap();
        assert_eq!(outcomes, [Outcome::Drop]);
    }
}
