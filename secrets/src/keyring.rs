//! The keys secrets are sealed with, and the sealed form of a value.
//!
//! A sealed value is text, so it fits wherever a setting goes (events, snapshots, exports,
//! pipeline files):
//!
//! ```text
//! culvert:sealed:v1:<key id>:<base64url(nonce || ciphertext || tag)>
//! ```
//!
//! The cipher is XChaCha20-Poly1305 with a random 24-byte nonce per value (random nonces are
//! safe at that size), and the setting's key as associated data, so a sealed value cannot be
//! moved to another setting unnoticed. The key id is the first 8 bytes of the SHA-256 of the
//! key, in hex: the same key always has the same id, whether it comes from a file or the
//! environment.
//!
//! A key ring holds every key that may still be needed to open a value; the last one seals
//! new values. Its file has one key per line, `<id> <base64 key>` (comments with `#`), and
//! is written with mode 0600.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use zeroize::Zeroizing;

/// The prefix of every sealed value.
pub const SEALED_PREFIX: &str = "culvert:sealed:v1:";

/// The environment variable that may hold the keys instead of a file: base64 keys separated
/// by commas, the last one current.
pub const KEY_ENV: &str = "CULVERT_SECRETS_KEY";

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a value could not be opened, or a key ring loaded. Messages never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text is not a sealed value at all.
    #[error("not a sealed value")]
    NotSealed,
    /// It starts like a sealed value but is damaged.
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// It was sealed with a key the ring does not have.
    #[error(
        "a secret is sealed with key {id}, which is not in the key ring (keys: {known}); \
         restore the key file (or {KEY_ENV}) that holds it"
    )]
    UnknownKey {
        /// The key it names.
        id: String,
        /// The ring's key ids.
        known: String,
    },
    /// The key is there but the value does not open with it: changed, or moved from
    /// another setting.
    #[error(
        "a secret sealed with key {id} does not open: it was altered or belongs to another setting"
    )]
    Tampered {
        /// The key it names.
        id: String,
    },
    /// The key file or variable is unusable.
    #[error("{0}")]
    Keys(String),
}

struct Key {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            cipher: XChaCha20Poly1305::new((&bytes).into()),
            bytes: Zeroizing::new(bytes),
        }
    }
}

/// The keys secrets are sealed and opened with; the last one seals.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

fn decode_key(text: &str, origin: &str) -> Result<[u8; 32], SecretError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::Keys(format!("{origin}: a key is not valid base64")))?,
    );
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        SecretError::Keys(format!(
            "{origin}: a key must be 32 bytes (base64 of 32 random bytes), this one has {}",
            bytes.len()
        ))
    })
}

