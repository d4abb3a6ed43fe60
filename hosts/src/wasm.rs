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
//! standalone connectors use; outbound HTTP goes through `conduit.http_request`, which the
//! host serves under the processor's egress policy (see [`crate::egress`]; deny-all unless
//! the operator and the processor opt in). Its call blocks the module's thread, never an
//! async runtime's, for no longer than what is left of the command's time limit.
//!
//! Each processor instance runs its module on a thread of its own: the guest blocks in
//! `command_request` between commands, the engine sends a command and awaits the answer.
//! A module is compiled once, when it is discovered; instances are made from the compiled
//! module (with the host functions linked ahead of time).
//!
//! The sandbox: WASI with no preopened directories (no filesystem), no sockets (only the
//! host-mediated, policy-checked `http_request`), arguments
//! or environment beyond what Conduit passes (`CONDUIT_MAGIC_COOKIE`,
//! `CONDUIT_PROCESSOR_ID`, `CONDUIT_LOG_LEVEL`); a memory limit per instance; and a time
//! limit per command (epoch interruption: a module that does not answer in time is stopped
//! where it runs). A module that traps, exits, exceeds its memory or answers garbage fails
//! its pipeline with an error naming the processor and what happened, and its last stderr
//! lines; a record the module reports as failed goes to the pipeline's error path (the
//! DLQ) like any failed record. Nothing a module does can bring the server down.

use crate::connutils::Utilities;
use crate::egress;
use crate::pb;
use crate::standalone::{from_proto, leak, parameters, Boundary};
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
use std::time::{Duration, Instant};
use wasmtime::{AsContextMut, Caller, Engine, Extern, InstancePre, Linker, Module, Store};

/// The environment variable and value the SDK checks before it runs (Conduit's cookie).
pub const MAGIC_COOKIE: (&str, &str) = (
    "CONDUIT_MAGIC_COOKIE",
    "3stnegqd0x02axggy0vrc4izjeq2zik6g7somyb3ye4vy5iivvjm5s1edppl5oja",
);

/// Error codes a host function answers (the SDK's `pprocutils` codes: `MaxUint32 - iota`
/// in a Go constant block whose first entry is `ErrorCodeStart`, so the first code,
/// "no more commands", is `u32::MAX - 1`; the `http_request` codes are in
/// [`egress::code`]).
mod code {
    pub const NO_MORE_COMMANDS: u32 = u32::MAX - 1;
    pub const UNKNOWN_COMMAND_RESPONSE: u32 = u32::MAX - 3;
    pub const INTERNAL: u32 = u32::MAX - 5;
    pub const SUBJECT_NOT_FOUND: u32 = u32::MAX - 6;
    pub const VERSION_NOT_FOUND: u32 = u32::MAX - 7;
    pub const INVALID_SCHEMA: u32 = u32::MAX - 8;
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
    /// This instance's egress (`None`: deny-all).
    egress: Option<egress::Service>,
    /// An `http_request` answer that did not fit, with the request it answers.
    parked_http: Option<(Vec<u8>, Vec<u8>)>,
    /// How long the module may take per command.
    call_timeout: Duration,
    /// When the command being answered must be answered by.
    call_deadline: Option<Instant>,
    /// The processor's id (for the audit log).
    id: String,
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
            let deadline = Instant::now() + caller.data().call_timeout;
            caller.data_mut().call_deadline = Some(deadline);
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
    linker.func_wrap(
        "conduit",
        "http_request",
        |mut caller: Caller<'_, Guest>, ptr: u32, size: u32| -> wasmtime::Result<u32> {
            let (memory, start, end) = guest_range(&mut caller, "http_request", ptr, size)?;
            let request = memory.data(&caller)[start..end].to_vec();
            // A repeated call with a larger buffer asks again for the parked answer.
            let answer = match caller.data_mut().parked_http.take() {
                Some((asked, answer)) if request.starts_with(&asked) => answer,
                _ => match http_call(caller.data(), &request) {
                    Ok(answer) => answer,
                    Err(code) => return Ok(code),
                },
            };
            let length = u32::try_from(answer.len()).unwrap_or(code::INTERNAL);
            if answer.len() > end - start {
                caller.data_mut().parked_http = Some((request, answer));
                return Ok(length);
            }
            memory.data_mut(&mut caller)[start..start + answer.len()].copy_from_slice(&answer);
            Ok(length)
        },
    )?;
    Ok(linker)
}

