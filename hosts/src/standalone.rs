//! Standalone connector plugins: Conduit's Go connectors, run unchanged as separate
//! processes spoken to over gRPC (conduit-connector-protocol, version 2, over
//! hashicorp/go-plugin's transport).
//!
//! What is here: launching a plugin binary with the environment Conduit gives it, reading
//! its handshake line, connecting to its gRPC server on the unix socket it names, relaying
//! its stderr to our logs (keeping the last lines for error messages), asking it for its
//! specification, and shutting it down (the controller's Shutdown, then SIGKILL after 2 s).
//! [`StandalonePlugin`] makes sources and destinations that run the plugin for the
//! pipeline: Configure, Open (a source with its persisted position), the Run stream (acks
//! in the order records were produced; a destination's acks checked against what it was
//! sent, an ack with an error failing the write), Stop and Teardown, then the process is
//! shut down.

use crate::connutils::Utilities;
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, Lifecycle, PluginError, Prepare, Settings, Source, Specification,
    IDLE_READ,
};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_processors::schema_codec::SchemaCodec;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

pub use crate::pb;

/// The environment variable and value go-plugin checks before serving (Conduit's cookie).
pub const MAGIC_COOKIE: (&str, &str) = (
    "CONDUIT_PLUGIN_MAGIC_COOKIE",
    "204e8e812c3a1bb73b838928c575b42a105dd2e9aa449be481bc4590486df53f",
);

/// How long a plugin may take to print its handshake (go-plugin's default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP/2 flow-control window of one call to a plugin (bytes).
const STREAM_WINDOW: u32 = 256 * 1024;
/// The HTTP/2 flow-control window of the connection to a plugin (bytes).
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// How many of a plugin's last stderr lines are kept for error messages.
const STDERR_TAIL: usize = 20;

/// Why a plugin could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The binary could not be started.
    #[error("plugin {path}: cannot start it: {source}")]
    Spawn {
        /// The binary.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The handshake line was missing, late or malformed.
    #[error("plugin {path}: bad handshake: {reason}{}", stderr_suffix(.stderr))]
    Handshake {
        /// The binary.
        path: String,
        /// What was wrong.
        reason: String,
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
    /// The gRPC connection or a call failed.
    #[error("plugin {path}: {reason}{}", stderr_suffix(.stderr))]
    Rpc {
        /// The binary.
        path: String,
        /// What failed.
        reason: String,
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
}

fn stderr_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last stderr lines: {}", lines.join(" | "))
    }
}

/// The parts of go-plugin's handshake line Culvert uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The negotiated connector protocol version.
    pub protocol_version: u32,
    /// The unix socket the plugin serves on.
    pub socket: PathBuf,
}

/// Parse `CORE|APPVER|NETWORK|ADDRESS|PROTOCOL[|...]`.
pub fn parse_handshake(line: &str) -> Result<Handshake, String> {
    let fields: Vec<&str> = line.trim().split('|').collect();
    if fields.len() < 4 {
        return Err(format!("unrecognized plugin message {line:?}"));
    }
    if fields[0] != "1" {
        return Err(format!("go-plugin core protocol {:?}, want 1", fields[0]));
    }
    let version: u32 = fields[1]
        .parse()
        .map_err(|_| format!("protocol version {:?} is not a number", fields[1]))?;
    if version != 2 {
        return Err(format!("connector protocol version {version}, want 2"));
    }
    if fields[2] != "unix" {
        return Err(format!("network {:?}, want unix", fields[2]));
    }
    let protocol = fields.get(4).copied().unwrap_or("netrpc");
    if protocol != "grpc" {
        return Err(format!("protocol {protocol:?}, want grpc"));
    }
    Ok(Handshake {
        protocol_version: version,
        socket: PathBuf::from(fields[3]),
    })
}

/// A running plugin process and its gRPC connection.
pub struct PluginProcess {
    path: String,
    child: tokio::process::Child,
    channel: tonic::transport::Channel,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The task relaying stderr (ends when the plugin's stderr closes).
    relay: Option<tokio::task::JoinHandle<()>>,
    /// The secret values of the settings it was given ([`PluginProcess::hide_secrets`]):
    /// never repeated in a log line or an error, whatever the plugin echoes.
    hidden: Hidden,
    /// Its connector-utilities token, withdrawn when the process is dropped.
    _token: Token,
}

/// Secret setting values a plugin's output must not repeat (shared with the stderr relay).
type Hidden = Arc<Mutex<Vec<String>>>;

/// The shortest secret hidden in a plugin's output: a shorter one would mangle every
/// message it occurs in (and is no real secret).
const MIN_HIDDEN: usize = 4;

/// `text` with every hidden value replaced by `***`.
fn scrub(hidden: &Hidden, text: &str) -> String {
    let hidden = hidden.lock().expect("hidden lock");
    let mut text = text.to_owned();
    for value in hidden.iter() {
        if text.contains(value.as_str()) {
            text = text.replace(value.as_str(), "***");
        }
    }
    text
}

/// The values of `settings` a plugin's output must not repeat: those of sensitive settings
/// (by Conduit's rules for plugins whose specification marks nothing), and the password of
/// a URL with user information.
fn secret_values<'a>(settings: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    let mut values = Vec::new();
    for (key, value) in settings {
        if !culvert_secrets::sensitive::is_sensitive(culvert_secrets::Marked::Unknown, key, value) {
            continue;
        }
        values.push(value.clone());
        // `scheme://user:password@host`: the password alone, too.
        if let Some((_, rest)) = value.split_once("://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    values.push(password.to_owned());
                }
            }
        }
    }
    values.retain(|v| v.len() >= MIN_HIDDEN);
    // Longest first, so a value that contains another is hidden whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// A plugin's connector-utilities token; withdrawn when dropped.
struct Token {
    value: String,
    utilities: Option<Arc<Utilities>>,
}

