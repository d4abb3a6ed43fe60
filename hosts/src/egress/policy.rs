//! Egress policies: allow-list entries, the per-processor opt-in (`sdk.egress.*`
//! settings), the operator's ceiling (`processors.egress.*`) and how the two combine.

use super::ipguard;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// The per-call time limit when neither the processor nor the ceiling sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body buffered for the guest when none is set (4 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// Processor setting: the processor's allow-list (its presence opts it in).
pub const KEY_ALLOW: &str = "sdk.egress.allow";
/// Processor setting: its per-call time limit (a duration, e.g. `30s`).
pub const KEY_TIMEOUT: &str = "sdk.egress.timeout";
/// Processor setting: the largest response body, in bytes.
pub const KEY_MAX_RESPONSE_BYTES: &str = "sdk.egress.maxResponseBytes";
/// Processor setting: the secrets it may name for an injected `Authorization` header.
pub const KEY_SECRET_REFS: &str = "sdk.egress.secretRefs";
/// The host-reserved namespace of processor settings (never passed to the module).
pub const RESERVED_PREFIX: &str = "sdk.egress.";

/// URL schemes egress supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// Plain HTTP: only for an allow-listed private or loopback address.
    Http,
    /// HTTPS (the default).
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// One allow-list entry: a scheme, an exact host (a lowercase name or an address) and a
/// port. An address entry also lets a connection to exactly that address and port
/// through the dial-time check when the address is in a refused range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// The scheme.
    pub scheme: Scheme,
    /// The host as written (lowercase, without IPv6 brackets).
    pub host: String,
    /// The port (the scheme's default when none was written).
    pub port: u16,
    /// Set when the host is an address.
    pub ip: Option<IpAddr>,
}

impl std::fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        match self.ip {
            Some(IpAddr::V6(_)) => write!(f, "{scheme}://[{}]:{}", self.host, self.port),
            _ => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

/// Addresses compare as Conduit's do: an IPv4-mapped IPv6 address equals its IPv4 one.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Parse one entry: `host`, `host:port`, `https://host[:port]` or `http://address[:port]`
/// (plain HTTP only to a private or loopback address). No wildcards, no paths.
pub fn parse_entry(raw: &str) -> Result<AllowEntry, String> {
    let text = raw.trim().to_lowercase();
    if text.is_empty() {
        return Err("empty allowlist entry".into());
    }
    if text.contains('*') {
        return Err(format!(
            "wildcard allowlist entries are not permitted: {raw:?}"
        ));
    }
    let (scheme, rest) = match text.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some(("http", rest)) => (Scheme::Http, rest),
        Some((other, _)) => {
            return Err(format!(
                "unsupported scheme {other:?} in allowlist entry {raw:?}"
            ))
        }
        None => (Scheme::Https, text.as_str()),
    };
    let (host_port, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err(format!("allowlist entry {raw:?} must not contain a path"));
    }
    let (host, port) = split_host_port(host_port)
        .ok_or_else(|| format!("invalid allowlist entry {raw:?}: bad host or port"))?;
    if host.is_empty() {
        return Err(format!("allowlist entry {raw:?} has no host"));
    }
    let port = port.unwrap_or(scheme.default_port());
    let ip: Option<IpAddr> = host.parse().ok();
    if scheme == Scheme::Http {
        match ip {
            Some(ip) if ipguard::refuse(ip).is_some() => {}
            Some(_) => {
                return Err(format!(
                    "http scheme in allowlist entry {raw:?} is only permitted for a \
                     private/loopback target"
                ))
            }
            None => {
                return Err(format!(
                    "http scheme in allowlist entry {raw:?} is only permitted for a \
                     private/loopback IP literal"
                ))
            }
        }
    }
    Ok(AllowEntry {
        scheme,
        host: host.to_owned(),
        port,
        ip,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address: the host (without
/// brackets) and the port if one was written; `None` when malformed.
pub(crate) fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match text.matches(':').count() {
        0 => Some((text, None)),
        1 => {
            let (host, port) = text.split_once(':')?;
            Some((host, Some(port.parse().ok()?)))
        }
        // An IPv6 address without brackets (and so without a port).
        _ => text
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|_| (text, None)),
    }
}

/// Split a list setting on commas and whitespace.
pub fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split([',', ' ', '\t', '\n']).filter(|s| !s.is_empty())
}

/// Parse a comma- or whitespace-separated allow-list.
pub fn parse_allowlist(raw: &str) -> Result<Vec<AllowEntry>, String> {
    split_list(raw).map(parse_entry).collect()
}

/// An egress policy: a processor's effective one, or the operator's ceiling. The default
/// is deny-all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Whether egress is open at all.
    pub enabled: bool,
    /// The destinations allowed (for a ceiling, empty with `enabled`: any).
    pub allowlist: Vec<AllowEntry>,
    /// The secrets the processor may name for an injected `Authorization` header.
    pub secret_refs: BTreeSet<String>,
    /// The per-call time limit (zero: the default; for a ceiling, no cap).
    pub timeout: Duration,
    /// The largest response body (zero: the default; for a ceiling, no cap).
    pub max_response_bytes: u64,
}

