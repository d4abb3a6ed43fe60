//! The server's API security settings (`--api.auth.*`, `--api.tls.*`), the rule that an
//! API reachable from other machines needs authentication, and the `culvert tokens`
//! verbs that manage a tokens file. What the settings do is `culvert_api::auth`'s and
//! `culvert_api::tls`'s; see docs/security.md.

use anyhow::Context as _;
use culvert_api::auth::{self, Auth, AuthOptions, RateLimit, Security, TokenFile};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

/// `culvert run`'s security flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SecurityArgs {
    /// Bearer tokens file (`<name> sha256:<hex>` lines, made by `culvert tokens create`):
    /// every API call then needs `Authorization: Bearer <token>` (or a client certificate),
    /// except /healthz, /readyz and gRPC health.
    #[arg(long = "api.auth.tokens-file", env = "CULVERT_API_AUTH_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// DANGEROUS: serve the API on a non-loopback address without authentication (anyone
    /// who reaches the port can read and change every pipeline). Only for a network you
    /// trust completely.
    #[arg(
        long = "api.auth.allow-unauthenticated",
        env = "CULVERT_API_AUTH_ALLOW_UNAUTHENTICATED",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub allow_unauthenticated: bool,
    /// Requests per second each caller (token, certificate, or with authentication off
    /// each client IP address) may make on average, over gRPC and HTTP together (0: no
    /// limit). Over it: RESOURCE_EXHAUSTED / HTTP 429.
    #[arg(
        long = "api.auth.rate-limit",
        env = "CULVERT_API_AUTH_RATE_LIMIT",
        default_value_t = 0
    )]
    pub rate_limit: u32,
    /// Requests a caller may make at once before the rate limit applies (default: the
    /// rate limit, one second's worth).
    #[arg(long = "api.auth.rate-burst", env = "CULVERT_API_AUTH_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// The API's TLS certificate chain (PEM); with --api.tls.key-file both the gRPC and
    /// the HTTP API serve TLS only.
    #[arg(long = "api.tls.cert-file", env = "CULVERT_API_TLS_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM) of --api.tls.cert-file.
    #[arg(long = "api.tls.key-file", env = "CULVERT_API_TLS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) for mutual TLS: a client certificate they signed is an
    /// identity (`cert:<common name>`), an unknown one is refused in the handshake. Needs
    /// --api.tls.cert-file and --api.tls.key-file.
    #[arg(
        long = "api.tls.client-ca-file",
        env = "CULVERT_API_TLS_CLIENT_CA_FILE"
    )]
    pub client_ca_file: Option<PathBuf>,
}

impl SecurityArgs {
    /// Read the tokens file and the TLS files and check that the settings fit together,
    /// and that an API on a non-loopback address has authentication (or the explicit
    /// escape hatch). Every error says which flag to fix and how.
    pub fn load(&self, grpc_address: &str, http_address: &str) -> anyhow::Result<Security> {
        let tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(culvert_api::TlsSettings::load(
                cert,
                key,
                self.client_ca_file.as_deref(),
            )?),
            (None, None) => {
                if self.client_ca_file.is_some() {
                    anyhow::bail!(
                        "--api.tls.client-ca-file needs --api.tls.cert-file and \
                         --api.tls.key-file: mutual TLS is TLS with the server's own \
                         certificate"
                    );
                }
                None
            }
            _ => anyhow::bail!(
                "--api.tls.cert-file and --api.tls.key-file go together (the server's \
                 certificate and its private key)"
            ),
        };
        let tokens = match &self.tokens_file {
            None => None,
            Some(path) => {
                let tokens = TokenFile::load(path)?;
                if tokens.is_empty() {
                    tracing::warn!(
                        path = %path.display(),
                        "the tokens file holds no token: every bearer token is refused \
                         (add one with `culvert tokens create NAME --tokens-file {}` and \
                         restart)",
                        path.display()
                    );
                }
                Some(tokens)
            }
        };
        let rate_limit = match (NonZeroU32::new(self.rate_limit), self.rate_burst) {
            (None, None) => None,
            (None, Some(_)) => {
                anyhow::bail!("--api.auth.rate-burst needs --api.auth.rate-limit (above 0)")
            }
            (Some(per_second), burst) => Some(RateLimit {
                per_second,
                burst: match burst {
                    None => per_second,
                    Some(b) => {
                        NonZeroU32::new(b).context("--api.auth.rate-burst must be at least 1")?
                    }
                },
            }),
        };
        let security = Security {
            auth: Auth::new(AuthOptions {
                tokens,
                client_certificates: tls.as_ref().is_some_and(|t| t.client_certificates()),
                rate_limit,
            }),
            tls,
        };
        self.check_exposure(&security, grpc_address, http_address)?;
        Ok(security)
    }

    /// An API on a non-loopback address needs authentication, unless
    /// `--api.auth.allow-unauthenticated` says otherwise.
    fn check_exposure(
        &self,
        security: &Security,
        grpc_address: &str,
        http_address: &str,
    ) -> anyhow::Result<()> {
        let listeners = [
            ("gRPC", "--api.grpc.address", grpc_address),
            ("HTTP", "--api.http.address", http_address),
        ];
        // An address that does not resolve counts as exposed (binding it fails anyway).
        let exposed: Vec<String> = listeners
            .iter()
            .filter(|(_, _, address)| !auth::is_loopback(address).unwrap_or(false))
            .map(|(api, flag, address)| format!("the {api} API on {address} ({flag})"))
            .collect();
        if exposed.is_empty() {
            return Ok(());
        }
        if security.auth.required() {
            if security.tls.is_none() {
                tracing::warn!(
                    "bearer tokens cross the network in clear text: {} without TLS; turn it \
                     on with --api.tls.cert-file and --api.tls.key-file",
                    exposed.join(" and ")
                );
            }
            return Ok(());
        }
        if self.allow_unauthenticated {
            tracing::warn!(
                "serving {} WITHOUT AUTHENTICATION (--api.auth.allow-unauthenticated): anyone \
                 who can reach it can read and change every pipeline",
                exposed.join(" and ")
            );
            return Ok(());
        }
        anyhow::bail!(
            "refusing to serve {} without authentication: these are not loopback addresses, \
             so anyone who can reach them could read and change every pipeline.\n\
             Turn authentication on, with bearer tokens:\n  \
             1. culvert tokens create NAME --tokens-file /etc/culvert/tokens   (prints the \
             token once; keep it)\n  \
             2. culvert run --api.auth.tokens-file /etc/culvert/tokens ...   (or \
             CULVERT_API_AUTH_TOKENS_FILE)\n  \
             clients then send `Authorization: Bearer <token>` (the culvert CLI: CULVERT_TOKEN \
             or --token), and TLS keeps tokens off the wire: --api.tls.cert-file and \
             --api.tls.key-file;\n\
             and/or with mutual TLS: --api.tls.cert-file, --api.tls.key-file and \
             --api.tls.client-ca-file (clients present a certificate the CA signed).\n\
             Or listen on loopback only (--api.grpc.address 127.0.0.1:8084, --api.http.address \
             127.0.0.1:8080). To serve without authentication anyway, on a network you trust \
             completely, add --api.auth.allow-unauthenticated (dangerous). See \
             docs/security.md.",
            exposed.join(" and ")
        )
    }
}