impl Token {
    fn issue(connector_id: &str) -> Self {
        let value = format!(
            "{{\"value\":\"{}\",\"connector_id\":\"{}\"}}",
            uuid::Uuid::new_v4(),
            connector_id.replace(['"', '\\'], "")
        );
        let utilities = match Utilities::get() {
            Ok(utilities) => {
                utilities.register(&value);
                Some(utilities)
            }
            Err(error) => {
                tracing::warn!(%error, "standalone plugins get no schema service");
                None
            }
        };
        Self { value, utilities }
    }

    /// Where the plugin reaches the utilities (an address that refuses, without them).
    fn target(&self) -> String {
        self.utilities
            .as_ref()
            .map(|u| u.address().to_string())
            .unwrap_or_else(|| "127.0.0.1:1".into())
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some(utilities) = &self.utilities {
            utilities.withdraw(&self.value);
        }
    }
}

/// Ask the kernel to kill the calling (child) process when the thread that spawned it
/// ends, so a plugin never outlives a Culvert that was killed. Runs between fork and exec.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
    // getppid(2), both async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then we were reparented.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other(
                    "the host exited while starting the plugin",
                ));
            }
            Ok(())
        });
    }
}

/// What a plugin process is launched for.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The connector id it serves (Conduit uses `load-specifications` to read a spec).
    pub connector_id: String,
    /// Its log level (`trace`, `debug`, `info`, `warn`, `error`).
    pub log_level: String,
    /// The largest record it may receive, in bytes.
    pub max_receive_record_size: usize,
    /// How long it may take to print its handshake.
    pub handshake_timeout: Duration,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            connector_id: "load-specifications".into(),
            log_level: "info".into(),
            max_receive_record_size: 4 << 20,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

impl PluginProcess {
    /// Start the plugin binary at `path` with Conduit's environment, read its handshake
    /// and connect to it.
    pub async fn launch(path: &Path, launch: &Launch) -> Result<Self, HostError> {
        let display = path.display().to_string();
        let token = Token::issue(&launch.connector_id);
        let mut command = tokio::process::Command::new(path);
        die_with_parent(&mut command);
        let spawned = command
            .env(MAGIC_COOKIE.0, MAGIC_COOKIE.1)
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", token.target())
            .env("CONDUIT_CONNECTOR_TOKEN", &token.value)
            .env("CONDUIT_CONNECTOR_ID", &launch.connector_id)
            .env("CONDUIT_CONNECTOR_LOG_LEVEL", &launch.log_level)
            .env(
                "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE",
                launch.max_receive_record_size.to_string(),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = spawned.map_err(|source| HostError::Spawn {
            path: display.clone(),
            source,
        })?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let hidden = Hidden::default();
        let relay = child.stderr.take().map(|err| {
            tokio::spawn(relay_stderr(
                err,
                display.clone(),
                launch.connector_id.clone(),
                stderr.clone(),
                hidden.clone(),
            ))
        });
        let tail = |stderr: &Arc<Mutex<VecDeque<String>>>| -> Vec<String> {
            stderr
                .lock()
                .expect("stderr lock")
                .iter()
                .cloned()
                .collect()
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(launch.handshake_timeout, lines.next_line()).await;
        let line = match first {
            Err(_) => Err("no handshake in time".to_owned()),
            Ok(Err(e)) => Err(format!("reading its output: {e}")),
            Ok(Ok(None)) => Err("the plugin exited before the handshake".to_owned()),
            Ok(Ok(Some(line))) => Ok(line),
        };
        let handshake = match line.and_then(|l| parse_handshake(&l)) {
            Ok(handshake) => handshake,
            Err(reason) => {
                // Let the stderr relay read what a failing plugin wrote before it exited.
                let exited = match child.try_wait() {
                    Ok(Some(status)) if !status.success() => Some(status),
                    _ => None,
                };
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
                if let Some(relay) = relay {
                    let _ = tokio::time::timeout(Duration::from_secs(1), relay).await;
                }
                let reason = match exited {
                    Some(status) => format!("{reason} ({status})"),
                    None => reason,
                };
                return Err(HostError::Handshake {
                    path: display.clone(),
                    reason,
                    stderr: tail(&stderr),
                });
            }
        };
        // Keep draining stdout, or a chatty plugin blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let socket = handshake.socket.clone();
        let channel = tonic::transport::Endpoint::try_from("http://plugin.invalid")
            .expect("a valid placeholder URI")
            .connect_timeout(Duration::from_secs(10))
            // A plugin sends one small DATA frame per record. h2 closes a connection whose
            // unread small frames exceed a budget of half the connection window; a stream
            // window far below that keeps a source that runs ahead of the pipeline within
            // it (flow control then holds the plugin back).
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| HostError::Rpc {
                path: display.clone(),
                reason: format!("connecting to {}: {e}", handshake.socket.display()),
                stderr: tail(&stderr),
            })?;
        // What the plugin writes to os.Stdout and os.Stderr once it serves, go-plugin
        // carries over its GRPCStdio service (its pipes replace the process's): read it and
        // log it as the process's stderr is. Unread it is lost, and once go-plugin's buffer
        // is full a chatty plugin's writes block.
        let (stdio_in, stdio_out) = tokio::io::duplex(64 * 1024);
        tokio::spawn(relay_stderr(
            stdio_out,
            display.clone(),
            launch.connector_id.clone(),
            stderr.clone(),
            hidden.clone(),
        ));
        tokio::spawn(stream_stdio(channel.clone(), stdio_in));
        Ok(Self {
            path: display,
            child,
            channel,
            stderr,
            relay,
            hidden,
            _token: token,
        })
    }

    /// From now on, never repeat the secret values of `settings` (what the plugin is about
    /// to be configured with) in a log line or an error: a plugin's error or log may echo
    /// its configuration.
    pub fn hide_secrets<'a>(&self, settings: impl IntoIterator<Item = (&'a String, &'a String)>) {
        let values = secret_values(settings);
        let mut hidden = self.hidden.lock().expect("hidden lock");
        hidden.extend(values);
        hidden.sort_by_key(|v| std::cmp::Reverse(v.len()));
        hidden.dedup();
    }

    /// The gRPC channel to the plugin.
    pub fn channel(&self) -> tonic::transport::Channel {
        self.channel.clone()
    }

