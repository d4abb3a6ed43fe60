//! `culvert doctor`: would `culvert run` work here, with these settings? Offline,
//! non-destructive checks, as Conduit's `doctor`: the configuration (file and values,
//! pipeline files), the data directory and store, the API addresses, the plugin
//! directories, disk space, the open-file limit and the version. Each check prints
//! `ok`, `warn` or `fail` with what to do about it.
//!
//! Doctor takes every `culvert run` flag, resolved the same way (flags, `CULVERT_*`
//! variables, the config file, defaults), and Conduit's own: `--check NAME` runs only the
//! named checks (an unknown name is a usage error, exit 2, listing the valid ones),
//! `--quiet` prints only the checks that warn or fail, `--deep` adds
//! `plugins.standalone_compat` (every standalone connector started and asked for its
//! specification), and `--require-server` turns the network checks around: a server must answer on the gRPC address (`GetInfo`) and the
//! HTTP address (`GET /healthz`) instead of the addresses being free. `-o json|yaml` (or
//! `--json`) prints one JSON object a line, or one YAML document, per check.
//!
//! Exit codes as Conduit's: 0 when nothing failed (warnings never fail), 2 when a check
//! found invalid configuration, 3 when the environment is not fit (a directory not
//! writable, an address taken, the store not opening, no server with
//! `--require-server`).

use crate::cli::{print_item, Output, OutputFormat};
use crate::{DbType, RunArgs};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `culvert doctor`'s arguments: `culvert run`'s, and which checks to run and print.
#[derive(clap::Args, Debug)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Run only this check (repeatable, or comma-separated); an unknown name is a usage
    /// error that lists the valid ones.
    #[arg(
        long = "check",
        value_name = "NAME",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(CHECKS.iter().map(|(name, _)| *name))
    )]
    check: Vec<String>,
    /// Print only the checks that warn or fail (nothing when all is well); the exit code
    /// is the same.
    #[arg(long)]
    quiet: bool,
    /// A server must already run with these settings: the network checks fail unless a
    /// server answers on the gRPC and HTTP addresses, instead of checking that they are
    /// free.
    #[arg(long)]
    require_server: bool,
    /// Also run plugins.standalone_compat: start every standalone connector in
    /// --connectors.path and ask it for its specification, as a server does at start.
    #[arg(long)]
    deep: bool,
    /// `table` (lines and a summary), `json` (one object a check, a line each) or `yaml`
    /// (one document a check).
    #[command(flatten)]
    output: Output,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    /// Failed, with the exit code it calls for (2 configuration, 3 environment).
    Fail(u8),
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail(_) => "fail",
        }
    }
}

/// One check's outcome.
struct Check {
    name: &'static str,
    status: Status,
    message: String,
}

/// What a check looks at: the settings and whether a server must already run.
struct Context<'a> {
    run: &'a RunArgs,
    require_server: bool,
}

/// Every check, in the order they run, by name (the names `--check` takes).
type CheckFn = fn(&Context) -> Outcome;
/// The check only `--deep` runs (it starts plugin processes).
const DEEP_CHECK: &str = "plugins.standalone_compat";
const CHECKS: [(&str, CheckFn); 13] = [
    ("version", |_| {
        (Status::Ok, format!("culvert {}", crate::version_line()))
    }),
    ("config.file", |c| config_file(&c.run.config_path)),
    ("config.validate", |c| config_values(c.run)),
    ("config.pipelines", |c| {
        pipelines(c.run.pipelines_path.as_deref())
    }),
    ("store.dir", |c| data_dir(c.run)),
    ("store.open", |c| store(c.run)),
    ("network.grpc", |c| {
        let at = &c.run.grpc_address;
        if c.require_server {
            server_answers("api.grpc.address", at, Protocol::Grpc, tls(c.run))
        } else {
            address("api.grpc.address", at, None)
        }
    }),
    ("network.http", |c| {
        let at = &c.run.http_address;
        if c.require_server {
            server_answers("api.http.address", at, Protocol::Http, tls(c.run))
        } else {
            address("api.http.address", at, Some("/healthz"))
        }
    }),
    ("plugins.connectors_dir", |c| {
        plugins_dir("connectors.path", &c.run.connectors_path, false)
    }),
    ("plugins.processors_dir", |c| {
        plugins_dir("processors.path", &c.run.processors_path, true)
    }),
    (DEEP_CHECK, |c| standalone_compat(&c.run.connectors_path)),
    ("disk.free", |c| disk(&c.run.db_path, c.run.db_type)),
    ("limits.open_files", |_| open_files()),
];

