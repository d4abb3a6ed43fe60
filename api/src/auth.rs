//! Who may call the API, as whom, and how often.
//!
//! Authentication is off by default (a server on loopback trusts its machine). It turns on
//! when the server is given a tokens file (`--api.auth.tokens-file`), a client CA for mutual
//! TLS (`--api.tls.client-ca-file`, see [`crate::tls`]), or both. Then every gRPC method and
//! every HTTP route needs one of them, except the health checks (HTTP `/healthz` and
//! `/readyz`, gRPC `grpc.health.v1.Health`), which load balancers call without credentials:
//!
//! * a **bearer token** (`authorization: Bearer <token>`) whose SHA-256 digest is in the
//!   tokens file. The file holds one `<name> sha256:<hex digest>` line per token (comments
//!   `#`, blank lines fine), so it never holds a token itself; [`create_token`] makes a
//!   random token and appends its line (`culvert tokens create`). A presented token is
//!   hashed and compared with every digest in constant time ([`TokenFile::verify`]).
//! * a **client certificate** signed by the client CA (checked by rustls in the handshake;
//!   an unknown certificate never gets a connection). Its identity is the subject's common
//!   name, or the whole subject when it has none.
//!
//! The identity is the audit actor of every event the call records ([`Identity::actor`]:
//! `token:<name>` or `cert:<subject>`); a client's `culvert-actor` header never replaces
//! it. A client may add a reason (`culvert-reason`, at most [`MAX_REASON_CHARS`]
//! characters, no control characters), recorded beside the actor ([`reason`]).
//!
//! The gRPC server checks credentials in a tower layer (`AuthLayer`), the HTTP server in
//! a middleware; both put the verified identity in the request's extensions
//! ([`Authenticated`]), which only server code can write: the HTTP routes hand it to the
//! in-process gRPC services the same way, never through a header a client could forge.
//!
//! Optionally each identity (or, with authentication off, each peer IP address) gets a
//! token-bucket rate limit (`--api.auth.rate-limit`, `--api.auth.rate-burst`, GCRA from
//! the `governor` crate); over it a call gets `RESOURCE_EXHAUSTED` / HTTP 429.

use crate::error::status_with_info;
use sha2::{Digest as _, Sha256};
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use subtle::ConstantTimeEq as _;
use tonic::{Code, Status};

/// The longest `culvert-reason` accepted, in characters.
pub const MAX_REASON_CHARS: usize = 512;

/// The prefix of every token [`create_token`] makes (so a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "cvt_";