    /// The plugin's last stderr lines.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .expect("stderr lock")
            .iter()
            .cloned()
            .collect()
    }

    fn rpc_error(&self, what: &str, status: tonic::Status) -> HostError {
        HostError::Rpc {
            path: self.path.clone(),
            reason: format!("{what}: {}", scrub(&self.hidden, status.message())),
            stderr: self.stderr_tail(),
        }
    }

    /// The error for a broken call or stream: if the plugin is exiting, wait (briefly) for
    /// it, so the error says how it ended and carries the last lines it wrote.
    pub async fn failure(&mut self, what: &str, detail: &str) -> PluginError {
        let exited = tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if exited.is_some() {
            if let Some(relay) = self.relay.as_mut() {
                // A finished relay is dropped: a JoinHandle must not be polled again after
                // it completed (a second failure of the same process would panic).
                if tokio::time::timeout(Duration::from_secs(1), relay)
                    .await
                    .is_ok()
                {
                    self.relay = None;
                }
            }
        }
        let how = exited
            .map(|status| format!(" (the plugin process ended: {status})"))
            .unwrap_or_default();
        PluginError::Other(
            HostError::Rpc {
                path: self.path.clone(),
                reason: format!("{what}: {}{how}", scrub(&self.hidden, detail)),
                stderr: self.stderr_tail(),
            }
            .to_string(),
        )
    }

    /// Ask the plugin for its specification.
    pub async fn specify(&self) -> Result<pb::connector::v2::Specification, HostError> {
        let mut client =
            pb::connector::v2::specifier_plugin_client::SpecifierPluginClient::new(self.channel());
        let answer = client
            .specify(pb::connector::v2::specifier::specify::Request {})
            .await
            .map_err(|s| self.rpc_error("Specify", s))?;
        answer
            .into_inner()
            .specification
            .ok_or_else(|| HostError::Rpc {
                path: self.path.clone(),
                reason: "Specify answered no specification".into(),
                stderr: self.stderr_tail(),
            })
    }

    /// Stop the plugin: ask it to shut down, then kill it if it has not exited within 2 s.
    /// Reaps the process (no zombie stays).
    pub async fn shutdown(mut self) {
        let mut controller =
            pb::plugin::grpc_controller_client::GrpcControllerClient::new(self.channel.clone());
        // The plugin stops its server before answering: an error here is expected.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            controller.shutdown(pb::plugin::Empty {}),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Copy what go-plugin's GRPCStdio stream carries (the plugin's os.Stdout and os.Stderr
/// once it serves) into `out`, until the stream or the plugin ends. A plugin without the
/// service (not built on go-plugin) answers the call with an error: nothing to copy.
async fn stream_stdio(channel: tonic::transport::Channel, mut out: tokio::io::DuplexStream) {
    use tokio::io::AsyncWriteExt;
    let mut client = pb::plugin::grpc_stdio_client::GrpcStdioClient::new(channel);
    let Ok(answer) = client.stream_stdio(()).await else {
        return;
    };
    let mut stream = answer.into_inner();
    while let Ok(Some(data)) = stream.message().await {
        if out.write_all(&data.data).await.is_err() {
            return;
        }
    }
}

/// Relay a plugin's stderr into our logs (JSON lines as go-plugin writes them: `@level`,
/// `@message`), keeping the last lines. Lines are cut at [`crate::stderr::MAX_LINE`]
/// bytes, bytes that are not UTF-8 are replaced, and at most
/// [`crate::stderr::LINES_PER_SECOND`] lines a second are logged (the rest are counted in a
/// warning): the pipe is drained whatever the plugin writes, with bounded memory.
async fn relay_stderr(
    mut stderr: impl tokio::io::AsyncRead + Unpin,
    path: String,
    connector_id: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    hidden: Hidden,
) {
    use tokio::io::AsyncReadExt;
    let plugin = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.clone());
    let mut splitter = crate::stderr::LineSplitter::default();
    let mut limit = crate::stderr::RateLimit::default();
    let mut buffer = vec![0u8; 64 * 1024];
    let held_back = |count: u64| {
        tracing::warn!(
            plugin = %plugin,
            connector_id = %connector_id,
            held_back = count,
            "plugin stderr: {count} line(s) not logged (more than {} a second)",
            crate::stderr::LINES_PER_SECOND
        );
    };
    let relay = |line: String, limit: &mut crate::stderr::RateLimit| {
        let line = scrub(&hidden, &line);
        {
            let mut tail = tail.lock().expect("stderr lock");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        let verdict = limit.admit(std::time::Instant::now());
        if let Some(count) = verdict.held_back {
            held_back(count);
        }
        if !verdict.log {
            return;
        }
        let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
        let (level, message) = match &parsed {
            Some(v) => (
                v["@level"].as_str().unwrap_or("info").to_owned(),
                v["@message"].as_str().unwrap_or(&line).to_owned(),
            ),
            None => ("debug".to_owned(), line.clone()),
        };
        match level.as_str() {
            "error" => tracing::error!(plugin = %plugin, connector_id = %connector_id, "{message}"),
            "warn" => tracing::warn!(plugin = %plugin, connector_id = %connector_id, "{message}"),
            "info" => tracing::info!(plugin = %plugin, connector_id = %connector_id, "{message}"),
            _ => tracing::debug!(plugin = %plugin, connector_id = %connector_id, "{message}"),
        }
    };
    loop {
        let read = match stderr.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
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

/// Leak a string read from a plugin's specification: specifications are loaded once, at
/// start, so this is bounded by the plugins installed.
pub(crate) fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

pub(crate) fn parameters(
    params: std::collections::HashMap<String, pb::config::v1::Parameter>,
) -> Vec<Parameter> {
    use pb::config::v1::parameter::Type;
    use pb::config::v1::validation::Type as V;
    let mut out: Vec<Parameter> = params
        .into_iter()
        .map(|(name, p)| {
            let ty = match Type::try_from(p.r#type) {
                Ok(Type::Int) => ParameterType::Int,
                Ok(Type::Float) => ParameterType::Float,
                Ok(Type::Bool) => ParameterType::Bool,
                Ok(Type::File) => ParameterType::File,
                Ok(Type::Duration) => ParameterType::Duration,
                _ => ParameterType::String,
            };
            let mut parameter =
                Parameter::new(leak(name), ty, leak(p.description)).default_value(leak(p.default));
            for v in p.validations {
                let list = || v.value.split(',').map(|s| s.trim().to_owned()).collect();
                let validation = match V::try_from(v.r#type) {
                    Ok(V::Required) => Validation::Required,
                    Ok(V::GreaterThan) => Validation::GreaterThan(v.value.parse().unwrap_or(0.0)),
                    Ok(V::LessThan) => Validation::LessThan(v.value.parse().unwrap_or(0.0)),
                    Ok(V::Inclusion) => Validation::Inclusion(list()),
                    Ok(V::Exclusion) => Validation::Exclusion(list()),
                    Ok(V::Regex) => Validation::Regex(v.value.clone()),
                    _ => continue,
                };
                parameter = parameter.validate(validation);
            }
            parameter
        })
        .collect();
    out.sort_by_key(|p| p.name);
    out
}

/// A standalone connector plugin: its binary and the specification it gave.
pub struct StandalonePlugin {
    path: PathBuf,
    spec: Specification,
    call_timeout: Duration,
    max_receive_record_size: usize,
}

/// How long a plugin may take to answer a call (Configure, Open, a lifecycle event) or a
/// destination to acknowledge what it was sent (default).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

impl StandalonePlugin {
    /// Launch the binary, ask for its specification, shut it down.
    pub async fn load(path: &Path) -> Result<Self, HostError> {
        let process = PluginProcess::launch(path, &Launch::default()).await?;
        let result = process.specify().await;
        process.shutdown().await;
        let spec = result?;
        let side = |params: std::collections::HashMap<_, _>, declared: bool| {
            declared.then(|| parameters(params))
        };
        // A plugin has a side when it declares parameters for it (Conduit's rule too: the
        // SDK lists every side the connector implements, with at least its own params).
        let has_source = !spec.source_params.is_empty();
        let has_destination = !spec.destination_params.is_empty();
        Ok(Self {
            path: path.to_owned(),
            call_timeout: CALL_TIMEOUT,
            max_receive_record_size: Launch::default().max_receive_record_size,
            spec: Specification {
                name: leak(spec.name),
                summary: leak(spec.summary),
                description: leak(spec.description),
                version: leak(spec.version),
                author: leak(spec.author),
                source: side(spec.source_params, has_source),
                destination: side(spec.destination_params, has_destination),
                standalone: true,
            },
        })
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long it may take to answer a call or to acknowledge records before its pipeline
    /// fails (a plugin that hangs must not hold a pipeline forever).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The largest record, in bytes, the plugin is told to accept from the server
    /// (`CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE` at launch; 4 MiB by default).
    pub fn with_max_receive_record_size(mut self, bytes: usize) -> Self {
        self.max_receive_record_size = bytes;
        self
    }
}

impl ConnectorPlugin for StandalonePlugin {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        Ok(Box::new(StandaloneSource {
            path: self.path.clone(),
            settings: settings.clone(),
            prepared: Prepare::default(),
            call_timeout: self.call_timeout,
            max_receive_record_size: self.max_receive_record_size,
            running: None,
            buffered: VecDeque::new(),
            read_positions: VecDeque::new(),
            failed: None,
        }))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        Ok(Box::new(StandaloneDestination {
            path: self.path.clone(),
            settings: settings.clone(),
            prepared: Prepare::default(),
            call_timeout: self.call_timeout,
            max_receive_record_size: self.max_receive_record_size,
            running: None,
            boundary: Boundary::default(),
        }))
    }
}

fn rpc<'a>(process: &'a PluginProcess, what: &str) -> impl Fn(tonic::Status) -> PluginError + 'a {
    let what = what.to_owned();
    move |status| PluginError::Other(process.rpc_error(&what, status).to_string())
}

/// How long a plugin may take to stop and tear down before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Stop and Teardown, within [`STOP_TIMEOUT`] (a hung plugin is then killed by the caller).
async fn bounded(
    path: &Path,
    stop: impl std::future::Future<Output = Result<(), PluginError>>,
) -> Result<(), PluginError> {
    tokio::time::timeout(STOP_TIMEOUT, stop)
        .await
        .unwrap_or_else(|_| {
            Err(PluginError::Other(format!(
                "plugin {}: Stop and Teardown did not finish within {} s; the process was killed",
                path.display(),
                STOP_TIMEOUT.as_secs()
            )))
        })
}

/// The error for records a destination did not acknowledge in time.
fn unacked(count: usize, timeout: Duration) -> String {
    format!(
        "{count} record(s) not acknowledged within {} s (--connectors.call-timeout)",
        timeout.as_secs_f64()
    )
}

/// Start the plugin for the connector it is prepared for.
async fn launch_for(
    path: &Path,
    prepared: &Prepare,
    max_receive_record_size: usize,
) -> Result<PluginProcess, PluginError> {
    let launch = Launch {
        max_receive_record_size,
        connector_id: if prepared.connector_id.is_empty() {
            "unknown".into()
        } else {
            prepared.connector_id.clone()
        },
        ..Launch::default()
    };
    PluginProcess::launch(path, &launch).await.map_err(host)
}

/// A lifecycle call's outcome: plugins older than the lifecycle calls answer Unimplemented,
/// which Conduit ignores, and so do we.
fn lifecycle_result(
    process: &PluginProcess,
    result: Result<(), tonic::Status>,
) -> Result<(), PluginError> {
    match result {
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::debug!(plugin = %process.path, "the plugin has no lifecycle calls");
            Ok(())
        }
        other => other.map_err(rpc(process, "lifecycle event")),
    }
}

