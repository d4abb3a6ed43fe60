//! How the client verbs (`culvert pipelines ...`, `culvert events tail`, ...) reach a
//! server: its address, a bearer token and TLS, from flags, then `CULVERT_*` (or Conduit's
//! `CONDUIT_*`) environment variables, then the CLI config file, then defaults (for the
//! address: the server config file in the working directory, as Conduit's CLI reads it).
//!
//! The CLI config file (`--cli-config`, default `$XDG_CONFIG_HOME/culvert/cli.yaml` or
//! `~/.config/culvert/cli.yaml`; a missing default file is fine) is YAML with the keys
//! `grpc-address`, `http-address` (for `culvert top`), `token`, `tls-ca-file`,
//! `tls-cert-file` and `tls-key-file` (relative paths are relative to the file). Since it
//! may hold a token, it should be readable by its owner only; the CLI warns otherwise.
//!
//! A connection uses TLS when the address is `https://...` or a CA or client certificate is
//! given (server certificates are verified against the CA file, else the Mozilla roots
//! built in); with a token every call carries `authorization: Bearer <token>`.

use std::path::{Path, PathBuf};
use tonic::codegen::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The default gRPC address of a server.
const DEFAULT_ADDRESS: &str = "127.0.0.1:8084";

/// Where the server is and how to prove who we are (flattened into every client verb).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Server {
    /// Where the server's gRPC API listens: host:port, or https://host:port for TLS
    /// (`grpc-address` in the CLI config file, else `api.grpc.address` in ./culvert.yaml or
    /// Conduit's ./conduit.yaml, else 127.0.0.1:8084). `--api.grpc.address` is Conduit's
    /// name for it.
    #[arg(
        long = "grpc.address",
        alias = "api.grpc.address",
        env = "CULVERT_API_GRPC_ADDRESS"
    )]
    pub grpc_address: Option<String>,
    /// The token, TLS files and CLI config file.
    #[command(flatten)]
    pub access: Access,
}

/// How to prove who we are to a server, over gRPC or HTTP.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Access {
    /// Bearer token for a server that requires authentication (better given through
    /// CULVERT_TOKEN or the CLI config file's `token`, which other users cannot see).
    #[arg(long = "token", env = "CULVERT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CLI config file (YAML keys: grpc-address, http-address, token, tls-ca-file,
    /// tls-cert-file, tls-key-file); default $XDG_CONFIG_HOME/culvert/cli.yaml or
    /// ~/.config/culvert/cli.yaml.
    #[arg(long = "cli-config", env = "CULVERT_CLI_CONFIG")]
    pub cli_config: Option<PathBuf>,
    /// CA certificate(s), PEM, to verify the server's TLS certificate (turns TLS on).
    #[arg(long = "tls-ca-file", env = "CULVERT_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate, PEM, for a server that takes mutual TLS (with --tls-key-file).
    #[arg(long = "tls-cert-file", env = "CULVERT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long = "tls-key-file", env = "CULVERT_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
}

/// A client verb's failure to reach the server: the exit code (2 usage, 3 environment)
/// and what to tell the user.
#[derive(Debug)]
pub struct ClientError {
    /// The exit code.
    pub code: u8,
    /// The message.
    pub message: String,
}

fn usage(message: String) -> ClientError {
    ClientError { code: 2, message }
}

/// A gRPC channel that sends the bearer token (if any) with every call.
pub type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<tonic::metadata::AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The settings after flags, environment and config file are merged.
#[derive(Debug, Default)]
pub struct Settings {
    /// The server's address (gRPC or HTTP, as asked).
    pub address: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The CA file to verify the server's certificate with.
    pub ca_file: Option<PathBuf>,
    /// The client certificate.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key.
    pub key_file: Option<PathBuf>,
}

/// What a CLI config file says.
#[derive(Debug, Default)]
struct FileSettings {
    address: Option<String>,
    http_address: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

impl Server {
    /// Flags (and environment) first, then the config file, then defaults.
    fn settings(&self) -> Result<Settings, ClientError> {
        // The server's own config file in the working directory, as Conduit's CLI reads it.
        let default = match self.grpc_address {
            Some(_) => None,
            None => crate::conduit_config::config_file_grpc_address(),
        };
        let mut settings = self.access.settings(
            self.grpc_address.clone(),
            |file| file.address.take(),
            default.as_deref().unwrap_or(DEFAULT_ADDRESS),
        )?;
        settings.address = crate::conduit_config::dial_address(&settings.address);
        Ok(settings)
    }
}

impl Access {
    /// The settings to reach a server's HTTP API at `address` (a flag's value, else the
    /// config file's `http-address`, else `default`).
    pub fn http_settings(
        &self,
        address: Option<String>,
        default: &str,
    ) -> Result<Settings, ClientError> {
        self.settings(address, |file| file.http_address.take(), default)
    }

