//! Secrets in plugin settings: which are sensitive, their sealing at rest and their
//! redaction on the way out.
//!
//! The control plane keeps settings in an append-only log, so a password written there in
//! clear would be there forever. Instead, every write of settings goes through
//! [`Secrets::seal_settings`]: a sensitive value (see [`sensitive`]) is replaced by its
//! sealed form ([`keyring`]) before the event is written, so events, snapshots, the read
//! model, exports and every API answer only ever hold ciphertext. The one place that needs
//! the real value, the engine starting a connector or processor, calls
//! [`Secrets::open_settings`]. Everything shown to a person goes through
//! [`Secrets::redact_settings`] (sealed and sensitive values become `***`, as Conduit
//! shows them).

pub mod keyring;
pub mod sensitive;

pub use keyring::{is_sealed, KeyRing, SecretError, KEY_ENV, SEALED_PREFIX};
pub use sensitive::{Marked, NoSpecs, SpecSensitivity};

use std::collections::BTreeMap;
use std::sync::Arc;

/// What a redacted value is shown as (Conduit's `log.Redacted`).
pub const REDACTED: &str = "***";

/// A plugin's settings.
pub type Settings = BTreeMap<String, String>;

/// The key ring and the rules for what is sensitive.
#[derive(Clone)]
pub struct Secrets {
    ring: Arc<KeyRing>,
    specs: Arc<dyn SpecSensitivity>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Secrets sealed with `ring`, sensitivity from `specs` plus the name and value rules.
    pub fn new(ring: KeyRing, specs: Arc<dyn SpecSensitivity>) -> Self {
        Self {
            ring: Arc::new(ring),
            specs,
        }
    }

    /// A fresh random key and no specifications (tests and throw-away servers).
    pub fn ephemeral() -> Self {
        Self::new(KeyRing::generate(), Arc::new(NoSpecs))
    }

    /// The key ring.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The same rules with another key ring (after a rotation).
    #[must_use]
    pub fn with_ring(&self, ring: KeyRing) -> Self {
        Self {
            ring: Arc::new(ring),
            specs: self.specs.clone(),
        }
    }

    /// Whether setting `key` = `value` of `plugin` is sensitive.
    pub fn is_sensitive(&self, plugin: &str, key: &str, value: &str) -> bool {
        sensitive::is_sensitive(self.specs.marked(plugin, key), key, value)
    }

    /// The settings to store for `plugin`, given what is stored now (`previous`):
    ///
    /// * a value that is `***` where a value is stored keeps the stored one (a client that
    ///   read redacted settings and writes them back does not overwrite its secrets);
    /// * a sensitive value equal to what the stored sealed value opens to keeps the stored
    ///   one (unchanged settings stay byte-identical, so no spurious change is recorded);
    /// * a sealed value (from an export) is kept if the ring opens it, refused otherwise;
    /// * any other sensitive value is sealed with the current key.
    ///
    /// # Errors
    /// A sealed value that does not open, naming the setting.
    pub fn seal_settings(
        &self,
        plugin: &str,
        new: &Settings,
        previous: Option<&Settings>,
    ) -> Result<Settings, SettingSecretError> {
        let mut out = Settings::new();
        for (key, value) in new {
            let stored = previous.and_then(|p| p.get(key));
            let value = if let Some(stored) = stored.filter(|_| value == REDACTED) {
                stored.clone()
            } else if is_sealed(value) {
                self.open_one(key, value)?;
                value.clone()
            } else if let Some(stored) = stored.filter(|s| self.opens_to(key, s, value)) {
                stored.clone()
            } else if self.is_sensitive(plugin, key, value) && !value.is_empty() {
                self.ring.seal(key, value)
            } else {
                value.clone()
            };
            out.insert(key.clone(), value);
        }
        Ok(out)
    }

    /// Open the sealed value of setting `key`, naming the setting on failure.
    fn open_one(
        &self,
        key: &str,
        value: &str,
    ) -> Result<zeroize::Zeroizing<String>, SettingSecretError> {
        self.ring
            .open(key, value)
            .map_err(|error| SettingSecretError {
                key: key.to_owned(),
                error,
            })
    }