/// The error for a plugin that did not answer in time (the process is then killed).
fn unanswered(path: &Path, limit: Duration) -> PluginError {
    PluginError::Other(format!(
        "plugin {}: no answer to Configure, a lifecycle event or Open within {} s \
         (--connectors.call-timeout); the process was killed",
        path.display(),
        limit.as_secs_f64()
    ))
}

fn host(error: HostError) -> PluginError {
    PluginError::Other(error.to_string())
}

/// A standalone source while it runs: its process and the Run stream.
struct RunningSource {
    process: PluginProcess,
    client: pb::connector::v2::source_plugin_client::SourcePluginClient<tonic::transport::Channel>,
    acks: tokio::sync::mpsc::Sender<pb::connector::v2::source::run::Request>,
    /// The Run call until its answer starts (a Go gRPC server sends the response headers
    /// with its first message: a source with nothing to read yet answers nothing).
    call: Option<tokio::task::JoinHandle<SourceRunAnswer>>,
    records: Option<tonic::Streaming<pb::connector::v2::source::run::Response>>,
}

/// What a source's Run call answers.
type SourceRunAnswer = Result<
    tonic::Response<tonic::Streaming<pb::connector::v2::source::run::Response>>,
    tonic::Status,
>;

/// A source connector served by a plugin process.
struct StandaloneSource {
    path: PathBuf,
    settings: Settings,
    prepared: Prepare,
    call_timeout: Duration,
    max_receive_record_size: usize,
    running: Option<RunningSource>,
    buffered: VecDeque<culvert_domain::Record>,
    /// The positions of the records read and not yet acked, in order: the engine acks
    /// cumulatively, the protocol wants every position.
    read_positions: VecDeque<Vec<u8>>,
    /// A stream failure met after records that are still to be handed out.
    failed: Option<PluginError>,
}