impl Policy {
    /// Deny-all: every call is refused as "egress disabled".
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The operator's ceiling, from the `processors.egress.*` settings. The allow-list is
    /// parsed even when egress is not enabled, so a typo fails the start.
    pub fn ceiling(
        enabled: bool,
        allow: &[String],
        secret_refs: &[String],
        timeout: Duration,
        max_response_bytes: u64,
    ) -> Result<Self, String> {
        let allowlist = parse_allowlist(&allow.join(","))
            .map_err(|e| format!("\"processors.egress.allow\" config value is invalid: {e}"))?;
        if !enabled {
            return Ok(Self::deny_all());
        }
        Ok(Self {
            enabled: true,
            allowlist,
            secret_refs: secret_refs
                .iter()
                .flat_map(|s| split_list(s))
                .map(str::to_owned)
                .collect(),
            timeout,
            max_response_bytes,
        })
    }

    /// What a processor's `sdk.egress.*` settings ask for (not yet clamped by the
    /// ceiling). Without `sdk.egress.allow` the processor does not opt in: deny-all.
    /// Errors name the setting.
    pub fn requested<'a>(
        mut setting: impl FnMut(&str) -> Option<&'a str>,
    ) -> Result<Self, (&'static str, String)> {
        let allow = setting(KEY_ALLOW).map(str::trim).unwrap_or_default();
        if allow.is_empty() {
            return Ok(Self::deny_all());
        }
        let allowlist = parse_allowlist(allow).map_err(|e| (KEY_ALLOW, e))?;
        let mut policy = Self {
            enabled: true,
            allowlist,
            secret_refs: BTreeSet::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        };
        if let Some(text) = setting(KEY_TIMEOUT)
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            policy.timeout = culvert_plugins::spec::parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| (KEY_TIMEOUT, format!("invalid duration {text:?}")))?;
        }
        if let Some(text) = setting(KEY_MAX_RESPONSE_BYTES)
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            policy.max_response_bytes = text
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0 && *n <= i64::MAX as u64)
                .ok_or_else(|| (KEY_MAX_RESPONSE_BYTES, format!("invalid size {text:?}")))?;
        }
        if let Some(text) = setting(KEY_SECRET_REFS) {
            policy.secret_refs = split_list(text).map(str::to_owned).collect();
        }
        Ok(policy)
    }

    /// The effective policy of a processor that asks for `self` under `ceiling`, and the
    /// entries the ceiling dropped (to warn about). A closed ceiling gives deny-all; an
    /// open one with no allow-list honours the processor's list; otherwise the list is
    /// the intersection. The ceiling's time and size limits only tighten; its secret
    /// grants, when it has any (always, with an allow-list), bound the processor's.
    pub fn resolve(&self, ceiling: &Policy) -> (Policy, Vec<AllowEntry>) {
        if !self.enabled {
            return (Self::deny_all(), vec![]);
        }
        if !ceiling.enabled {
            return (Self::deny_all(), self.allowlist.clone());
        }
        let mut effective = Policy {
            enabled: true,
            allowlist: vec![],
            secret_refs: self.secret_refs.clone(),
            timeout: if self.timeout.is_zero() {
                DEFAULT_TIMEOUT
            } else {
                self.timeout
            },
            max_response_bytes: if self.max_response_bytes == 0 {
                DEFAULT_MAX_RESPONSE_BYTES
            } else {
                self.max_response_bytes
            },
        };
        if !ceiling.timeout.is_zero() {
            effective.timeout = effective.timeout.min(ceiling.timeout);
        }
        if ceiling.max_response_bytes > 0 {
            effective.max_response_bytes =
                effective.max_response_bytes.min(ceiling.max_response_bytes);
        }
        let granted = |refs: &BTreeSet<String>| {
            refs.intersection(&ceiling.secret_refs)
                .cloned()
                .collect::<BTreeSet<_>>()
        };
        if ceiling.allowlist.is_empty() {
            effective.allowlist = self.allowlist.clone();
            if !ceiling.secret_refs.is_empty() {
                effective.secret_refs = granted(&self.secret_refs);
            }
            return (effective, vec![]);
        }
        effective.secret_refs = granted(&self.secret_refs);
        let mut dropped = Vec::new();
        for entry in &self.allowlist {
            let permitted = ceiling
                .allowlist
                .iter()
                .any(|c| c.scheme == entry.scheme && c.host == entry.host && c.port == entry.port);
            if permitted {
                effective.allowlist.push(entry.clone());
            } else {
                dropped.push(entry.clone());
            }
        }
        (effective, dropped)
    }

    /// The coarse check before anything is resolved: does the request's scheme, host and
    /// port match an entry (names exactly, addresses as addresses)?
    pub fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let host = host.to_lowercase();
        let requested_ip: Option<IpAddr> = host.parse().ok();
        self.allowlist.iter().any(|entry| {
            entry.scheme == scheme
                && entry.port == port
                && match (entry.ip, requested_ip) {
                    (Some(allowed), Some(requested)) => same_ip(allowed, requested),
                    (Some(_), None) => false,
                    (None, _) => entry.host == host,
                }
        })
    }

    /// Whether a connection to exactly this address and port is explicitly allow-listed
    /// (which lets it through even in a refused range): the pair, never the address alone.
    pub fn carves_out(&self, ip: IpAddr, port: u16) -> bool {
        self.allowlist
            .iter()
            .any(|entry| entry.port == port && entry.ip.is_some_and(|a| same_ip(a, ip)))
    }

    /// Whether a connection to `ip:port` is allowed; `Err(reason)` when refused.
    pub fn check_dial(&self, ip: IpAddr, port: u16) -> Result<(), ipguard::Reason> {
        match ipguard::refuse(ip) {
            Some(reason) if !self.carves_out(ip, port) => Err(reason),
            _ => Ok(()),
        }
    }
}