impl KeyRing {
    /// A ring with one fresh random key.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self {
            keys: vec![Key::new(key.into())],
        }
    }

    /// A ring of these keys, the last one current.
    ///
    /// # Errors
    /// When there are none.
    pub fn from_keys(keys: impl IntoIterator<Item = [u8; 32]>) -> Result<Self, SecretError> {
        let mut ring = Self { keys: Vec::new() };
        for bytes in keys {
            ring.push(Key::new(bytes));
        }
        if ring.keys.is_empty() {
            return Err(SecretError::Keys("the key ring is empty".into()));
        }
        Ok(ring)
    }

    fn push(&mut self, key: Key) {
        // The same key listed twice is kept once, at its last place (it may be current).
        self.keys.retain(|k| k.id != key.id);
        self.keys.push(key);
    }

    /// The same ring with a fresh key added as the current one (rotation). The old keys stay,
    /// to open what they sealed.
    #[must_use]
    pub fn rotated(&self) -> Self {
        let mut keys: Vec<Key> = self.keys.iter().map(|k| Key::new(*k.bytes)).collect();
        keys.push(Key::new(XChaCha20Poly1305::generate_key(&mut OsRng).into()));
        Self { keys }
    }

    /// The same ring with only the current key.
    #[must_use]
    pub fn current_only(&self) -> Self {
        Self {
            keys: vec![Key::new(*self.current().bytes)],
        }
    }

    /// Keys from the environment variable's text: base64 keys separated by commas.
    ///
    /// # Errors
    /// A key that is not base64 of 32 bytes, or no key.
    pub fn from_env_text(text: &str) -> Result<Self, SecretError> {
        let keys = text
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode_key(k, KEY_ENV))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_keys(keys)
    }

    /// A key file's text: `<id> <base64 key>` per line, comments with `#`. An id that does
    /// not match its key is refused (a damaged file).
    ///
    /// # Errors
    /// A bad line (named by number), or no key.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SecretError> {
        let mut ring = Self { keys: Vec::new() };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", number + 1);
            let (id, key) = line.split_once(char::is_whitespace).ok_or_else(|| {
                SecretError::Keys(format!("{at}: expected `<key id> <base64 key>`"))
            })?;
            let key = Key::new(decode_key(key, &at)?);
            if key.id != id {
                return Err(SecretError::Keys(format!(
                    "{at}: the key's id is {}, the line says {id}: the file is damaged",
                    key.id
                )));
            }
            ring.push(key);
        }
        if ring.keys.is_empty() {
            return Err(SecretError::Keys(format!("{origin}: no key in the file")));
        }
        Ok(ring)
    }

    /// The key file's text.
    pub fn render(&self) -> Zeroizing<String> {
        let mut text = String::from(
            "# Culvert's secrets key ring: every key that may be needed to open a sealed \
             setting.\n# Keep this file private (mode 0600) and backed up apart from the data \
             directory:\n# without it, the sealed settings in the event log cannot be read.\n\
             # The last key seals new secrets. Format: <key id> <base64 key>\n",
        );
        for key in &self.keys {
            text.push_str(&key.id);
            text.push(' ');
            text.push_str(&STANDARD.encode(*key.bytes));
            text.push('\n');
        }
        Zeroizing::new(text)
    }

    /// Read a key file.
    ///
    /// # Errors
    /// It cannot be read, or is malformed.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            SecretError::Keys(format!("reading the key file {}: {e}", path.display()))
        })?);
        Self::parse(&text, &path.display().to_string())
    }

    /// Write the ring to `path` (mode 0600) atomically: a temporary file beside it, synced,
    /// then renamed over it.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), SecretError> {
        let failed =
            |e: std::io::Error| SecretError::Keys(format!("writing {}: {e}", path.display()));
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(failed)?;
        let name = path.file_name().map_or_else(
            || "secrets.key".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).map_err(failed)?;
        #[cfg(unix)]
        std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(failed)?;
        file.write_all(self.render().as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        drop(file);
        std::fs::rename(&temp, path).map_err(failed)?;
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn current(&self) -> &Key {
        self.keys.last().expect("a key ring is never empty")
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Seal `plaintext` as the value of setting `name`, with the current key.
    pub fn seal(&self, name: &str, plaintext: &str) -> String {
        let key = self.current();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(blob))
    }

    /// The key id a sealed value names, if it is one.
    pub fn key_of(sealed: &str) -> Option<&str> {
        sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(id, _)| id)
    }

    /// Open the value of setting `name`.
    ///
    /// # Errors
    /// Not a sealed value, damaged, sealed with a key the ring lacks, or altered.
    pub fn open(&self, name: &str, sealed: &str) -> Result<Zeroizing<String>, SecretError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::NotSealed)?;
        let (id, blob) = rest
            .split_once(':')
            .ok_or(SecretError::Malformed("no key id"))?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed("too short"));
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey {
                id: id.chars().take(32).collect(),
                known: self.ids().join(", "),
            })?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = Zeroizing::new(
            key.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: name.as_bytes(),
                    },
                )
                .map_err(|_| SecretError::Tampered { id: key.id.clone() })?,
        );
        String::from_utf8(plaintext.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Malformed("not UTF-8"))
    }
}