/// The output of `future` if it is ready at once (it is dropped otherwise).
async fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

impl StandaloneSource {
    /// Launch the plugin, Configure, announce the lifecycle event, Open, start Run.
    async fn start(
        &mut self,
        position: Option<culvert_domain::Position>,
    ) -> Result<(), PluginError> {
        use pb::connector::v2::source;
        let process = launch_for(&self.path, &self.prepared, self.max_receive_record_size).await?;
        process.hide_secrets(&self.settings);
        if let Some(Lifecycle::Updated { before, .. }) = &self.prepared.lifecycle {
            process.hide_secrets(before);
        }
        let mut client =
            pb::connector::v2::source_plugin_client::SourcePluginClient::new(process.channel())
                .max_decoding_message_size(usize::MAX);
        client
            .configure(source::configure::Request {
                config: self.settings.clone().into_iter().collect(),
            })
            .await
            .map_err(rpc(&process, "Configure"))?;
        if let Some(event) = self.prepared.lifecycle.take() {
            let result = match event {
                Lifecycle::Created { config } => client
                    .lifecycle_on_created(source::lifecycle::on_created::Request {
                        config: config.into_iter().collect(),
                    })
                    .await
                    .map(drop),
                Lifecycle::Updated { before, after } => client
                    .lifecycle_on_updated(source::lifecycle::on_updated::Request {
                        config_before: before.into_iter().collect(),
                        config_after: after.into_iter().collect(),
                    })
                    .await
                    .map(drop),
            };
            lifecycle_result(&process, result)?;
        }
        client
            .open(source::open::Request {
                position: position.map(|p| p.0).unwrap_or_default(),
            })
            .await
            .map_err(rpc(&process, "Open"))?;
        let (acks, requests) = tokio::sync::mpsc::channel(64);
        let mut runner = client.clone();
        let call = tokio::spawn(async move {
            runner
                .run(tokio_stream::wrappers::ReceiverStream::new(requests))
                .await
        });
        self.running = Some(RunningSource {
            process,
            client,
            acks,
            call: Some(call),
            records: None,
        });
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for StandaloneSource {
    fn prepare(&mut self, context: Prepare) {
        self.prepared = context;
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        use pb::connector::v2::source;
        let process = launch_for(&self.path, &self.prepared, self.max_receive_record_size).await?;
        process.hide_secrets(&config);
        let mut client =
            pb::connector::v2::source_plugin_client::SourcePluginClient::new(process.channel());
        let result = bounded(&self.path, async {
            let deleted = client
                .lifecycle_on_deleted(source::lifecycle::on_deleted::Request {
                    config: config.into_iter().collect(),
                })
                .await
                .map(drop);
            let teardown = client.teardown(source::teardown::Request {}).await;
            lifecycle_result(&process, deleted)?;
            teardown.map(drop).map_err(rpc(&process, "Teardown"))
        })
        .await;
        process.shutdown().await;
        result
    }

    async fn open(
        &mut self,
        position: Option<culvert_domain::Position>,
    ) -> Result<(), PluginError> {
        let limit = self.call_timeout;
        let path = self.path.clone();
        tokio::time::timeout(limit, self.start(position))
            .await
            .unwrap_or_else(|_| Err(unanswered(&path, limit)))
    }

    async fn read(&mut self, max: usize) -> Result<Vec<culvert_domain::Record>, PluginError> {
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| PluginError::Other("read before open".into()))?;
        if self.buffered.is_empty() {
            if running.records.is_none() {
                // Cancel-safe: the call stays in `running` until it has answered.
                let call = running
                    .call
                    .as_mut()
                    .expect("the Run call is pending until answered");
                // A source with nothing to send may not answer for a while: come back
                // empty-handed after IDLE_READ so the engine can deliver acks.
                let Ok(answer) = tokio::time::timeout(IDLE_READ, call).await else {
                    return Ok(Vec::new());
                };
                running.call = None;
                match answer {
                    Err(e) => return Err(PluginError::Other(format!("the Run call failed: {e}"))),
                    Ok(Err(status)) => {
                        return Err(running.process.failure("Run", status.message()).await)
                    }
                    Ok(Ok(answer)) => running.records = Some(answer.into_inner()),
                }
            }
            if let Some(failure) = self.failed.take() {
                return Err(failure);
            }
            let records = running.records.as_mut().expect("set above");
            // Cancel-safe: a message is taken from the stream only when it completes. After
            // IDLE_READ with none, return empty-handed (the engine delivers acks between
            // reads).
            let Ok(first) = tokio::time::timeout(IDLE_READ, records.message()).await else {
                return Ok(Vec::new());
            };
            let mut next = Some(first);
            // Then whatever else has arrived, without waiting (each record is usually a
            // message of its own).
            while let Some(message) = next.take() {
                let failure = match message {
                    Ok(Some(message)) => {
                        let mut invalid = None;
                        for record in message.records {
                            match from_proto(record) {
                                Ok(record) => {
                                    self.read_positions.push_back(record.position.0.clone());
                                    self.buffered.push_back(record);
                                }
                                Err(reason) => {
                                    invalid = Some(format!("it sent an invalid record: {reason}"));
                                    break;
                                }
                            }
                        }
                        invalid
                    }
                    Ok(None) => Some("the source's stream ended".to_owned()),
                    Err(status) => Some(status.message().to_owned()),
                };
                if let Some(detail) = failure {
                    let error = running.process.failure("Run", &detail).await;
                    if self.buffered.is_empty() {
                        return Err(error);
                    }
                    // Hand out what came before it first.
                    self.failed = Some(error);
                    break;
                }
                if self.buffered.len() < max {
                    next = ready_now(records.message()).await;
                }
            }
        }
        let take = max.min(self.buffered.len());
        Ok(self.buffered.drain(..take).collect())
    }

    async fn ack(&mut self, position: culvert_domain::Position) -> Result<(), PluginError> {
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| PluginError::Other("ack before open".into()))?;
        // Every position up to and including this one, in the order they were read.
        let Some(last) = self.read_positions.iter().position(|p| *p == position.0) else {
            return Err(PluginError::Other(format!(
                "plugin {}: ack of position {:?}, which it did not send or was acked already",
                self.path.display(),
                String::from_utf8_lossy(&position.0)
            )));
        };
        let ack_positions: Vec<Vec<u8>> = self.read_positions.drain(..=last).collect();
        match running
            .acks
            .send(pb::connector::v2::source::run::Request { ack_positions })
            .await
        {
            Ok(()) => Ok(()),
            Err(_) => {
                // The call ended: its status says why.
                let why = match running.records.as_mut() {
                    Some(records) => {
                        match tokio::time::timeout(Duration::from_secs(1), records.message()).await
                        {
                            Ok(Err(status)) => format!(
                                "the source's stream is closed: {} ({:?})",
                                status.message(),
                                status.code()
                            ),
                            Ok(Ok(Some(_))) => {
                                "the source's stream is closed for acks while it still sends records".into()
                            }
                            Ok(Ok(None)) => "the source's stream ended".into(),
                            Err(_) => "the source's stream is closed for acks".into(),
                        }
                    }
                    None => "the source's stream is closed".into(),
                };
                Err(running.process.failure("Run", &why).await)
            }
        }
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        use pb::connector::v2::source;
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        let result = async {
            running
                .client
                .stop(source::stop::Request {})
                .await
                .map_err(rpc(&running.process, "Stop"))?;
            drop(running.acks);
            running
                .client
                .teardown(source::teardown::Request {})
                .await
                .map_err(rpc(&running.process, "Teardown"))?;
            Ok::<_, PluginError>(())
        };
        let result = bounded(&self.path, result).await;
        running.process.shutdown().await;
        result
    }
}