/// Run the checks, print them, and exit with the worst failure's code.
pub(crate) fn run(mut args: DoctorArgs) -> ExitCode {
    args.run.resolve_listen_addresses();
    let context = Context {
        run: &args.run,
        require_server: args.require_server,
    };
    if !args.deep && args.check.iter().any(|c| c == DEEP_CHECK) {
        eprintln!(
            "error: check {DEEP_CHECK:?} requires --deep (it starts every standalone \
             connector); re-run with --deep, or drop --check {DEEP_CHECK}"
        );
        return ExitCode::from(2);
    }
    let checks: Vec<Check> = CHECKS
        .iter()
        .filter(|(name, _)| args.deep || *name != DEEP_CHECK)
        .filter(|(name, _)| args.check.is_empty() || args.check.iter().any(|c| c == name))
        .map(|(name, check)| {
            let (status, message) = check(&context);
            Check {
                name,
                status,
                message,
            }
        })
        .collect();
    let format = args.output.format();
    for check in &checks {
        if args.quiet && check.status == Status::Ok {
            continue;
        }
        let item = serde_json::json!({
            "check": check.name, "status": check.status.word(), "message": check.message
        });
        match print_item(format, &item) {
            Ok(true) => {}
            Ok(false) => println!(
                "{:<5} {}: {}",
                check.status.word(),
                check.name,
                check.message
            ),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
        }
    }
    let count = |want: fn(Status) -> bool| checks.iter().filter(|c| want(c.status)).count();
    let failed = count(|s| matches!(s, Status::Fail(_)));
    if format == OutputFormat::Table && !args.quiet {
        println!(
            "summary: {} checks, {} ok, {} warnings, {failed} failed",
            checks.len(),
            count(|s| s == Status::Ok),
            count(|s| s == Status::Warn)
        );
    }
    let code = checks
        .iter()
        .filter_map(|c| match c.status {
            Status::Fail(code) => Some(code),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    ExitCode::from(code)
}

type Outcome = (Status, String);

fn config_file(path: &Path) -> Outcome {
    if path.is_file() {
        (Status::Ok, format!("read {}", path.display()))
    } else {
        (
            Status::Ok,
            format!(
                "no config file at {}: defaults, CULVERT_* (or Conduit's CONDUIT_*) \
                 variables and flags apply (`culvert init` writes one)",
                path.display()
            ),
        )
    }
}

fn config_values(args: &RunArgs) -> Outcome {
    if let Err(error) = args.recovery() {
        return (Status::Fail(2), format!("{error:#}"));
    }
    match args.conduit_notes() {
        Err(error) => (Status::Fail(2), error),
        Ok(notes) if notes.is_empty() => (Status::Ok, "settings are valid".to_owned()),
        Ok(notes) => (
            Status::Warn,
            format!("settings are valid; Conduit's: {}", notes.join("; ")),
        ),
    }
}

fn pipelines(path: Option<&Path>) -> Outcome {
    let Some(path) = path else {
        return (
            Status::Ok,
            "no pipelines.path: pipelines come only from the API".to_owned(),
        );
    };
    if !path.exists() {
        return (
            Status::Fail(2),
            format!(
                "pipelines.path {} does not exist: create it or point the setting elsewhere",
                path.display()
            ),
        );
    }
    let findings = match crate::validate::findings(&[path.to_owned()]) {
        Ok(findings) => findings,
        Err((code, message)) => return (Status::Fail(code), message),
    };
    let errors = findings.iter().filter(|f| f.severity == "error").count();
    let warnings = findings.len() - errors;
    let again = format!("run `culvert pipelines validate {}`", path.display());
    match (errors, warnings) {
        (0, 0) => (Status::Ok, format!("{} is valid", path.display())),
        (0, w) => (
            Status::Warn,
            format!("{}: {w} warning(s); {again}", path.display()),
        ),
        (e, _) => (
            Status::Fail(2),
            format!(
                "{}: {e} error(s), those pipelines would be skipped; {again}",
                path.display()
            ),
        ),
    }
}

/// The closest ancestor of `path` that exists (`path` itself if it does).
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_owned)
}