    fn settings(
        &self,
        address: Option<String>,
        file_address: impl FnOnce(&mut FileSettings) -> Option<String>,
        default: &str,
    ) -> Result<Settings, ClientError> {
        let mut file = self.config_file()?;
        let from_file = file_address(&mut file);
        let pick = |flag: &Option<PathBuf>, from_file: Option<PathBuf>| flag.clone().or(from_file);
        Ok(Settings {
            address: address.or(from_file).unwrap_or_else(|| default.to_owned()),
            token: self.token.clone().filter(|t| !t.is_empty()).or(file.token),
            ca_file: pick(&self.tls_ca_file, file.ca_file),
            cert_file: pick(&self.tls_cert_file, file.cert_file),
            key_file: pick(&self.tls_key_file, file.key_file),
        })
    }

    /// The CLI config file's settings: none when the default file does not exist; an
    /// error when a file named explicitly is missing or does not parse.
    fn config_file(&self) -> Result<FileSettings, ClientError> {
        let (path, explicit) = match &self.cli_config {
            Some(path) => (path.clone(), true),
            None => match default_config_path() {
                Some(path) => (path, false),
                None => return Ok(FileSettings::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(FileSettings::default())
            }
            Err(e) => {
                return Err(usage(format!(
                    "reading the CLI config file {}: {e}",
                    path.display()
                )))
            }
        };
        warn_if_readable_by_others(&path);
        parse_config(&path, &text)
    }
}

/// `$XDG_CONFIG_HOME/culvert/cli.yaml`, else `$HOME/.config/culvert/cli.yaml`.
fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("culvert").join("cli.yaml"))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: the CLI config file {} is readable by other users; if it holds a \
                 token, chmod 600 it",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The keys of a CLI config file; unknown keys are warned about and ignored.
fn parse_config(path: &Path, text: &str) -> Result<FileSettings, ClientError> {
    use yaml_rust2::Yaml;
    let bad = |problem: String| usage(format!("CLI config file {}: {problem}", path.display()));
    let documents =
        yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;
    let mut settings = FileSettings::default();
    let Some(document) = documents.into_iter().next() else {
        return Ok(settings);
    };
    let map = match document {
        Yaml::Hash(map) => map,
        Yaml::Null => return Ok(settings),
        _ => return Err(bad("want a map of keys to values".to_owned())),
    };
    // Relative file names are relative to the config file.
    let base = path.parent().unwrap_or(Path::new("."));
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            return Err(bad(format!("key {key:?} is not a string")));
        };
        let text = match value {
            Yaml::String(text) | Yaml::Real(text) => text,
            Yaml::Integer(n) => n.to_string(),
            Yaml::Null => continue,
            _ => return Err(bad(format!("{key:?} must be a single value"))),
        };
        let file = || Some(base.join(&text));
        match key {
            "grpc-address" => settings.address = Some(text.clone()).filter(|t| !t.is_empty()),
            "http-address" => settings.http_address = Some(text.clone()).filter(|t| !t.is_empty()),
            "token" => settings.token = Some(text.clone()).filter(|t| !t.is_empty()),
            "tls-ca-file" => settings.ca_file = file(),
            "tls-cert-file" => settings.cert_file = file(),
            "tls-key-file" => settings.key_file = file(),
            other => eprintln!(
                "warning: CLI config file {}: unknown key {other:?} ignored",
                path.display()
            ),
        }
    }
    Ok(settings)
}

/// Connect to the server `server` names, with TLS and a token as configured.
pub async fn connect(server: &Server) -> Result<Channel, ClientError> {
    let settings = server.settings()?;
    let address = settings.address.as_str();
    let wants_tls =
        settings.ca_file.is_some() || settings.cert_file.is_some() || settings.key_file.is_some();
    let uri = if address.contains("://") {
        if wants_tls && address.starts_with("http://") {
            return Err(usage(format!(
                "--grpc.address {address} asks for plain text, but TLS files are given: use \
                 https://"
            )));
        }
        address.to_owned()
    } else if wants_tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    let mut endpoint = tonic::transport::Channel::from_shared(uri.clone())
        .map_err(|e| usage(format!("invalid --grpc.address {address:?}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    if uri.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls_config(&settings)?)
            .map_err(|e| usage(format!("TLS settings: {}", chain(&e))))?;
    }
    let bearer = match settings.token.as_deref() {
        None => None,
        Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
            usage("the token holds characters an HTTP header cannot carry".to_owned())
        })?),
    };
    let channel = endpoint.connect().await.map_err(|e| ClientError {
        code: 3,
        message: format!("cannot reach the server at {address}: {}", chain(&e)),
    })?;
    Ok(InterceptedService::new(channel, Bearer(bearer)))
}