/// A standalone destination while it runs.
struct RunningDestination {
    process: PluginProcess,
    client: pb::connector::v2::destination_plugin_client::DestinationPluginClient<
        tonic::transport::Channel,
    >,
    records: tokio::sync::mpsc::Sender<pb::connector::v2::destination::run::Request>,
    /// The Run call until its answer starts (a Go gRPC server sends the response headers
    /// with its first message, i.e. the first acks: awaiting the call before sending
    /// records would wait forever).
    call: Option<tokio::task::JoinHandle<RunAnswer>>,
    acks: Option<tonic::Streaming<pb::connector::v2::destination::run::Response>>,
    last_position: Vec<u8>,
}

/// What a destination's Run call answers.
type RunAnswer = Result<
    tonic::Response<tonic::Streaming<pb::connector::v2::destination::run::Response>>,
    tonic::Status,
>;

/// Records as they leave the process for a plugin (a standalone destination, a WASM
/// processor): as Conduit would send them. A key or payload under a schema (named in the
/// metadata) goes encoded with it, as Conduit's sources send it; inside Culvert a built-in
/// source's records stay structured. A record that does not fit its schema (changed by a
/// processor that did not update it) goes as it is: the SDKs take structured data too.
#[derive(Default)]
pub(crate) struct Boundary {
    /// Made at first need, with the server's registry.
    codec: Option<SchemaCodec>,
}

impl Boundary {
    /// `record` in the protocol's form, encoded where Conduit's would be.
    pub(crate) fn outgoing(&mut self, record: &culvert_domain::Record) -> pb::opencdc::v1::Record {
        if !SchemaCodec::needs_encoding(record, true, true) {
            return to_proto(record);
        }
        if self.codec.is_none() {
            self.codec = crate::connutils::installed_registry().map(SchemaCodec::new);
        }
        let Some(codec) = self.codec.as_mut() else {
            return to_proto(record);
        };
        let mut encoded = record.clone();
        match codec.encode(&mut encoded, true, true) {
            Ok(()) => to_proto(&encoded),
            Err(error) => {
                tracing::debug!(%error, "record sent structured: it does not fit its schema");
                to_proto(record)
            }
        }
    }
}

/// A destination connector served by a plugin process.
struct StandaloneDestination {
    path: PathBuf,
    settings: Settings,
    prepared: Prepare,
    call_timeout: Duration,
    max_receive_record_size: usize,
    running: Option<RunningDestination>,
    /// Encodes structured data under a schema before it is sent.
    boundary: Boundary,
}