/// Whether a file can be created (and removed) in the directory `dir`.
fn writable(dir: &Path) -> Result<(), std::io::Error> {
    let probe = dir.join(format!(".culvert-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn data_dir(args: &RunArgs) -> Outcome {
    if args.db_type == DbType::Inmemory {
        return (
            Status::Ok,
            "db.type inmemory: nothing is kept on disk (and nothing survives a restart)".to_owned(),
        );
    }
    let path = &args.db_path;
    let fix = "fix its permissions or set --db.rocksdb.path to a directory this user may write";
    if path.exists() {
        if !path.is_dir() {
            return (
                Status::Fail(3),
                format!("{} is not a directory; {fix}", path.display()),
            );
        }
        return match writable(path) {
            Ok(()) => (
                Status::Ok,
                format!("{} exists and is writable", path.display()),
            ),
            Err(e) => (
                Status::Fail(3),
                format!("{} is not writable ({e}); {fix}", path.display()),
            ),
        };
    }
    let Some(ancestor) = existing_ancestor(path) else {
        return (
            Status::Fail(3),
            format!("{}: cannot resolve the path", path.display()),
        );
    };
    if !ancestor.is_dir() {
        return (
            Status::Fail(3),
            format!(
                "{} cannot be created: {} is a file; {fix}",
                path.display(),
                ancestor.display()
            ),
        );
    }
    match writable(&ancestor) {
        Ok(()) => (
            Status::Ok,
            format!("{} does not exist yet; it will be created", path.display()),
        ),
        Err(e) => (
            Status::Fail(3),
            format!(
                "{} cannot be created: {} is not writable ({e}); {fix}",
                path.display(),
                ancestor.display()
            ),
        ),
    }
}

fn store(args: &RunArgs) -> Outcome {
    if args.db_type == DbType::Inmemory {
        return (Status::Ok, "in memory: no store to open".to_owned());
    }
    let path = &args.db_path;
    if !path.join("CURRENT").exists() {
        let empty = std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none());
        return if empty {
            (
                Status::Ok,
                "no store yet: the first start creates it".to_owned(),
            )
        } else {
            (
                Status::Warn,
                format!(
                    "{} holds files but no RocksDB database: is it the right directory?",
                    path.display()
                ),
            )
        };
    }
    let data = crate::tools::DataDir { path: path.clone() };
    match crate::tools::open(&data) {
        Ok(store) => {
            use culvert_store::EventLog as _;
            (
                Status::Ok,
                format!(
                    "opens read-only; layout version {} (current); {} events",
                    culvert_migrations::LAYOUT_VERSION,
                    store.head().0
                ),
            )
        }
        Err(crate::tools::Failure(_, message)) => (
            Status::Fail(3),
            format!(
                "{message}; if the layout is older, start the server once to migrate it; if \
                 newer, use the newer culvert"
            ),
        ),
    }
}

/// Whether `address` can be listened on; if taken, whether a server answering `probe`
/// (HTTP) holds it.
fn address(setting: &str, address: &str, probe: Option<&str>) -> Outcome {
    match TcpListener::bind(address) {
        Ok(_) => (Status::Ok, format!("{address} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if let Some(path) = probe {
                if http_ok(address, path) {
                    return (
                        Status::Warn,
                        format!(
                            "{address} is taken by a server answering {path}: a Culvert (or \
                             Conduit) already runs there; stop it, or set --{setting} for \
                             this one"
                        ),
                    );
                }
            }
            (
                Status::Fail(3),
                format!("{address} is in use by another program: free it or set --{setting}"),
            )
        }
        Err(e) => (
            Status::Fail(3),
            format!(
                "cannot listen on {address} ({e}): set --{setting} to an address of this machine"
            ),
        ),
    }
}

/// Which API a `--require-server` check expects at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// gRPC: InformationService.GetInfo answers.
    Grpc,
    /// The HTTP API: `GET /healthz` answers 200.
    Http,
}

/// Whether the APIs are served over TLS with these settings.
fn tls(run: &RunArgs) -> bool {
    run.security.cert_file.is_some()
}