/// An `http_request` call: the encoded response, or the SDK's error code. It may take no
/// longer than what is left of the current command's time limit.
fn http_call(guest: &Guest, request: &[u8]) -> Result<Vec<u8>, u32> {
    let Some(service) = &guest.egress else {
        tracing::warn!(
            processor = %guest.id,
            decision = "deny",
            reason = "egress_disabled",
            "egress call denied: egress is not enabled for this processor (the processor \
             setting {} and --processors.egress.enabled open it)",
            egress::KEY_ALLOW
        );
        return Err(egress::code::EGRESS_DISABLED);
    };
    let budget = guest.call_deadline.map_or(guest.call_timeout, |deadline| {
        deadline.saturating_duration_since(Instant::now())
    });
    service
        .handle(request, budget)
        .map_err(|failure| failure.code)
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
    /// Start an instance for processor `id`, with its effective egress policy.
    fn start(self: &Arc<Self>, id: &str, policy: egress::Policy) -> Result<Instance, WasmError> {
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
        let egress = if policy.enabled {
            Some(egress::Service::new(policy, id).map_err(|e| fail(format!("egress: {e}")))?)
        } else {
            None
        };
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
            egress,
            parked_http: None,
            call_timeout: self.limits.call_timeout,
            call_deadline: None,
            id: id.to_owned(),
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
/// `level`, `message`), keeping the last lines. Lines are cut at
/// [`crate::stderr::MAX_LINE`] bytes, bytes that are not UTF-8 are replaced, and at most
/// [`crate::stderr::LINES_PER_SECOND`] lines a second are logged (the rest are counted in
/// a warning), so whatever a module writes, the relay's memory stays bounded.
fn relay_stderr(mut reader: std::io::PipeReader, id: &str, tail: &Mutex<VecDeque<String>>) {
    use std::io::Read;
    let mut splitter = crate::stderr::LineSplitter::default();
    let mut limit = crate::stderr::RateLimit::default();
    let mut buffer = vec![0u8; 16 * 1024];
    let held_back = |count: u64| {
        tracing::warn!(
            processor = %id,
            held_back = count,
            "processor stderr: {count} line(s) not logged (more than {} a second)",
            crate::stderr::LINES_PER_SECOND
        );
    };
    let relay = |line: String, limit: &mut crate::stderr::RateLimit| {
        {
            let mut tail = tail.lock().expect("stderr lock");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        let verdict = limit.admit(Instant::now());
        if let Some(count) = verdict.held_back {
            held_back(count);
        }
        if !verdict.log {
            return;
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
    };
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        splitter.push(&buffer[..read], |line| relay(line, &mut limit));
    }
    if let Some(line) = splitter.finish() {
        relay(line, &mut limit);
    }
    if let Some(count) = limit.pending() {
        held_back(count);
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

/// A WASM processor plugin: its compiled module, the specification it gave and the
/// operator's egress ceiling.
pub struct WasmProcessorPlugin {
    compiled: Arc<Compiled>,
    spec: ProcessorSpecification,
    ceiling: egress::Policy,
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
        let mut instance = compiled.start("load-specification", egress::Policy::deny_all())?;
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
        let mut parameters: Vec<Parameter> = parameters(spec.parameters);
        // The host's own settings (read and removed before the module is configured).
        let ours = egress::parameters();
        parameters.retain(|p| !p.name.starts_with(egress::RESERVED_PREFIX));
        parameters.extend(ours);
        Ok(Self {
            compiled,
            ceiling: egress::Policy::deny_all(),
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

    /// With the operator's egress ceiling (`processors.egress.*`; the default is deny-all):
    /// a processor's own `sdk.egress.*` opt-in is clamped to it.
    pub fn with_egress(mut self, ceiling: egress::Policy) -> Self {
        self.ceiling = ceiling;
        self
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
        // The `sdk.egress.*` settings are the host's: read here, never sent to the module.
        let requested = egress::Policy::requested(|key| settings.get(key).map(String::as_str))
            .map_err(|(key, problem)| {
                PluginError::InvalidSettings(culvert_plugins::spec::InvalidSettings(vec![
                    culvert_plugins::spec::SettingError {
                        key: key.to_owned(),
                        problem,
                    },
                ]))
            })?;
        let (policy, dropped) = requested.resolve(&self.ceiling);
        if !dropped.is_empty() {
            let dropped: Vec<String> = dropped.iter().map(ToString::to_string).collect();
            tracing::warn!(
                plugin = %self.spec.full_name(),
                dropped = %dropped.join(", "),
                "egress allowlist entries dropped: outside the engine-level egress ceiling \
                 (--processors.egress.enabled / --processors.egress.allow)"
            );
        }
        let mut settings = settings.clone();
        egress::strip_reserved(&mut settings);
        Ok(Box::new(WasmProcessor {
            compiled: self.compiled.clone(),
            settings,
            egress: policy,
            id: String::new(),
            instance: None,
            boundary: Boundary::default(),
        }))
    }
}

/// A configured WASM processor: its instance starts at `open`.
struct WasmProcessor {
    compiled: Arc<Compiled>,
    settings: Settings,
    /// Its effective egress policy (its own opt-in within the ceiling).
    egress: egress::Policy,
    id: String,
    instance: Option<Instance>,
    /// Sends records as Conduit would (parts under a schema encoded).
    boundary: Boundary,
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
        let mut instance = self
            .compiled
            .start(id, self.egress.clone())
            .map_err(plugin_error)?;
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
            records: records.iter().map(|r| self.boundary.outgoing(r)).collect(),
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

/// Compile and load every `*.wasm` file in `dir` (not recursive), in name order, under the
/// operator's egress `ceiling`; a missing directory holds none. Files that fail are
/// returned with why.
pub async fn discover(
    dir: &Path,
    limits: Limits,
    ceiling: egress::Policy,
) -> (Vec<WasmProcessorPlugin>, Vec<WasmError>) {
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
            Ok(plugin) => plugins.push(plugin.with_egress(ceiling.clone())),
            Err(error) => errors.push(error),
        }
    }
    (plugins, errors)
}

#[cfg(test)]
mod tests;