impl StandaloneDestination {
    /// Launch the plugin, Configure, announce the lifecycle event, Open, start Run.
    async fn start(&mut self) -> Result<(), PluginError> {
        use pb::connector::v2::destination;
        let process = launch_for(&self.path, &self.prepared, self.max_receive_record_size).await?;
        process.hide_secrets(&self.settings);
        if let Some(Lifecycle::Updated { before, .. }) = &self.prepared.lifecycle {
            process.hide_secrets(before);
        }
        let mut client =
            pb::connector::v2::destination_plugin_client::DestinationPluginClient::new(
                process.channel(),
            )
            .max_decoding_message_size(usize::MAX);
        client
            .configure(destination::configure::Request {
                config: self.settings.clone().into_iter().collect(),
            })
            .await
            .map_err(rpc(&process, "Configure"))?;
        if let Some(event) = self.prepared.lifecycle.take() {
            let result = match event {
                Lifecycle::Created { config } => client
                    .lifecycle_on_created(destination::lifecycle::on_created::Request {
                        config: config.into_iter().collect(),
                    })
                    .await
                    .map(drop),
                Lifecycle::Updated { before, after } => client
                    .lifecycle_on_updated(destination::lifecycle::on_updated::Request {
                        config_before: before.into_iter().collect(),
                        config_after: after.into_iter().collect(),
                    })
                    .await
                    .map(drop),
            };
            lifecycle_result(&process, result)?;
        }
        client
            .open(destination::open::Request {})
            .await
            .map_err(rpc(&process, "Open"))?;
        let (records, requests) = tokio::sync::mpsc::channel(4);
        let mut runner = client.clone();
        let call = tokio::spawn(async move {
            runner
                .run(tokio_stream::wrappers::ReceiverStream::new(requests))
                .await
        });
        self.running = Some(RunningDestination {
            process,
            client,
            records,
            call: Some(call),
            acks: None,
            last_position: vec![],
        });
        Ok(())
    }
}

#[async_trait::async_trait]
impl Destination for StandaloneDestination {
    async fn gone(&mut self) -> PluginError {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        // Cancel-safe: waiting for a child takes nothing that a dropped wait would lose.
        let how = match running.process.child.wait().await {
            // `failure` adds how it ended.
            Ok(_) => "the plugin process ended while the destination was idle".to_owned(),
            Err(error) => format!("waiting for the plugin process failed: {error}"),
        };
        running.process.failure("Run", &how).await
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        let limit = self.call_timeout;
        let path = self.path.clone();
        tokio::time::timeout(limit, self.start())
            .await
            .unwrap_or_else(|_| Err(unanswered(&path, limit)))
    }

    fn prepare(&mut self, context: Prepare) {
        self.prepared = context;
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        use pb::connector::v2::destination;
        let process = launch_for(&self.path, &self.prepared, self.max_receive_record_size).await?;
        process.hide_secrets(&config);
        let mut client = pb::connector::v2::destination_plugin_client::DestinationPluginClient::new(
            process.channel(),
        );
        let result = bounded(&self.path, async {
            let deleted = client
                .lifecycle_on_deleted(destination::lifecycle::on_deleted::Request {
                    config: config.into_iter().collect(),
                })
                .await
                .map(drop);
            let teardown = client.teardown(destination::teardown::Request {}).await;
            lifecycle_result(&process, deleted)?;
            teardown.map(drop).map_err(rpc(&process, "Teardown"))
        })
        .await;
        process.shutdown().await;
        result
    }

    async fn write(&mut self, records: &[culvert_domain::Record]) -> Result<(), PluginError> {
        match self.write_each(records).await?.into_iter().next() {
            None => Ok(()),
            Some((index, error)) => Err(PluginError::Other(format!(
                "plugin {}: could not write the record at position {:?}: {error}",
                self.path.display(),
                String::from_utf8_lossy(&records[index].position.0),
            ))),
        }
    }

    async fn write_each(
        &mut self,
        records: &[culvert_domain::Record],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        let sending: Vec<_> = records.iter().map(|r| self.boundary.outgoing(r)).collect();
        let call_timeout = self.call_timeout;
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| PluginError::Other("write before open".into()))?;
        let sent = running
            .records
            .send(pb::connector::v2::destination::run::Request { records: sending })
            .await;
        if sent.is_err() {
            return Err(running
                .process
                .failure("Run", "the destination's stream ended")
                .await);
        }
        if running.acks.is_none() {
            let call = running
                .call
                .take()
                .expect("the Run call is pending until answered");
            let answer = match tokio::time::timeout(call_timeout, call).await {
                Err(_) => {
                    return Err(running
                        .process
                        .failure("Run", &unacked(records.len(), call_timeout))
                        .await)
                }
                Ok(Err(e)) => return Err(PluginError::Other(format!("the Run call failed: {e}"))),
                Ok(Ok(Err(status))) => {
                    return Err(running.process.failure("Run", status.message()).await)
                }
                Ok(Ok(Ok(answer))) => answer,
            };
            running.acks = Some(answer.into_inner());
        }
        // Every record is acked, in order; an ack with an error is a nack.
        let mut expected = records.iter().map(|r| &r.position.0).enumerate();
        let mut pending = records.len();
        let mut refused = Vec::new();
        while pending > 0 {
            let acks = running.acks.as_mut().expect("set above");
            let message = match tokio::time::timeout(call_timeout, acks.message()).await {
                Err(_) => {
                    return Err(running
                        .process
                        .failure("Run", &unacked(pending, call_timeout))
                        .await)
                }
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => {
                    return Err(running
                        .process
                        .failure("Run", "the destination's stream ended")
                        .await)
                }
                Ok(Err(status)) => {
                    return Err(running.process.failure("Run", status.message()).await)
                }
            };
            for ack in message.acks {
                let Some((index, want)) = expected.next() else {
                    return Err(running
                        .process
                        .failure("Run", "it acked more records than it was sent")
                        .await);
                };
                if &ack.position != want {
                    let detail = format!(
                        "it acked position {:?}, expected {:?}",
                        String::from_utf8_lossy(&ack.position),
                        String::from_utf8_lossy(want)
                    );
                    return Err(running.process.failure("Run", &detail).await);
                }
                if !ack.error.is_empty() {
                    refused.push((index, ack.error));
                }
                pending -= 1;
            }
        }
        if let Some(last) = records.last() {
            running.last_position = last.position.0.clone();
        }
        Ok(refused)
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        use pb::connector::v2::destination;
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        let result = async {
            running
                .client
                .stop(destination::stop::Request {
                    last_position: running.last_position.clone(),
                })
                .await
                .map_err(rpc(&running.process, "Stop"))?;
            drop(running.records);
            running
                .client
                .teardown(destination::teardown::Request {})
                .await
                .map_err(rpc(&running.process, "Teardown"))?;
            Ok::<_, PluginError>(())
        };
        let result = bounded(&self.path, result).await;
        running.process.shutdown().await;
        result
    }
}