/// What can go wrong reading or writing a tokens file, or loading TLS files.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("reading the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `<name> sha256:<hex>`.
    #[error("{path}:{line}: {problem}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// Two lines have the same name.
    #[error("{path}:{line}: token name {name:?} is already used on line {first}")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The second line with the name.
        line: usize,
        /// The name.
        name: String,
        /// The first line with the name.
        first: usize,
    },
    /// A name given to [`create_token`] is not a valid token name.
    #[error("invalid token name {name:?}: {problem}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// [`create_token`] was asked for a name the file already has.
    #[error("{path} already has a token named {name:?} (names are unique; pick another)")]
    NameTaken {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// The file could not be written.
    #[error("writing the tokens file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate, key or CA file is missing, unreadable or not what it should be.
    #[error("{flag} {path}: {problem}")]
    TlsFile {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The TLS settings do not fit together (e.g. a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// One token of a tokens file: its name and the SHA-256 digest of its value.
#[derive(Clone)]
struct TokenEntry {
    name: String,
    digest: [u8; 32],
}

/// The tokens a server accepts, read from a tokens file. Holds digests only.
#[derive(Clone, Default)]
pub struct TokenFile {
    entries: Vec<TokenEntry>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests are not secrets, but there is nothing to gain from printing them.
        f.debug_struct("TokenFile")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenFile {
    /// Read and parse the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse a tokens file's text (`path` only names it in errors): one `<name>
    /// sha256:<64 hex digits>` per line; `#` starts a comment line; blank lines are skipped.
    pub fn parse(path: &Path, text: &str) -> Result<Self, AuthError> {
        let mut entries: Vec<(usize, TokenEntry)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let bad = |problem: String| AuthError::BadLine {
                path: path.to_owned(),
                line,
                problem,
            };
            let mut fields = content.split_whitespace();
            let (Some(name), Some(hash), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(
                    "want `<name> sha256:<hex digest>` (two fields; comments on lines of their own)"
                        .to_owned(),
                ));
            };
            check_name(name).map_err(|problem| bad(format!("token name {name:?}: {problem}")))?;
            // Never echo the field: a token pasted here by mistake must not reach a log.
            let hex = hash.strip_prefix("sha256:").ok_or_else(|| {
                bad(
                    "the digest must start with `sha256:`; a line holds the token's digest, \
                     never the token (use `culvert tokens create`)"
                        .to_owned(),
                )
            })?;
            let digest = decode_hex(hex).ok_or_else(|| {
                bad(
                    "the digest must be 64 hexadecimal digits (SHA-256); a line holds the \
                     token's digest, never the token (use `culvert tokens create`)"
                        .to_owned(),
                )
            })?;
            if let Some((first, _)) = entries.iter().find(|(_, e)| e.name == name) {
                return Err(AuthError::DuplicateName {
                    path: path.to_owned(),
                    line,
                    name: name.to_owned(),
                    first: *first,
                });
            }
            entries.push((
                line,
                TokenEntry {
                    name: name.to_owned(),
                    digest,
                },
            ));
        }
        Ok(Self {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// The names of the tokens, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the token whose value is `token`, if any. The token is hashed and its
    /// digest compared with every entry's in constant time, without stopping at a match,
    /// so the time taken says nothing about how close a guess was.
    pub fn verify(&self, token: &str) -> Option<&str> {
        let digest = sha256(token);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&digest)) {
                found = Some(entry.name.as_str());
            }
        }
        found
    }
}

/// The line a tokens file holds for `token` under `name`: `<name> sha256:<hex>`.
pub fn token_line(name: &str, token: &str) -> String {
    format!("{name} sha256:{}", encode_hex(&sha256(token)))
}

/// A new random token: [`TOKEN_PREFIX`] and 32 random bytes from the operating system, in
/// URL-safe base64 without padding.
pub fn generate_token() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Make a token named `name` and append its digest line to the tokens file at `path`
/// (created with mode 0600 if missing). Refuses an invalid name, a name the file already
/// has, and a file that does not parse. Returns the token, which is stored nowhere: the
/// caller shows it once.
pub fn create_token(path: &Path, name: &str) -> Result<String, AuthError> {
    use std::io::Write as _;
    check_name(name).map_err(|problem| AuthError::InvalidName {
        name: name.to_owned(),
        problem,
    })?;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if let Some(text) = &existing {
        let file = TokenFile::parse(path, text)?;
        if file.names().any(|n| n == name) {
            return Err(AuthError::NameTaken {
                path: path.to_owned(),
                name: name.to_owned(),
            });
        }
    }
    let token = generate_token();
    let mut text = String::new();
    match &existing {
        None => text.push_str(
            "# Culvert API tokens (--api.auth.tokens-file): `<name> sha256:<SHA-256 of the \
             token>` per line.\n# Made by `culvert tokens create`; the tokens themselves are \
             not kept anywhere.\n",
        ),
        Some(old) if !old.is_empty() && !old.ends_with('\n') => text.push('\n'),
        Some(_) => {}
    }
    text.push_str(&token_line(name, &token));
    text.push('\n');
    let write_error = |source| AuthError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    Ok(token)
}

/// A token name: 1 to 64 of ASCII letters, digits, `.`, `_`, `-` and `@`, starting with a
/// letter or digit (it becomes the actor `token:<name>`).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("may hold only ASCII letters, digits, '.', '_', '-' and '@'");
    }
    Ok(())
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Who a caller proved to be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A bearer token, by its name in the tokens file.
    Token(String),
    /// A client certificate, by its subject's common name (or whole subject).
    Certificate(String),
}