/// Whether `value` is a sealed value (by its prefix; it may still fail to open).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_hides_it() {
        let ring = KeyRing::generate();
        let sealed = ring.seal("password", "hunter2");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(KeyRing::key_of(&sealed), Some(ring.current_id()));
        assert_eq!(ring.open("password", &sealed).unwrap().as_str(), "hunter2");
        // Each sealing is different (a fresh nonce).
        assert_ne!(sealed, ring.seal("password", "hunter2"));
    }

    #[test]
    fn a_value_moved_to_another_setting_or_altered_does_not_open() {
        let ring = KeyRing::generate();
        let sealed = ring.seal("password", "hunter2");
        assert!(matches!(
            ring.open("token", &sealed),
            Err(SecretError::Tampered { .. })
        ));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(ring
            .open("password", &String::from_utf8(altered).unwrap())
            .is_err());
    }

    #[test]
    fn an_unknown_key_is_named() {
        let sealed = KeyRing::generate().seal("password", "x");
        let other = KeyRing::generate();
        let error = other.open("password", &sealed).unwrap_err();
        assert!(matches!(error, SecretError::UnknownKey { .. }));
        assert!(error.to_string().contains("restore the key file"));
    }

    #[test]
    fn rotation_keeps_old_keys_and_seals_with_the_new_one() {
        let ring = KeyRing::generate();
        let old = ring.seal("password", "a");
        let rotated = ring.rotated();
        assert_ne!(rotated.current_id(), ring.current_id());
        assert_eq!(rotated.open("password", &old).unwrap().as_str(), "a");
        let new = rotated.seal("password", "b");
        assert_eq!(KeyRing::key_of(&new), Some(rotated.current_id()));
        assert!(rotated.current_only().open("password", &old).is_err());
    }

    #[test]
    fn the_key_file_round_trips_with_mode_0600_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secrets.key");
        let ring = KeyRing::generate().rotated();
        ring.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = KeyRing::load(&path).unwrap();
        assert_eq!(loaded.ids(), ring.ids());
        let sealed = ring.seal("k", "v");
        assert_eq!(loaded.open("k", &sealed).unwrap().as_str(), "v");

        let text = std::fs::read_to_string(&path).unwrap();
        let first_id = &ring.ids()[0];
        let damaged = text.replacen(first_id.as_str(), "0000000000000000", 1);
        let error = KeyRing::parse(&damaged, "f").unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
        assert!(KeyRing::parse("# nothing\n", "f")
            .unwrap_err()
            .to_string()
            .contains("no key"));
        assert!(KeyRing::parse("abc", "f")
            .unwrap_err()
            .to_string()
            .contains("f:1"));
    }

    #[test]
    fn keys_from_the_environment() {
        let a = STANDARD.encode([1u8; 32]);
        let b = STANDARD.encode([2u8; 32]);
        let ring = KeyRing::from_env_text(&format!("{a}, {b}")).unwrap();
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.current_id(), Key::new([2u8; 32]).id);
        assert!(KeyRing::from_env_text("").is_err());
        assert!(KeyRing::from_env_text(&STANDARD.encode([1u8; 16]))
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Opening arbitrary text never panics, whatever it looks like.
        #[test]
        fn opening_arbitrary_text_never_panics(text in ".*", blob in proptest::collection::vec(any::<u8>(), 0..96)) {
            let ring = KeyRing::generate();
            let _ = ring.open("k", &text);
            let with_prefix = format!("{SEALED_PREFIX}{}:{text}", ring.current_id());
            let _ = ring.open("k", &with_prefix);
            let encoded = format!("{SEALED_PREFIX}{}:{}", ring.current_id(), URL_SAFE_NO_PAD.encode(&blob));
            prop_assert!(ring.open("k", &encoded).is_err());
            let _ = KeyRing::parse(&text, "fuzz");
            let _ = KeyRing::from_env_text(&text);
        }

        /// Whatever is sealed opens to itself.
        #[test]
        fn sealing_round_trips(name in ".{0,40}", value in ".{0,200}") {
            let ring = KeyRing::generate();
            let sealed = ring.seal(&name, &value);
            let open = ring.open(&name, &sealed).unwrap();
            prop_assert_eq!(open.as_str(), value.as_str());
        }
    }
}
