//! Which settings are sensitive.
//!
//! A setting is sensitive when its plugin's specification marks the parameter so, or when
//! its name or its value looks like a secret:
//!
//! * **names** (any plugin): a word of the key is `password`, `passwd`, `pwd`, `passphrase`,
//!   `secret(s)`, `token`, `credential(s)`, `dsn`, `apikey`, `privatekey`, `authorization`
//!   or `cookie`, or the key ends
//!   in `key` after a word such as `api`, `secret`, `private`, `access`, `auth`, `client`
//!   (`apiKey`, `aws.secretAccessKey`, `private_key`). Words split at `.`, `_`, `-`, other
//!   punctuation and lowerCamelCase boundaries, so `sasl.password`, `saslPassword` and
//!   `SASL_PASSWORD` all match, while `max_tokens` does not;
//! * **names of plugins we have no specification for** (standalone plugins): also any key
//!   containing one of the substrings Conduit lists for its log redaction (`password`,
//!   `secret`, `token`, `credential`, `private`, `sasl`, `auth`, `apikey`, `api_key`,
//!   `access_key`, `dsn`, `url`, `connection_string`, `passphrase`): without a
//!   specification, a false positive (a URL hidden) is cheaper than a leak;
//! * **values** (any plugin, any key): a URL or DSN carrying a password
//!   (`postgres://user:pw@host/db`) or a `password=` field (`host=db password=pw`).

/// What a plugin's specification says about a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The parameter is marked sensitive.
    Sensitive,
    /// The plugin has a specification and the parameter is not marked (name and value rules
    /// still apply).
    NotMarked,
    /// No specification is known for the plugin (a standalone plugin, or one not
    /// installed): Conduit's broader name rules apply too.
    Unknown,
}

/// Answers whether a plugin's specification marks a setting sensitive. The server builds one
/// from its plugin registries.
pub trait SpecSensitivity: Send + Sync {
    /// What `plugin`'s specification says about `key`.
    fn marked(&self, plugin: &str, key: &str) -> Marked;
}

/// No specifications at all: every plugin is [`Marked::Unknown`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpecs;

impl SpecSensitivity for NoSpecs {
    fn marked(&self, _plugin: &str, _key: &str) -> Marked {
        Marked::Unknown
    }
}

/// Words that make a key sensitive wherever they stand in it.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "credential",
    "credentials",
    "dsn",
    "apikey",
    "privatekey",
    "authorization",
    "cookie",
];

/// Words that, followed by a final `key`, make a key sensitive (`apiKey`, `access_key`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "secret",
    "private",
    "access",
    "auth",
    "client",
    "encryption",
    "signing",
    "master",
    "account",
    "shared",
    "license",
    "sas",
    "service",
];

/// Substrings Conduit's log redaction treats as sensitive (`pkg/foundation/log/redact.go`),
/// applied to plugins we have no specification for.
const CONDUIT_NEEDLES: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private",
    "sasl",
    "auth",
    "apikey",
    "api_key",
    "access_key",
    "dsn",
    "url",
    "connection_string",
];

/// The lowercase words of a setting key.
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_numeric();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a key's name says it holds a secret (the rules for every plugin).
pub fn sensitive_name(key: &str) -> bool {
    let words = words(key);
    if words.iter().any(|w| SECRET_WORDS.contains(&w.as_str())) {
        return true;
    }
    match words.as_slice() {
        [.., qualifier, last] if last == "key" => KEY_QUALIFIERS.contains(&qualifier.as_str()),
        _ => false,
    }
}

/// Whether a key contains one of Conduit's redaction substrings.
pub fn conduit_sensitive_name(key: &str) -> bool {
    let lower = key.to_lowercase();
    CONDUIT_NEEDLES.iter().any(|needle| lower.contains(needle))
}

/// Whether a value carries a password: a URL or DSN with `user:password@`, or a
/// `password=` field.
pub fn sensitive_value(value: &str) -> bool {
    if let Some(start) = value.find("://") {
        let rest = &value[start + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            if userinfo
                .split_once(':')
                .is_some_and(|(_, password)| !password.is_empty())
            {
                return true;
            }
        }
    }
    let lower = value.to_lowercase();
    lower
        .match_indices("password")
        .any(|(at, word)| lower[at + word.len()..].trim_start().starts_with('='))
}

/// Whether the setting `key` = `value` of `plugin` is sensitive, given what the plugin's
/// specification says about it.
pub fn is_sensitive(marked: Marked, key: &str, value: &str) -> bool {
    match marked {
        Marked::Sensitive => true,
        Marked::NotMarked => sensitive_name(key) || sensitive_value(value),
        Marked::Unknown => {
            sensitive_name(key) || conduit_sensitive_name(key) || sensitive_value(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hold_secrets() {
        for key in [
            "password",
            "sasl.password",
            "saslPassword",
            "SASL_PASSWORD",
            "db.passwd",
            "aws.secretAccessKey",
            "apiKey",
            "api_key",
            "auth.token",
            "credentials",
            "gcp.credentialsJSON",
            "dsn",
            "tls.privateKey",
            "client-key",
            "privatekey",
            "headers.Authorization",
            "headers.Cookie",
        ] {
            assert!(sensitive_name(key), "{key} should be sensitive");
        }
    }

    #[test]
    fn names_that_do_not() {
        for key in [
            "path",
            "format.type",
            "max_tokens",
            "sdk.schema.extract.key.enabled",
            "key",
            "keyField",
            "aws.accessKeyId",
            "url",
            "recordCount",
            "tokenizer",
        ] {
            assert!(!sensitive_name(key), "{key} should not be sensitive");
        }
    }

    #[test]
    fn conduit_rules_are_broader_for_unknown_plugins() {
        assert!(is_sensitive(Marked::Unknown, "url", "http://host"));
        assert!(is_sensitive(Marked::Unknown, "sasl.mechanism", "PLAIN"));
        assert!(!is_sensitive(Marked::NotMarked, "url", "http://host"));
        assert!(is_sensitive(Marked::Sensitive, "path", "/tmp/x"));
        assert!(!is_sensitive(Marked::Unknown, "path", "/tmp/x"));
    }

    #[test]
    fn values_with_passwords() {
        assert!(sensitive_value("postgres://user:pw@localhost:5432/db"));
        assert!(sensitive_value("host=db user=me password=pw"));
        assert!(sensitive_value("Password = pw"));
        assert!(!sensitive_value("postgres://user@localhost/db"));
        assert!(!sensitive_value("postgres://user:@localhost/db"));
        assert!(!sensitive_value("http://host/a@b:c"));
        assert!(!sensitive_value("the password is elsewhere"));
    }
}
