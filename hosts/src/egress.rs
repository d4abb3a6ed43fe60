//! Host-mediated network egress for WASM processors: the host function
//! `conduit.http_request` of Conduit's processor SDK (`egress.Do` in the guest), under
//! Conduit's egress policy.
//!
//! A module has no sockets. It hands the host a `procutils.v1.HTTPRequest` (method, URL,
//! headers, body and optionally the name of a secret); the host checks it against the
//! processor's policy, makes the call itself and hands back a `procutils.v1.HTTPResponse`
//! (status, headers, body), or one of the SDK's error codes (egress disabled, forbidden,
//! invalid request, DNS, timeout, response too large, transport).
//!
//! The policy ([`Policy`]) is deny-all unless both the operator opens a ceiling
//! (`processors.egress.enabled`, optionally bounded by `processors.egress.allow`,
//! `.secret-refs`, `.timeout`, `.max-response-bytes`) and the processor opts in with its
//! host-reserved `sdk.egress.*` settings (which the module never sees); the effective
//! policy is their intersection, resolved per processor instance. A request passes two
//! checks:
//!
//! 1. its scheme, host and port must match an allow-list entry (host names exactly);
//! 2. when connecting, every address the name resolves to is checked and the connection
//!    goes to the checked address (so a name cannot be re-pointed between check and
//!    connect): loopback, private, link-local (cloud metadata), carrier-grade NAT,
//!    multicast, reserved and IPv4-embedding IPv6 addresses are refused unless that exact
//!    address and port is an allow-list entry (e.g. `http://127.0.0.1:11434` for a local
//!    Ollama).
//!
//! Plain HTTP is allowed only to such an address entry. No proxy is ever used, redirects
//! are not followed, `Host`, `Authorization`, `Accept-Encoding` and the connection headers
//! are the host's, header injection is refused, the response body is capped and the call
//! has a time limit. `Authorization` is only ever set by the host, from a secret the
//! processor was granted (read from the environment variable `CONDUIT_SECRET_<NAME>`), so
//! the credential never enters the module's memory.

mod ipguard;
mod policy;
mod service;

pub use ipguard::{refuse, Reason};
pub use policy::{
    parameters, parse_allowlist, parse_entry, strip_reserved, AllowEntry, Policy, Scheme,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, KEY_ALLOW, KEY_MAX_RESPONSE_BYTES,
    KEY_SECRET_REFS, KEY_TIMEOUT, RESERVED_PREFIX,
};
pub use service::{Failure, Service, SECRET_ENV_PREFIX};

/// The SDK's error codes for `http_request` (`pprocutils.ErrorCodeHTTP*`, after the
/// schema codes in the same `MaxUint32 - iota` band).
pub mod code {
    /// Egress is not enabled for this processor.
    pub const EGRESS_DISABLED: u32 = u32::MAX - 9;
    /// The destination (host, port, scheme or resolved address) is not allowed.
    pub const FORBIDDEN: u32 = u32::MAX - 10;
    /// A malformed request (method, URL, scheme, header, secret).
    pub const INVALID_REQUEST: u32 = u32::MAX - 11;
    /// The host name did not resolve.
    pub const DNS: u32 = u32::MAX - 12;
    /// The call took longer than its time limit.
    pub const TIMEOUT: u32 = u32::MAX - 13;
    /// The response body is larger than the cap.
    pub const RESPONSE_TOO_LARGE: u32 = u32::MAX - 14;
    /// The connection failed (refused, reset, TLS).
    pub const TRANSPORT: u32 = u32::MAX - 15;
}

/// The messages of `http_request` (the SDK's `procutils.v1` `http.proto`: names and field
/// numbers must match it).
pub mod wire {
    /// A header and its values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpHeader {
        /// The header's name.
        #[prost(string, tag = "1")]
        pub key: String,
        /// Its values.
        #[prost(string, repeated, tag = "2")]
        pub values: Vec<String>,
    }

    /// What the module asks the host to send.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpRequest {
        /// The method (empty: GET).
        #[prost(string, tag = "1")]
        pub method: String,
        /// The URL (`https://…`, or `http://` to an allow-listed private address).
        #[prost(string, tag = "2")]
        pub url: String,
        /// The headers.
        #[prost(message, repeated, tag = "3")]
        pub headers: Vec<HttpHeader>,
        /// The body.
        #[prost(bytes = "vec", tag = "4")]
        pub body: Vec<u8>,
        /// The name of a secret the host sends as the `Authorization` header.
        #[prost(string, tag = "5")]
        pub auth_secret_ref: String,
    }

    /// The answer the host hands back.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpResponse {
        /// The HTTP status.
        #[prost(int32, tag = "1")]
        pub status_code: i32,
        /// The end-to-end response headers.
        #[prost(message, repeated, tag = "2")]
        pub headers: Vec<HttpHeader>,
        /// The whole body.
        #[prost(bytes = "vec", tag = "3")]
        pub body: Vec<u8>,
    }
}