/// `--require-server`: whether a server answers at `address` (instead of the address
/// being free). With TLS only the TCP connection is checked (no certificate to trust).
fn server_answers(setting: &str, address: &str, protocol: Protocol, tls: bool) -> Outcome {
    let socket = match address.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(socket)) => socket,
        Ok(None) | Err(_) => {
            return (
                Status::Fail(2),
                format!("--{setting} {address:?} is not a host:port this machine can resolve"),
            )
        }
    };
    if socket.port() == 0 {
        return (
            Status::Fail(2),
            format!(
                "--{setting} {address} has port 0 (a free port picked at start): give the \
                 running server's port to check it"
            ),
        );
    }
    let stream = match TcpStream::connect_timeout(&socket, Duration::from_secs(2)) {
        Ok(stream) => stream,
        Err(e) => {
            return (
                Status::Fail(3),
                format!(
                    "no server answers at {address} ({e}): start one with these settings \
                     (`culvert run`), or set --{setting} to its address"
                ),
            )
        }
    };
    if tls {
        return (
            Status::Ok,
            format!("{address} accepts connections (TLS: the handshake is not checked)"),
        );
    }
    drop(stream);
    match protocol {
        Protocol::Grpc => grpc_answers(setting, address),
        Protocol::Http if http_ok(address, "/healthz") => (
            Status::Ok,
            format!("a server answers GET /healthz at {address}"),
        ),
        Protocol::Http => (
            Status::Fail(3),
            format!(
                "{address} accepts connections but GET /healthz does not answer 200: is \
                 --{setting} the server's HTTP address?"
            ),
        ),
    }
}

/// Whether Conduit's gRPC API answers at `address`: InformationService.GetInfo (with the
/// CLI's token and config file, as `culvert info`). A refusal for want of a token is an
/// answer too.
fn grpc_answers(setting: &str, address: &str) -> Outcome {
    use culvert_api::pb::api::v1 as pb;
    use pb::information_service_client::InformationServiceClient;
    let server = crate::client::Server {
        grpc_address: Some(address.to_owned()),
        access: crate::client::Access::default(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return (Status::Fail(1), format!("starting the async runtime: {e}")),
    };
    let answer = runtime.block_on(async {
        let channel = crate::client::connect(&server)
            .await
            .map_err(|e| e.message)?;
        let mut client = InformationServiceClient::new(channel);
        let call = client.get_info(pb::GetInfoRequest {});
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(answer) => Ok(answer),
            Err(_) => Err("no answer to GetInfo within 5s".to_owned()),
        }
    });
    let not_it = |why: String| {
        (
            Status::Fail(3),
            format!(
                "{address} does not serve Conduit's gRPC API ({why}): is --{setting} the \
                 server's gRPC address?"
            ),
        )
    };
    match answer {
        Ok(Ok(reply)) => (
            Status::Ok,
            format!(
                "a server answers gRPC at {address} (version {})",
                reply.into_inner().info.unwrap_or_default().version
            ),
        ),
        Ok(Err(status))
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            (
                Status::Ok,
                format!(
                    "a server answers gRPC at {address} (it wants a token: {})",
                    status.message()
                ),
            )
        }
        Ok(Err(status)) => not_it(crate::client::status_message(&status)),
        Err(why) => not_it(why),
    }
}

/// Whether `GET path` on `address` answers 200.
fn http_ok(address: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Some(socket) = address.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&socket, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let n = stream.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(" 200")
}

/// How long one plugin may take to start and answer its specification.
const SPEC_TIMEOUT: Duration = Duration::from_secs(15);

/// Every standalone connector in `dir` started and asked for its specification, as a
/// server does at start (Conduit's `plugins.standalone_compat`).
fn standalone_compat(dir: &Path) -> Outcome {
    use crate::plugin_install::{read_spec, Kind, Unreadable};
    let mut files: Vec<(PathBuf, String)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter_map(|path| Kind::Connector.installed_name(&path).map(|n| (path, n)))
            .collect(),
        Err(e) => {
            return (
                Status::Warn,
                format!(
                    "no standalone connector plugins to check in {}: {e}",
                    dir.display()
                ),
            )
        }
    };
    if files.is_empty() {
        return (
            Status::Warn,
            format!("{} has no plugin binaries to check", dir.display()),
        );
    }
    files.sort();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return (Status::Fail(1), format!("starting the async runtime: {e}")),
    };
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for (path, name) in &files {
        let answer = runtime.block_on(async {
            tokio::time::timeout(SPEC_TIMEOUT, read_spec(Kind::Connector, path)).await
        });
        match answer {
            Ok(Ok((spec_name, version))) => loaded.push(format!("{spec_name}@{version}")),
            Ok(Err(Unreadable::Io(crate::plugin_install::Failure(_, why))))
            | Ok(Err(Unreadable::NotAPlugin(why))) => failed.push(format!("{name}: {why}")),
            Err(_) => failed.push(format!("{name}: no specification within {SPEC_TIMEOUT:?}")),
        }
    }
    if failed.is_empty() {
        (
            Status::Ok,
            format!(
                "{} standalone connector plugin(s) gave a valid specification: {}",
                loaded.len(),
                loaded.join(", ")
            ),
        )
    } else {
        (
            Status::Fail(1),
            format!(
                "{} of {} standalone connector plugin(s) failed to start and specify \
                 themselves: {}; rebuild them against the current connector protocol, or \
                 remove them from --connectors.path",
                failed.len(),
                files.len(),
                failed.join("; ")
            ),
        )
    }
}