/// The host-reserved `sdk.egress.*` settings as parameters, so that a standalone
/// processor's settings, checked against its specification, may carry them (the host
/// reads and removes them; the module never sees them). No defaults: an absent
/// `sdk.egress.allow` means not opted in.
pub fn parameters() -> Vec<culvert_plugins::spec::Parameter> {
    use culvert_plugins::spec::{Parameter, ParameterType};
    vec![
        Parameter::new(
            KEY_ALLOW,
            ParameterType::String,
            "Host-reserved: opt this processor into HTTP egress through the host, to these \
             destinations (host[:port], https://host[:port] or http://private-address[:port], \
             comma-separated), within the server's processors.egress.* ceiling.",
        ),
        Parameter::new(
            KEY_TIMEOUT,
            ParameterType::Duration,
            "Host-reserved: the per-call egress time limit (default 30s).",
        ),
        Parameter::new(
            KEY_MAX_RESPONSE_BYTES,
            ParameterType::Int,
            "Host-reserved: the largest egress response body, in bytes (default 4194304).",
        ),
        Parameter::new(
            KEY_SECRET_REFS,
            ParameterType::String,
            "Host-reserved: secrets this processor may name for the host to send as the \
             Authorization header (comma-separated; values from CONDUIT_SECRET_<NAME>).",
        ),
    ]
}