/// One line for the start-up log: how the API is protected.
pub fn describe(security: &Security) -> String {
    let auth = &security.auth;
    let mut parts = Vec::new();
    parts.push(if auth.required() {
        "authentication required"
    } else {
        "no authentication"
    });
    parts.push(match &security.tls {
        Some(tls) if tls.client_certificates() => "TLS with client certificates",
        Some(_) => "TLS",
        None => "plain text",
    });
    let limit = auth.rate_limit().map(|l| {
        format!(
            "rate limit {} requests/s per caller (burst {})",
            l.per_second, l.burst
        )
    });
    let mut text = parts.join(", ");
    if let Some(limit) = limit {
        text.push_str(", ");
        text.push_str(&limit);
    }
    text
}

/// `culvert tokens ...`
#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Make a random token, append its SHA-256 digest under NAME to the tokens file
    /// (created with mode 0600 if missing) and print the token, once. A running server
    /// reads the file when it starts.
    ///
    /// Example: culvert tokens create ci --tokens-file /etc/culvert/tokens
    Create {
        /// The token's name: the audit actor is `token:NAME` (letters, digits, . _ - @).
        name: String,
        #[command(flatten)]
        file: TokensFile,
    },
    /// List the names of a tokens file's tokens (one a line; `-o json|yaml`: a list of
    /// `{name}`).
    ///
    /// Example: culvert tokens ls --tokens-file /etc/culvert/tokens -o json
    Ls {
        #[command(flatten)]
        file: TokensFile,
        #[command(flatten)]
        output: crate::cli::Output,
    },
}

/// The tokens file a `tokens` verb works on.
#[derive(clap::Args, Debug)]
pub struct TokensFile {
    /// The tokens file (the server's --api.auth.tokens-file).
    #[arg(long = "tokens-file", env = "CULVERT_API_AUTH_TOKENS_FILE")]
    pub tokens_file: PathBuf,
}

/// Run a `tokens` verb: exit 0, or 2 with the problem (a bad name, a taken name, a file
/// that does not parse), or 3 when the file cannot be read or written.
pub fn run_tokens(command: TokensCommand) -> ExitCode {
    let result = match command {
        TokensCommand::Create { name, file } => {
            auth::create_token(&file.tokens_file, &name).map(|token| {
                println!("{token}");
                eprintln!(
                    "token {name:?} added to {}; it is shown only this once, keep it somewhere \
                     safe. Clients send it as `Authorization: Bearer <token>` (the culvert \
                     CLI: CULVERT_TOKEN or --token); a running server reads the file when it \
                     starts.",
                    file.tokens_file.display()
                );
            })
        }
        TokensCommand::Ls { file, output } => match TokenFile::load(&file.tokens_file) {
            Ok(tokens) => return list_tokens(&tokens, output.format()),
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let code = match error {
                auth::AuthError::Read { .. } | auth::AuthError::Write { .. } => 3,
                _ => 2,
            };
            ExitCode::from(code)
        }
    }
}

/// `tokens ls`: the names, one a line, or as a list of `{name}` in JSON or YAML.
fn list_tokens(tokens: &TokenFile, format: crate::cli::OutputFormat) -> ExitCode {
    let names: Vec<_> = tokens
        .names()
        .map(|name| serde_json::json!({ "name": name }))
        .collect();
    match crate::cli::print_value(format, &names) {
        Ok(true) => {}
        Ok(false) => {
            for name in tokens.names() {
                println!("{name}");
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