fn plugins_dir(setting: &str, path: &Path, wasm: bool) -> Outcome {
    if !path.exists() {
        return (
            Status::Warn,
            format!(
                "{} does not exist: no standalone plugins load (create it to add some, or set \
                 --{setting})",
                path.display()
            ),
        );
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            return (
                Status::Fail(3),
                format!(
                    "{} cannot be read ({e}): fix its permissions or set --{setting}",
                    path.display()
                ),
            )
        }
    };
    let mut plugins = Vec::new();
    for entry in entries.flatten() {
        let file = entry.path();
        let Ok(meta) = file.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let candidate = if wasm {
            file.extension().is_some_and(|e| e == "wasm")
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            meta.permissions().mode() & 0o111 != 0
        };
        if candidate {
            plugins.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    plugins.sort();
    let kind = if wasm {
        "WASM processor(s)"
    } else {
        "executable connector plugin(s)"
    };
    if plugins.is_empty() {
        (
            Status::Ok,
            format!("{} is readable; no {kind} in it", path.display()),
        )
    } else {
        (
            Status::Ok,
            format!(
                "{} is readable; {} {kind}: {}",
                path.display(),
                plugins.len(),
                plugins.join(", ")
            ),
        )
    }
}

fn disk(path: &Path, db_type: DbType) -> Outcome {
    if db_type == DbType::Inmemory {
        return (Status::Ok, "in memory: no disk needed".to_owned());
    }
    let Some(dir) = existing_ancestor(path) else {
        return (
            Status::Warn,
            format!("{}: cannot resolve the path", path.display()),
        );
    };
    // POSIX `df -Pk`: the 4th field of the 2nd line is the space available, in KiB.
    let output = std::process::Command::new("df")
        .arg("-Pk")
        .arg(&dir)
        .output();
    let available = output.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .nth(1)?
            .split_whitespace()
            .nth(3)?
            .parse::<u64>()
            .ok()
    });
    let Some(kib) = available else {
        return (
            Status::Warn,
            format!("could not measure the free space at {} (df)", dir.display()),
        );
    };
    let mib = kib / 1024;
    let text = format!("{mib} MiB free at {}", dir.display());
    if mib < 100 {
        (
            Status::Fail(3),
            format!("{text}: the store cannot grow; free space or move --db.rocksdb.path"),
        )
    } else if mib < 1024 {
        (
            Status::Warn,
            format!("{text}: little room for the log and dead letters; free some space"),
        )
    } else {
        (Status::Ok, text)
    }
}

fn open_files() -> Outcome {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return (
            Status::Warn,
            "could not read the open-file limit (/proc/self/limits)".to_owned(),
        );
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(str::to_owned);
    match soft.as_deref() {
        Some("unlimited") => (Status::Ok, "open files: unlimited".to_owned()),
        Some(n) => match n.parse::<u64>() {
            Ok(n) if n < 1024 => (
                Status::Warn,
                format!(
                    "open files limited to {n}: RocksDB and many connectors need more; raise \
                     it (`ulimit -n 65536`, or LimitNOFILE= in a systemd unit)"
                ),
            ),
            Ok(n) => (Status::Ok, format!("open files: up to {n}")),
            Err(_) => (Status::Warn, format!("unrecognised open-file limit {n:?}")),
        },
        None => (
            Status::Warn,
            "no open-file limit in /proc/self/limits".to_owned(),
        ),
    }
}