/// Remove the host-reserved `sdk.egress.*` settings (before the module sees them).
pub fn strip_reserved(settings: &mut culvert_plugins::Settings) {
    settings.retain(|key, _| !key.starts_with(RESERVED_PREFIX));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> AllowEntry {
        parse_entry(text).unwrap()
    }

    fn requested(pairs: &[(&str, &str)]) -> Result<Policy, (&'static str, String)> {
        Policy::requested(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
    }

    fn ceiling(allow: &[&str]) -> Policy {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Policy::ceiling(true, &allow, &[], Duration::ZERO, 0).unwrap()
    }

    #[test]
    fn entries_parse_with_defaults() {
        let e = entry("API.OpenAI.com");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.ip),
            (Scheme::Https, "api.openai.com", 443, None)
        );
        let e = entry("https://api.example.com:8443/");
        assert_eq!((e.host.as_str(), e.port), ("api.example.com", 8443));
        let e = entry("http://127.0.0.1:11434");
        assert_eq!((e.scheme, e.port), (Scheme::Http, 11434));
        assert_eq!(e.ip, Some("127.0.0.1".parse().unwrap()));
        let e = entry("http://[::1]");
        assert_eq!((e.host.as_str(), e.port), ("::1", 80));
        let e = entry("fd00::1");
        assert_eq!((e.host.as_str(), e.port), ("fd00::1", 443));
        let e = entry("[fd00::1]:9000");
        assert_eq!((e.host.as_str(), e.port), ("fd00::1", 9000));
    }

    #[test]
    fn bad_entries_are_refused() {
        for (text, why) in [
            ("", "empty"),
            ("*.example.com", "wildcard"),
            ("ftp://example.com", "unsupported scheme"),
            ("https://example.com/v1", "path"),
            ("http://example.com", "IP literal"),
            ("http://8.8.8.8", "private/loopback target"),
            ("example.com:http", "bad host or port"),
            ("example.com:70000", "bad host or port"),
            ("https://:443", "no host"),
        ] {
            let error = parse_entry(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        assert_eq!(parse_allowlist("a.com, b.com\tc.com").unwrap().len(), 3);
    }

    #[test]
    fn matching_is_exact_on_scheme_host_and_port() {
        let policy = requested(&[(KEY_ALLOW, "api.example.com,http://127.0.0.1:8080")]).unwrap();
        assert!(policy.matches(Scheme::Https, "API.example.com", 443));
        assert!(!policy.matches(Scheme::Https, "api.example.com", 8443));
        assert!(!policy.matches(Scheme::Http, "api.example.com", 443));
        assert!(!policy.matches(Scheme::Https, "evil.api.example.com", 443));
        assert!(!policy.matches(Scheme::Https, "example.com", 443));
        assert!(policy.matches(Scheme::Http, "127.0.0.1", 8080));
        assert!(policy.matches(Scheme::Http, "::ffff:127.0.0.1", 8080));
        assert!(!policy.matches(Scheme::Http, "127.0.0.1", 6379));
        assert!(!policy.matches(Scheme::Http, "localhost", 8080));
    }

    #[test]
    fn the_dial_check_refuses_private_addresses_but_the_exact_allowed_pair() {
        let policy = requested(&[(KEY_ALLOW, "api.example.com,http://127.0.0.1:11434")]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(policy.check_dial(ip("8.8.8.8"), 443), Ok(()));
        assert_eq!(policy.check_dial(ip("127.0.0.1"), 11434), Ok(()));
        assert_eq!(policy.check_dial(ip("::ffff:127.0.0.1"), 11434), Ok(()));
        assert_eq!(
            policy.check_dial(ip("127.0.0.1"), 6379),
            Err("v4_loopback_or_any")
        );
        assert_eq!(
            policy.check_dial(ip("127.0.0.2"), 11434),
            Err("v4_loopback_or_any")
        );
        // A name allowed by name that resolves somewhere private is refused.
        assert_eq!(policy.check_dial(ip("10.0.0.5"), 443), Err("v4_private"));
        assert_eq!(
            policy.check_dial(ip("169.254.169.254"), 443),
            Err("v4_link_local_or_metadata")
        );
    }

    #[test]
    fn processor_settings_opt_in_and_are_checked() {
        assert_eq!(requested(&[]).unwrap(), Policy::deny_all());
        assert_eq!(requested(&[(KEY_ALLOW, "  ")]).unwrap(), Policy::deny_all());
        let policy = requested(&[
            (KEY_ALLOW, "a.com"),
            (KEY_TIMEOUT, "5s"),
            (KEY_MAX_RESPONSE_BYTES, "1024"),
            (KEY_SECRET_REFS, "openai_key, other"),
        ])
        .unwrap();
        assert!(policy.enabled);
        assert_eq!(policy.timeout, Duration::from_secs(5));
        assert_eq!(policy.max_response_bytes, 1024);
        assert_eq!(policy.secret_refs.len(), 2);
        let defaults = requested(&[(KEY_ALLOW, "a.com")]).unwrap();
        assert_eq!(defaults.timeout, DEFAULT_TIMEOUT);
        assert_eq!(defaults.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        for (key, value) in [
            (KEY_ALLOW, "*.a.com"),
            (KEY_TIMEOUT, "soon"),
            (KEY_TIMEOUT, "0s"),
            (KEY_MAX_RESPONSE_BYTES, "-1"),
            (KEY_MAX_RESPONSE_BYTES, "0"),
        ] {
            let pairs = [(KEY_ALLOW, "a.com"), (key, value)];
            let pairs = if key == KEY_ALLOW {
                &pairs[1..]
            } else {
                &pairs[..]
            };
            assert_eq!(requested(pairs).unwrap_err().0, key, "{key}={value}");
        }
    }

    #[test]
    fn a_closed_ceiling_denies_everything() {
        let asked = requested(&[(KEY_ALLOW, "a.com")]).unwrap();
        let closed = Policy::ceiling(false, &["a.com".into()], &[], Duration::ZERO, 0).unwrap();
        assert_eq!(closed, Policy::deny_all());
        let (effective, dropped) = asked.resolve(&closed);
        assert!(!effective.enabled);
        assert_eq!(dropped.len(), 1);
        // A bad ceiling entry fails even when the ceiling is closed.
        assert!(Policy::ceiling(false, &["*.a.com".into()], &[], Duration::ZERO, 0).is_err());
        // Not opting in gives deny-all under any ceiling.
        let (effective, dropped) = Policy::deny_all().resolve(&ceiling(&[]));
        assert!(!effective.enabled && dropped.is_empty());
    }

    #[test]
    fn an_open_ceiling_without_a_list_honours_the_processor() {
        let asked = requested(&[(KEY_ALLOW, "a.com,b.com"), (KEY_SECRET_REFS, "k")]).unwrap();
        let (effective, dropped) = asked.resolve(&ceiling(&[]));
        assert!(effective.enabled);
        assert_eq!(effective.allowlist.len(), 2);
        assert!(dropped.is_empty());
        assert!(effective.secret_refs.contains("k"));
    }

    #[test]
    fn a_listed_ceiling_intersects_and_clamps() {
        let asked = requested(&[
            (KEY_ALLOW, "a.com,b.com,https://c.com:8443"),
            (KEY_TIMEOUT, "2m"),
            (KEY_MAX_RESPONSE_BYTES, "100"),
            (KEY_SECRET_REFS, "granted,other"),
        ])
        .unwrap();
        let ceiling = Policy::ceiling(
            true,
            &["a.com".into(), "c.com".into()],
            &["granted".into()],
            Duration::from_secs(10),
            1000,
        )
        .unwrap();
        let (effective, dropped) = asked.resolve(&ceiling);
        let hosts: Vec<String> = effective
            .allowlist
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(hosts, ["https://a.com:443"]);
        let dropped: Vec<String> = dropped.iter().map(ToString::to_string).collect();
        assert_eq!(dropped, ["https://b.com:443", "https://c.com:8443"]);
        assert_eq!(effective.timeout, Duration::from_secs(10));
        assert_eq!(effective.max_response_bytes, 100);
        assert_eq!(
            effective.secret_refs,
            BTreeSet::from(["granted".to_owned()])
        );
        // Nothing left: still enabled (calls are refused as forbidden, not disabled).
        let asked = requested(&[(KEY_ALLOW, "z.com")]).unwrap();
        let (effective, _) = asked.resolve(&ceiling);
        assert!(effective.enabled && effective.allowlist.is_empty());
    }

    #[test]
    fn reserved_settings_are_stripped() {
        let mut settings = culvert_plugins::Settings::new();
        settings.insert(KEY_ALLOW.into(), "a.com".into());
        settings.insert("sdk.egress.future".into(), "x".into());
        settings.insert("url".into(), "https://a.com".into());
        strip_reserved(&mut settings);
        assert_eq!(settings.keys().collect::<Vec<_>>(), ["url"]);
    }
}