    /// Whether the stored `sealed` value of `key` opens to `plaintext`.
    fn opens_to(&self, key: &str, sealed: &str, plaintext: &str) -> bool {
        is_sealed(sealed)
            && self
                .ring
                .open(key, sealed)
                .is_ok_and(|open| open.as_str() == plaintext)
    }

    /// `new` with every value that equals what the stored sealed value opens to (or is
    /// `***`) replaced by the stored value: what a planner compares against the stored
    /// settings, so an unchanged secret is not a change.
    pub fn reuse_stored(&self, new: &Settings, previous: &Settings) -> Settings {
        new.iter()
            .map(|(key, value)| {
                let value = match previous.get(key) {
                    Some(stored) if value == REDACTED || self.opens_to(key, stored, value) => {
                        stored.clone()
                    }
                    _ => value.clone(),
                };
                (key.clone(), value)
            })
            .collect()
    }

    /// The settings with every sealed value opened: what a plugin is configured with.
    ///
    /// # Errors
    /// A sealed value that does not open, naming the setting.
    pub fn open_settings(&self, settings: &Settings) -> Result<Settings, SettingSecretError> {
        settings
            .iter()
            .map(|(key, value)| {
                if is_sealed(value) {
                    let open = self.open_one(key, value)?;
                    Ok((key.clone(), open.as_str().to_owned()))
                } else {
                    Ok((key.clone(), value.clone()))
                }
            })
            .collect()
    }

    /// Check that every sealed value opens, without keeping the plaintext.
    ///
    /// # Errors
    /// The first that does not, naming the setting.
    pub fn check_settings(&self, settings: &Settings) -> Result<(), SettingSecretError> {
        for (key, value) in settings.iter().filter(|(_, v)| is_sealed(v)) {
            self.open_one(key, value)?;
        }
        Ok(())
    }

    /// The settings as stored after a key rotation: values sealed with an older key sealed
    /// again with the current one, and sensitive values stored in clear (before secrets were
    /// sealed) sealed. `None` when nothing changes.
    ///
    /// # Errors
    /// A sealed value that does not open.
    pub fn reseal_settings(
        &self,
        plugin: &str,
        settings: &Settings,
    ) -> Result<Option<Settings>, SettingSecretError> {
        let mut changed = false;
        let mut out = Settings::new();
        for (key, value) in settings {
            let value = if is_sealed(value) {
                if KeyRing::key_of(value) == Some(self.ring.current_id()) {
                    value.clone()
                } else {
                    let open = self.open_one(key, value)?;
                    changed = true;
                    self.ring.seal(key, &open)
                }
            } else if !value.is_empty() && self.is_sensitive(plugin, key, value) {
                changed = true;
                self.ring.seal(key, value)
            } else {
                value.clone()
            };
            out.insert(key.clone(), value);
        }
        Ok(changed.then_some(out))
    }

    /// The settings as shown to people: sealed and sensitive values are `***`.
    pub fn redact_settings(&self, plugin: &str, settings: &Settings) -> Settings {
        settings
            .iter()
            .map(|(key, value)| {
                let shown = if is_sealed(value)
                    || (!value.is_empty() && self.is_sensitive(plugin, key, value))
                {
                    REDACTED.to_owned()
                } else {
                    value.clone()
                };
                (key.clone(), shown)
            })
            .collect()
    }
}

/// A setting whose sealed value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {key:?}: {error}")]
pub struct SettingSecretError {
    /// The setting.
    pub key: String,
    /// Why.
    pub error: SecretError,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    struct Marks;
    impl SpecSensitivity for Marks {
        fn marked(&self, plugin: &str, key: &str) -> Marked {
            match (plugin, key) {
                ("builtin:x", "opaque") => Marked::Sensitive,
                ("builtin:x", _) => Marked::NotMarked,
                _ => Marked::Unknown,
            }
        }
    }