fn struct_to_json(s: prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn value_to_json(v: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
    }
}

fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn data_from_proto(data: Option<pb::opencdc::v1::Data>) -> Option<culvert_domain::Data> {
    use pb::opencdc::v1::data::Data as D;
    match data.and_then(|d| d.data) {
        None => None,
        Some(D::RawData(bytes)) => Some(culvert_domain::Data::Raw(bytes)),
        Some(D::StructuredData(s)) => {
            Some(culvert_domain::Data::Structured(struct_to_json(s).into()))
        }
    }
}

fn data_to_proto(data: &Option<culvert_domain::Data>) -> Option<pb::opencdc::v1::Data> {
    use pb::opencdc::v1::data::Data as D;
    data.as_ref().map(|d| pb::opencdc::v1::Data {
        data: Some(match d {
            culvert_domain::Data::Raw(bytes) => D::RawData(bytes.clone()),
            culvert_domain::Data::Structured(map) => D::StructuredData(json_to_struct(map)),
        }),
    })
}

/// A record from the wire. Public only for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn from_proto(record: pb::opencdc::v1::Record) -> Result<culvert_domain::Record, String> {
    use culvert_domain::Operation;
    use pb::opencdc::v1::Operation as Op;
    let operation = match Op::try_from(record.operation) {
        Ok(Op::Create) => Operation::Create,
        Ok(Op::Update) => Operation::Update,
        Ok(Op::Delete) => Operation::Delete,
        Ok(Op::Snapshot) => Operation::Snapshot,
        _ => return Err(format!("a record with operation {}", record.operation)),
    };
    let payload = record.payload.unwrap_or_default();
    Ok(culvert_domain::Record {
        position: culvert_domain::Position(record.position),
        operation,
        metadata: record.metadata.into_iter().collect(),
        key: data_from_proto(record.key),
        payload: culvert_domain::Change {
            before: data_from_proto(payload.before),
            after: data_from_proto(payload.after),
        },
    })
}

/// A record for the wire. Public only for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn to_proto(record: &culvert_domain::Record) -> pb::opencdc::v1::Record {
    use culvert_domain::Operation;
    use pb::opencdc::v1::Operation as Op;
    let operation = match record.operation {
        Operation::Create => Op::Create,
        Operation::Update => Op::Update,
        Operation::Delete => Op::Delete,
        Operation::Snapshot => Op::Snapshot,
    };
    pb::opencdc::v1::Record {
        position: record.position.0.clone(),
        operation: operation as i32,
        metadata: record.metadata.to_string_map(),
        key: data_to_proto(&record.key),
        payload: Some(pb::opencdc::v1::Change {
            before: data_to_proto(&record.payload.before),
            after: data_to_proto(&record.payload.after),
        }),
    }
}

/// Every plugin binary in `dir` (files, not directories), loaded; the ones that fail are
/// returned with their error (logged by the caller), never stopping the others.
pub async fn discover(dir: &Path) -> (Vec<StandalonePlugin>, Vec<HostError>) {
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (plugins, errors);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        match StandalonePlugin::load(&path).await {
            Ok(plugin) => plugins.push(plugin),
            Err(error) => errors.push(error),
        }
    }
    (plugins, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_lines_are_checked() {
        assert_eq!(
            parse_handshake("1|2|unix|/tmp/plugin123|grpc|\n").unwrap(),
            Handshake {
                protocol_version: 2,
                socket: PathBuf::from("/tmp/plugin123")
            }
        );
        for (line, why) in [
            ("hello", "unrecognized plugin message"),
            ("2|2|unix|/s|grpc|", "core protocol"),
            ("1|1|unix|/s|grpc|", "version 1, want 2"),
            ("1|2|tcp|127.0.0.1:1|grpc|", "network"),
            ("1|2|unix|/s|netrpc|", "protocol \"netrpc\""),
            ("1|x|unix|/s|grpc|", "not a number"),
        ] {
            let error = parse_handshake(line).unwrap_err();
            assert!(error.contains(why), "{line}: {error}");
        }
    }

    #[tokio::test]
    async fn a_binary_that_is_not_a_plugin_fails_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("not-a-plugin");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'this is no plugin' >&2\necho hello\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let error = PluginProcess::launch(&script, &Launch::default())
            .await
            .err()
            .expect("no handshake")
            .to_string();
        assert!(
            error.contains("unrecognized plugin message \"hello\""),
            "{error}"
        );
        let not_executable = dir.path().join("plain-file");
        std::fs::write(&not_executable, "data").unwrap();
        let error = PluginProcess::launch(&not_executable, &Launch::default())
            .await
            .err()
            .expect("cannot start")
            .to_string();
        assert!(error.contains("cannot start it"), "{error}");
        let (plugins, errors) = discover(dir.path()).await;
        assert!(plugins.is_empty());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn a_plugins_output_never_repeats_a_secret_setting() {
        let settings = Settings::from([
            ("password".to_owned(), "hunter2-secret".to_owned()),
            ("url".to_owned(), "postgres://me:pg-pass-9@db/x".to_owned()),
            ("table".to_owned(), "orders".to_owned()),
            ("token".to_owned(), "abc".to_owned()),
        ]);
        let hidden = Hidden::default();
        hidden.lock().unwrap().extend(secret_values(&settings));
        let echoed = "configure: bad password \"hunter2-secret\" for \
                      postgres://me:pg-pass-9@db/x (password pg-pass-9), table orders";
        let shown = scrub(&hidden, echoed);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("pg-pass-9"), "{shown}");
        assert!(shown.contains("table orders"), "{shown}");
        assert_eq!(
            shown,
            "configure: bad password \"***\" for *** (password ***), table orders"
        );
        // Too short to hide without mangling every message.
        assert!(!secret_values(&settings).contains(&"abc".to_owned()));
    }
}