impl Identity {
    /// The audit actor: `token:<name>` or `cert:<subject>`.
    pub fn actor(&self) -> String {
        match self {
            Self::Token(name) => format!("token:{name}"),
            Self::Certificate(subject) => format!("cert:{subject}"),
        }
    }
}

/// The verified identity of a call, in its request extensions. Only this crate makes
/// one (after checking credentials), so a client cannot plant it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(Identity);

impl Authenticated {
    /// Who the caller is.
    pub fn identity(&self) -> &Identity {
        &self.0
    }
}

/// A per-identity rate limit: `per_second` requests a second on average, up to `burst`
/// at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed at once (the bucket's size).
    pub burst: NonZeroU32,
}

/// How the API authenticates and limits its callers.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    /// The accepted bearer tokens (`--api.auth.tokens-file`).
    pub tokens: Option<TokenFile>,
    /// Whether client certificates are verified against a client CA
    /// (`--api.tls.client-ca-file`) and accepted as identities.
    pub client_certificates: bool,
    /// The per-identity rate limit (`--api.auth.rate-limit`), if any.
    pub rate_limit: Option<RateLimit>,
}

type KeyedLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The API's gatekeeper, shared by the gRPC and HTTP servers (so one identity's calls over
/// both count against one rate limit). The default lets everyone in, unlimited.
#[derive(Clone, Default)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tokens: Option<TokenFile>,
    client_certificates: bool,
    limit: Option<(RateLimit, KeyedLimiter)>,
    /// Checks so far; every [`PRUNE_EVERY`] the limiter forgets idle keys.
    checks: AtomicU64,
}

/// How often (in checks) the rate limiter drops keys whose buckets are full again, so
/// that many short-lived peers do not grow it without bound.
const PRUNE_EVERY: u64 = 4096;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.inner.tokens)
            .field("client_certificates", &self.inner.client_certificates)
            .field("rate_limit", &self.inner.limit.as_ref().map(|(l, _)| l))
            .finish()
    }
}