    #[test]
    fn sensitive_values_are_sealed_and_the_rest_kept() {
        let secrets = Secrets::new(KeyRing::generate(), Arc::new(Marks));
        let new = settings(&[
            ("password", "hunter2"),
            ("opaque", "s3cr3t"),
            ("url", "http://host"),
            ("path", "/tmp/x"),
            ("empty.password", ""),
        ]);
        let stored = secrets.seal_settings("builtin:x", &new, None).unwrap();
        assert!(is_sealed(&stored["password"]));
        assert!(is_sealed(&stored["opaque"]));
        assert_eq!(stored["url"], "http://host");
        assert_eq!(stored["path"], "/tmp/x");
        assert_eq!(stored["empty.password"], "");
        assert_eq!(secrets.open_settings(&stored).unwrap(), new);

        // A standalone plugin's `url` is sealed under Conduit's broader rules.
        let standalone = secrets.seal_settings("standalone:y", &new, None).unwrap();
        assert!(is_sealed(&standalone["url"]));
    }

    #[test]
    fn unchanged_and_redacted_values_keep_what_is_stored() {
        let secrets = Secrets::ephemeral();
        let first = secrets
            .seal_settings("p", &settings(&[("password", "a"), ("path", "x")]), None)
            .unwrap();
        let same = secrets
            .seal_settings(
                "p",
                &settings(&[("password", "a"), ("path", "y")]),
                Some(&first),
            )
            .unwrap();
        assert_eq!(same["password"], first["password"]);
        let redacted = secrets
            .seal_settings("p", &settings(&[("password", REDACTED)]), Some(&first))
            .unwrap();
        assert_eq!(redacted["password"], first["password"]);
        let changed = secrets
            .seal_settings("p", &settings(&[("password", "b")]), Some(&first))
            .unwrap();
        assert_ne!(changed["password"], first["password"]);
        assert_eq!(secrets.open_settings(&changed).unwrap()["password"], "b");

        let reused = secrets.reuse_stored(&settings(&[("password", "a")]), &first);
        assert_eq!(reused["password"], first["password"]);
    }

    #[test]
    fn a_sealed_value_from_elsewhere_is_kept_only_if_it_opens() {
        let secrets = Secrets::ephemeral();
        let exported = secrets.ring().seal("password", "a");
        let kept = secrets
            .seal_settings("p", &settings(&[("password", &exported)]), None)
            .unwrap();
        assert_eq!(kept["password"], exported);
        let foreign = KeyRing::generate().seal("password", "a");
        let error = secrets
            .seal_settings("p", &settings(&[("password", &foreign)]), None)
            .unwrap_err();
        assert_eq!(error.key, "password");
        assert!(!error.to_string().contains(&foreign));
    }

    #[test]
    fn redaction_hides_sealed_and_sensitive_values() {
        let secrets = Secrets::ephemeral();
        let stored = settings(&[
            ("password", "in-clear-from-an-old-log"),
            ("token", &secrets.ring().seal("token", "t")),
            ("dsn.x", "postgres://u:pw@h/db"),
            ("path", "/tmp"),
        ]);
        let shown = secrets.redact_settings("builtin:file", &stored);
        assert_eq!(shown["password"], REDACTED);
        assert_eq!(shown["token"], REDACTED);
        assert_eq!(shown["dsn.x"], REDACTED);
        assert_eq!(shown["path"], "/tmp");
    }

    #[test]
    fn rotation_reseals_old_and_clear_values_only() {
        let secrets = Secrets::ephemeral();
        let stored = secrets
            .seal_settings("p", &settings(&[("password", "a"), ("path", "x")]), None)
            .unwrap();
        assert_eq!(secrets.reseal_settings("p", &stored).unwrap(), None);
        let rotated = secrets.with_ring(secrets.ring().rotated());
        let resealed = rotated.reseal_settings("p", &stored).unwrap().unwrap();
        assert_eq!(
            KeyRing::key_of(&resealed["password"]),
            Some(rotated.ring().current_id())
        );
        assert_eq!(resealed["path"], "x");
        let current_only = rotated.with_ring(rotated.ring().current_only());
        assert_eq!(
            current_only.open_settings(&resealed).unwrap()["password"],
            "a"
        );
        let legacy = settings(&[("password", "clear")]);
        let sealed = rotated.reseal_settings("p", &legacy).unwrap().unwrap();
        assert!(is_sealed(&sealed["password"]));
    }
}