fn tls_config(settings: &Settings) -> Result<ClientTlsConfig, ClientError> {
    let read = |path: &PathBuf, flag: &str| {
        std::fs::read(path).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
    };
    let mut config = ClientTlsConfig::new();
    config = match &settings.ca_file {
        Some(path) => config.ca_certificate(Certificate::from_pem(read(path, "--tls-ca-file")?)),
        None => config.with_webpki_roots(),
    };
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read(cert, "--tls-cert-file")?,
                read(key, "--tls-key-file")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(usage(
                "--tls-cert-file and --tls-key-file go together (a client certificate and its \
                 key)"
                    .to_owned(),
            ))
        }
    }
    Ok(config)
}

/// An error with its sources, `a: b: c` (tonic's own message is just "transport error").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// A failed call's message for the user: the server's, plus how to pass a token when it
/// says UNAUTHENTICATED.
pub fn status_message(status: &tonic::Status) -> String {
    if status.code() == tonic::Code::Unauthenticated {
        format!(
            "{} (hint: the server requires authentication: pass a token with --token or \
             CULVERT_TOKEN, or `token:` in the CLI config file; `culvert tokens create` makes \
             one on the server's side)",
            status.message()
        )
    } else {
        status.message().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_reads_its_keys_relative_to_itself() {
        let path = Path::new("/etc/culvert/cli.yaml");
        let settings = parse_config(
            path,
            "grpc-address: https://culvert.example:8084\ntoken: cvt_abc\ntls-ca-file: ca.pem\n\
             tls-cert-file: /abs/me.pem\ntls-key-file: me.key\n",
        )
        .unwrap();
        assert_eq!(
            settings.address.as_deref(),
            Some("https://culvert.example:8084")
        );
        assert_eq!(settings.token.as_deref(), Some("cvt_abc"));
        assert_eq!(settings.ca_file, Some(PathBuf::from("/etc/culvert/ca.pem")));
        assert_eq!(settings.cert_file, Some(PathBuf::from("/abs/me.pem")));
        assert_eq!(
            settings.key_file,
            Some(PathBuf::from("/etc/culvert/me.key"))
        );
        assert!(parse_config(path, "").unwrap().token.is_none());
        assert!(parse_config(path, "- a\n- b\n").is_err());
        assert!(parse_config(path, "token: [a]\n").is_err());
    }

    #[test]
    fn flags_win_over_the_config_file_and_the_address_has_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cli.yaml");
        std::fs::write(
            &file,
            "token: from-file\ngrpc-address: file:1\nhttp-address: file:3\n",
        )
        .unwrap();
        let mut server = Server::default();
        server.access.cli_config = Some(file.clone());
        let settings = server.settings().unwrap();
        assert_eq!(settings.token.as_deref(), Some("from-file"));
        assert_eq!(settings.address, "file:1");
        let http = server.access.http_settings(None, "default:8080").unwrap();
        assert_eq!(http.address, "file:3");
        assert_eq!(http.token.as_deref(), Some("from-file"));
        let http = server
            .access
            .http_settings(Some("flag:4".into()), "default:8080");
        assert_eq!(http.unwrap().address, "flag:4");
        server.access.token = Some("from-flag".to_owned());
        server.grpc_address = Some("flag:2".to_owned());
        let settings = server.settings().unwrap();
        assert_eq!(settings.token.as_deref(), Some("from-flag"));
        assert_eq!(settings.address, "flag:2");
        server.access.cli_config = Some(dir.path().join("missing.yaml"));
        assert_eq!(server.settings().err().unwrap().code, 2);
    }

    #[test]
    fn unauthenticated_answers_carry_a_hint() {
        let message = status_message(&tonic::Status::unauthenticated("authentication required"));
        assert!(message.starts_with("authentication required"));
        assert!(message.contains("--token") && message.contains("CULVERT_TOKEN"));
        assert_eq!(status_message(&tonic::Status::not_found("x")), "x");
    }
}