impl Auth {
    /// The gatekeeper for `options`.
    pub fn new(options: AuthOptions) -> Self {
        let limit = options.rate_limit.map(|limit| {
            let quota = governor::Quota::per_second(limit.per_second).allow_burst(limit.burst);
            (limit, governor::RateLimiter::keyed(quota))
        });
        Self {
            inner: Arc::new(Inner {
                tokens: options.tokens,
                client_certificates: options.client_certificates,
                limit,
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// Whether callers must authenticate (a tokens file or a client CA is configured).
    pub fn required(&self) -> bool {
        self.inner.tokens.is_some() || self.inner.client_certificates
    }

    /// The rate limit, if one is set.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.inner.limit.as_ref().map(|(limit, _)| *limit)
    }

    /// Let a call in or refuse it. `authorization` is the raw `authorization` header,
    /// `certificate_subject` the identity of a client certificate the TLS handshake
    /// verified, `peer` the caller's address (the rate-limit key when authentication is
    /// off). With authentication on: a present `authorization` header must hold a valid
    /// bearer token (its identity wins over a certificate's); without one a verified
    /// certificate is enough; with neither the call is refused.
    pub(crate) fn admit(
        &self,
        authorization: Option<&[u8]>,
        certificate_subject: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Option<Authenticated>, Refusal> {
        let identity = if self.required() {
            Some(self.authenticate(authorization, certificate_subject)?)
        } else {
            None
        };
        if let Some((limit, limiter)) = &self.inner.limit {
            let key = match &identity {
                Some(identity) => identity.actor(),
                None => peer.map_or_else(|| "peer:unknown".to_owned(), |ip| format!("ip:{ip}")),
            };
            let checks = self.inner.checks.fetch_add(1, Ordering::Relaxed);
            if checks % PRUNE_EVERY == PRUNE_EVERY - 1 {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            if let Err(not_until) = limiter.check_key(&key) {
                use governor::clock::Clock as _;
                let wait = not_until.wait_time_from(limiter.clock().now());
                return Err(Refusal::RateLimited {
                    who: key,
                    limit: *limit,
                    retry_after: wait,
                });
            }
        }
        Ok(identity.map(Authenticated))
    }

    fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        certificate_subject: Option<&str>,
    ) -> Result<Identity, Refusal> {
        if let Some(header) = authorization {
            let Some(token) = bearer_token(header) else {
                return Err(Refusal::Unauthenticated {
                    reason: "auth.malformed",
                    message: "the authorization header must be `Bearer <token>`".to_owned(),
                });
            };
            let Some(tokens) = &self.inner.tokens else {
                return Err(Refusal::Unauthenticated {
                    reason: "auth.invalid_token",
                    message: "this server accepts no bearer tokens (no --api.auth.tokens-file); \
                              present a client certificate instead"
                        .to_owned(),
                });
            };
            return match tokens.verify(token) {
                Some(name) => Ok(Identity::Token(name.to_owned())),
                None => Err(Refusal::Unauthenticated {
                    reason: "auth.invalid_token",
                    message: "invalid bearer token: it matches no token in the server's tokens \
                              file"
                        .to_owned(),
                }),
            };
        }
        if self.inner.client_certificates {
            if let Some(subject) = certificate_subject {
                return Ok(Identity::Certificate(subject.to_owned()));
            }
        }
        let mut ways = Vec::new();
        if self.inner.tokens.is_some() {
            ways.push(
                "a bearer token (header `authorization: Bearer <token>`; the culvert CLI takes \
                 --token or CULVERT_TOKEN)",
            );
        }
        if self.inner.client_certificates {
            ways.push("a client certificate signed by the server's client CA (over TLS)");
        }
        Err(Refusal::Unauthenticated {
            reason: "auth.missing",
            message: format!("authentication required: send {}", ways.join(", or ")),
        })
    }
}

/// The token of an `authorization: Bearer <token>` header (the scheme in any case).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// Why a call was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No credentials, or wrong ones: UNAUTHENTICATED / HTTP 401.
    Unauthenticated {
        /// The ErrorInfo reason (`auth.missing`, `auth.invalid_token`, `auth.malformed`).
        reason: &'static str,
        /// What to do about it.
        message: String,
    },
    /// Over the rate limit: RESOURCE_EXHAUSTED / HTTP 429.
    RateLimited {
        /// The identity (or `ip:<address>`) whose bucket is empty.
        who: String,
        /// The limit.
        limit: RateLimit,
        /// When the next call would be let in.
        retry_after: Duration,
    },
}

impl Refusal {
    /// The gRPC status to answer.
    pub(crate) fn status(&self) -> Status {
        match self {
            Self::Unauthenticated { reason, message } => {
                status_with_info(Code::Unauthenticated, message.clone(), reason, &[])
            }
            Self::RateLimited {
                who,
                limit,
                retry_after,
            } => {
                let retry_ms = retry_after.as_millis().to_string();
                status_with_info(
                    Code::ResourceExhausted,
                    format!(
                    "rate limit exceeded for {who}: at most {} requests per second, {} at once \
                     (--api.auth.rate-limit, --api.auth.rate-burst); retry in {:.3}s",
                    limit.per_second,
                    limit.burst,
                    retry_after.as_secs_f64()
                ),
                    "auth.rate_limited",
                    &[("retry_after_ms", retry_ms.as_str())],
                )
            }
        }
    }

    /// Whole seconds to put in an HTTP `Retry-After` header (rounded up), if rate limited.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            Self::Unauthenticated { .. } => None,
        }
    }
}

/// The free-text reason a caller gave for a change (`culvert-reason` metadata or header):
/// `None` when absent or blank, trimmed; refused (INVALID_ARGUMENT) when it is not UTF-8,
/// holds a control character, or is longer than [`MAX_REASON_CHARS`].
pub fn reason(value: Option<&[u8]>) -> Result<Option<String>, Status> {
    let Some(bytes) = value else {
        return Ok(None);
    };
    let invalid = |problem: &str| {
        status_with_info(
            Code::InvalidArgument,
            format!("culvert-reason: {problem}"),
            "common.invalid_argument",
            &[("field", "culvert-reason")],
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("must be UTF-8 text"))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            "control characters (newlines, tabs, ...) are not allowed",
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(invalid(&format!(
            "{chars} characters is more than the limit of {MAX_REASON_CHARS}"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// Everything the API servers need to know about security: the gatekeeper and TLS. The
/// default is open (no authentication, no limit) over plain TCP.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// Authentication and rate limit, shared by both servers.
    pub auth: Auth,
    /// TLS for both listeners, if configured.
    pub tls: Option<crate::tls::TlsSettings>,
}

/// Whether every address `address` (`host:port`) resolves to is a loopback address (and
/// it resolves to at least one): what a server may listen on without authentication.
pub fn is_loopback(address: &str) -> std::io::Result<bool> {
    use std::net::ToSocketAddrs as _;
    let mut any = false;
    for resolved in address.to_socket_addrs()? {
        if !resolved.ip().is_loopback() {
            return Ok(false);
        }
        any = true;
    }
    Ok(any)
}

/// The gRPC server's authentication and rate limit, as a tower layer: refuses a call
/// (before any service sees it) or lets it through with its [`Authenticated`] identity
/// in the request extensions. `grpc.health.v1.Health` is always let through.
#[derive(Clone, Debug)]
pub(crate) struct AuthLayer {
    pub(crate) auth: Auth,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone, Debug)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Auth,
}

/// The path prefix of the gRPC health service, open to all.
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

type Answer = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = Answer>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Answer;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PATH) {
            return Box::pin(self.inner.call(request));
        }
        let peer = crate::tls::grpc_peer(request.extensions());
        let admitted = self.auth.admit(
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(http::HeaderValue::as_bytes),
            peer.certificate_subject.as_deref(),
            peer.address.map(|a| a.ip()),
        );
        match admitted {
            Ok(identity) => {
                if let Some(identity) = identity {
                    request.extensions_mut().insert(identity);
                }
                Box::pin(self.inner.call(request))
            }
            Err(refusal) => {
                tracing::debug!(
                    method = %request.uri().path(),
                    peer = ?peer.address,
                    refusal = ?refusal,
                    "gRPC call refused"
                );
                let answer = refusal.status().into_http();
                Box::pin(async move { Ok(answer) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/culvert/tokens";

    fn parse(text: &str) -> Result<TokenFile, AuthError> {
        TokenFile::parse(Path::new(PATH), text)
    }

    fn tokens(pairs: &[(&str, &str)]) -> TokenFile {
        let text: String = pairs
            .iter()
            .map(|(name, token)| token_line(name, token) + "\n")
            .collect();
        parse(&text).unwrap()
    }

    #[test]
    fn a_tokens_file_reads_names_and_digests_skipping_comments_and_blank_lines() {
        let text = format!(
            "# the team's tokens\n\n  {}  \n\t# indented comment\n{}\n",
            token_line("ci", "secret-1"),
            token_line("ann@example.com", "secret-2")
        );
        let file = parse(&text).unwrap();
        assert_eq!(file.names().collect::<Vec<_>>(), ["ci", "ann@example.com"]);
        assert_eq!(file.len(), 2);
        assert_eq!(file.verify("secret-1"), Some("ci"));
        assert_eq!(file.verify("secret-2"), Some("ann@example.com"));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn a_line_holds_the_sha256_of_the_token_in_hex() {
        // printf 'abc' | sha256sum
        assert_eq!(
            token_line("ci", "abc"),
            "ci sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_lines_are_refused_naming_file_and_line() {
        let good = token_line("ci", "t");
        let digest = good.split_once(' ').unwrap().1.to_owned();
        let cases = [
            ("ci".to_owned(), "want `<name> sha256:<hex digest>`"),
            (format!("{good} extra"), "want `<name> sha256:<hex digest>`"),
            ("ci md5:abcd".to_owned(), "must start with `sha256:`"),
            ("ci sha256:abcd".to_owned(), "64 hexadecimal digits"),
            (
                format!("ci sha256:{}", "zz".repeat(32)),
                "64 hexadecimal digits",
            ),
            (
                "ci cvt_plaintexttoken".to_owned(),
                "must start with `sha256:`",
            ),
            (format!("bad/name {digest}"), "token name \"bad/name\""),
            (format!("-ci {digest}"), "must start with a letter or digit"),
        ];
        for (line, expected) in cases {
            let text = format!("# header\n\n{line}\n");
            let error = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{line:?} parsed"));
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{PATH}:3: ")),
                "{line:?}: {message}"
            );
            assert!(message.contains(expected), "{line:?}: {message}");
        }
    }

    #[test]
    fn a_plaintext_token_in_the_file_is_not_echoed_in_the_error() {
        for line in ["ci sha256:cvt_averysecret", "ci cvt_averysecret"] {
            let error = parse(line).err().unwrap().to_string();
            assert!(!error.contains("averysecret"), "{error}");
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let text = format!(
            "{}\n{}\n{}\n",
            token_line("ci", "a"),
            token_line("ops", "b"),
            token_line("ci", "c")
        );
        let error = parse(&text).err().unwrap().to_string();
        assert_eq!(
            error,
            format!("{PATH}:3: token name \"ci\" is already used on line 1")
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_token() {
        let file = tokens(&[("ci", "cvt_right"), ("ops", "cvt_other")]);
        assert_eq!(file.verify("cvt_right"), Some("ci"));
        assert_eq!(file.verify("cvt_other"), Some("ops"));
        for wrong in ["", "cvt_righ", "cvt_right ", "CVT_RIGHT", "cvt_rightx"] {
            assert_eq!(file.verify(wrong), None, "{wrong:?}");
        }
        // The digest itself is not a token.
        let line = token_line("ci", "cvt_right");
        let hex = line.split_once("sha256:").unwrap().1;
        assert_eq!(file.verify(hex), None);
    }

    #[test]
    fn generated_tokens_are_random_prefixed_and_url_safe() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        // 32 bytes in unpadded base64: 43 characters.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(a[TOKEN_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn create_token_appends_a_hashed_line_to_a_private_file_and_refuses_a_taken_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let ci = create_token(&path, "ci").unwrap();
        let ops = create_token(&path, "ops").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&ci) && !text.contains(&ops), "{text}");
        assert!(text.starts_with('#'), "a header comment: {text}");
        let file = TokenFile::load(&path).unwrap();
        assert_eq!(file.names().collect::<Vec<_>>(), ["ci", "ops"]);
        assert_eq!(file.verify(&ci), Some("ci"));
        assert_eq!(file.verify(&ops), Some("ops"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let taken = create_token(&path, "ci").err().unwrap();
        assert!(matches!(taken, AuthError::NameTaken { .. }), "{taken}");
        let invalid = create_token(&path, "has space").err().unwrap();
        assert!(
            matches!(invalid, AuthError::InvalidName { .. }),
            "{invalid}"
        );
        assert_eq!(TokenFile::load(&path).unwrap().len(), 2);
    }

    #[test]
    fn create_token_completes_a_last_line_without_newline_and_refuses_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, token_line("first", "x")).unwrap();
        create_token(&path, "second").unwrap();
        let file = TokenFile::load(&path).unwrap();
        assert_eq!(file.names().collect::<Vec<_>>(), ["first", "second"]);
        std::fs::write(&path, "garbage\n").unwrap();
        let error = create_token(&path, "third").err().unwrap();
        assert!(
            matches!(error, AuthError::BadLine { line: 1, .. }),
            "{error}"
        );
    }

    fn auth(tokens: Option<TokenFile>, client_certificates: bool) -> Auth {
        Auth::new(AuthOptions {
            tokens,
            client_certificates,
            rate_limit: None,
        })
    }

    fn unauthenticated(result: Result<Option<Authenticated>, Refusal>) -> (&'static str, String) {
        match result {
            Err(Refusal::Unauthenticated { reason, message }) => (reason, message),
            other => panic!("not refused as unauthenticated: {other:?}"),
        }
    }

    #[test]
    fn without_auth_configured_everyone_is_let_in_anonymously() {
        let open = Auth::default();
        assert!(!open.required());
        assert_eq!(open.admit(None, None, None), Ok(None));
        assert_eq!(open.admit(Some(b"Bearer whatever"), None, None), Ok(None));
    }

    #[test]
    fn identity_comes_from_the_bearer_token_or_the_certificate() {
        let gate = auth(Some(tokens(&[("ci", "cvt_good")])), true);
        assert!(gate.required());
        let admitted = |header: Option<&[u8]>, subject| {
            gate.admit(header, subject, None)
                .unwrap()
                .unwrap()
                .identity()
                .clone()
        };
        assert_eq!(
            admitted(Some(b"Bearer cvt_good"), None),
            Identity::Token("ci".into())
        );
        assert_eq!(
            admitted(Some(b"bearer   cvt_good "), None),
            Identity::Token("ci".into())
        );
        assert_eq!(
            admitted(None, Some("alice")),
            Identity::Certificate("alice".into())
        );
        // A token given beside a certificate names the caller.
        assert_eq!(
            admitted(Some(b"Bearer cvt_good"), Some("alice")),
            Identity::Token("ci".into())
        );
        assert_eq!(Identity::Token("ci".into()).actor(), "token:ci");
        assert_eq!(Identity::Certificate("alice".into()).actor(), "cert:alice");
    }

    #[test]
    fn missing_wrong_or_malformed_credentials_are_unauthenticated() {
        let gate = auth(Some(tokens(&[("ci", "cvt_good")])), false);
        let (reason, message) = unauthenticated(gate.admit(None, None, None));
        assert_eq!(reason, "auth.missing");
        assert!(message.contains("Bearer <token>"), "{message}");
        assert!(!message.contains("certificate"), "{message}");
        let (reason, _) = unauthenticated(gate.admit(Some(b"Bearer cvt_bad"), None, None));
        assert_eq!(reason, "auth.invalid_token");
        for header in [
            &b"cvt_good"[..],
            b"Basic Y2k6Z29vZA==",
            b"Bearer ",
            b"\xff\xfe",
        ] {
            let (reason, _) = unauthenticated(gate.admit(Some(header), None, None));
            assert_eq!(reason, "auth.malformed", "{header:?}");
        }
        // A certificate counts only when client certificates are configured.
        let (reason, _) = unauthenticated(gate.admit(None, Some("alice"), None));
        assert_eq!(reason, "auth.missing");
        // A wrong token is refused even beside a good certificate.
        let both = auth(Some(tokens(&[("ci", "cvt_good")])), true);
        let (reason, _) = unauthenticated(both.admit(Some(b"Bearer nope"), Some("alice"), None));
        assert_eq!(reason, "auth.invalid_token");
        let (_, message) = unauthenticated(both.admit(None, None, None));
        assert!(message.contains("client certificate"), "{message}");
        let certs_only = auth(None, true);
        let (reason, message) = unauthenticated(certs_only.admit(Some(b"Bearer x"), None, None));
        assert_eq!(reason, "auth.invalid_token");
        assert!(message.contains("no --api.auth.tokens-file"), "{message}");
    }

    #[test]
    fn refusals_map_to_grpc_codes_with_reasons() {
        let status = Refusal::Unauthenticated {
            reason: "auth.missing",
            message: "m".into(),
        }
        .status();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            crate::error::error_info(&status).unwrap().reason,
            "auth.missing"
        );
        let limited = Refusal::RateLimited {
            who: "token:ci".into(),
            limit: RateLimit {
                per_second: NonZeroU32::new(5).unwrap(),
                burst: NonZeroU32::new(10).unwrap(),
            },
            retry_after: Duration::from_millis(1500),
        };
        let status = limited.status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("token:ci"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("--api.auth.rate-limit"));
        assert_eq!(limited.retry_after_secs(), Some(2));
    }

    #[test]
    fn the_rate_limit_is_per_identity_and_per_peer_when_anonymous() {
        let limit = RateLimit {
            // Slow enough that no token comes back while the test runs.
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        };
        let gate = Auth::new(AuthOptions {
            tokens: Some(tokens(&[("a", "cvt_a"), ("b", "cvt_b")])),
            client_certificates: false,
            rate_limit: Some(limit),
        });
        for _ in 0..3 {
            gate.admit(Some(b"Bearer cvt_a"), None, None).unwrap();
        }
        match gate.admit(Some(b"Bearer cvt_a"), None, None) {
            Err(Refusal::RateLimited { who, .. }) => assert_eq!(who, "token:a"),
            other => panic!("not limited: {other:?}"),
        }
        // Another identity has its own bucket.
        gate.admit(Some(b"Bearer cvt_b"), None, None).unwrap();

        let open = Auth::new(AuthOptions {
            rate_limit: Some(limit),
            ..AuthOptions::default()
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            open.admit(None, None, Some(one)).unwrap();
        }
        match open.admit(None, None, Some(one)) {
            Err(Refusal::RateLimited { who, .. }) => assert_eq!(who, "ip:192.0.2.1"),
            other => panic!("not limited: {other:?}"),
        }
        open.admit(None, None, Some(two)).unwrap();
    }

    #[test]
    fn a_reason_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(reason(None).unwrap(), None);
        assert_eq!(reason(Some(b"   ")).unwrap(), None);
        assert_eq!(
            reason(Some(" ticket OPS-12: rotate ".as_bytes())).unwrap(),
            Some("ticket OPS-12: rotate".to_owned())
        );
        assert_eq!(
            reason(Some("größer — ok".as_bytes())).unwrap(),
            Some("größer — ok".to_owned())
        );
        let at_limit = "x".repeat(MAX_REASON_CHARS);
        assert_eq!(reason(Some(at_limit.as_bytes())).unwrap(), Some(at_limit));
        for bad in [
            "x".repeat(MAX_REASON_CHARS + 1).into_bytes(),
            b"line\nbreak".to_vec(),
            b"tab\there".to_vec(),
            b"bell\x07".to_vec(),
            b"\xff".to_vec(),
        ] {
            let status = reason(Some(&bad)).err().unwrap();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(status.message().starts_with("culvert-reason: "));
        }
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        for address in ["127.0.0.1:0", "[::1]:8084", "localhost:8080", "127.1.2.3:1"] {
            assert!(is_loopback(address).unwrap(), "{address}");
        }
        for address in ["0.0.0.0:8080", "[::]:8084", "192.0.2.1:80"] {
            assert!(!is_loopback(address).unwrap(), "{address}");
        }
        assert!(is_loopback("no-port").is_err());
    }

    #[tokio::test]
    async fn the_grpc_layer_refuses_before_the_service_and_passes_the_identity() {
        use tower::{Layer as _, Service as _, ServiceExt as _};
        let gate = auth(Some(tokens(&[("ci", "cvt_good")])), false);
        let inner = tower::service_fn(|request: http::Request<()>| async move {
            let who = request
                .extensions()
                .get::<Authenticated>()
                .map(|a| a.identity().actor())
                .unwrap_or_default();
            let mut answer = http::Response::new(tonic::body::Body::empty());
            answer
                .headers_mut()
                .insert("x-who", http::HeaderValue::from_str(&who).unwrap());
            Ok::<_, std::convert::Infallible>(answer)
        });
        let mut service = AuthLayer { auth: gate }.layer(inner);
        let call = |path: &str, token: Option<&str>| {
            let mut request = http::Request::builder().uri(path);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            request.body(()).unwrap()
        };
        let answer = service
            .ready()
            .await
            .unwrap()
            .call(call("/api.v1.PipelineService/ListPipelines", None))
            .await
            .unwrap();
        let status = Status::from_header_map(answer.headers()).unwrap();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(answer.headers().get("x-who").is_none(), "the service ran");
        let answer = service
            .ready()
            .await
            .unwrap()
            .call(call(
                "/api.v1.PipelineService/ListPipelines",
                Some("cvt_good"),
            ))
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-who"], "token:ci");
        let answer = service
            .ready()
            .await
            .unwrap()
            .call(call("/grpc.health.v1.Health/Check", None))
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-who"], "", "health is open, anonymously");
    }
}
