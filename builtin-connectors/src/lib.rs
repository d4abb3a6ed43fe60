//! The built-in connectors, one module each, and the registry that holds them.
//!
//! * [`generator`]: made-up records at a rate or in bursts (Conduit's `builtin:generator`);
//! * [`file`]: lines of a file as records, and records written as lines;
//! * [`log`]: a destination that logs each record.
//!
//! They implement the `Source` and `Destination` traits of `culvert-plugins`, the same
//! contract standalone connectors (in `culvert-hosts`) implement, so the engine never knows
//! which is which. [`registry()`] gives a `Registry` holding them; the binary adds the
//! standalone ones found in the plugin folder. A new built-in connector is a module here
//! and one line in [`registry()`].

pub mod file;
pub mod generator;
pub mod log;

use culvert_plugins::Registry;
use std::sync::Arc;

/// A registry of the built-in connectors.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.add(Arc::new(generator::Generator::new()));
    registry.add(Arc::new(file::File::new()));
    registry.add(Arc::new(log::Log::new()));
    registry
}

#[cfg(test)]
mod tests {
    use super::registry;
    use culvert_plugins::{LookupError, Settings, Side};

    #[test]
    fn references_resolve_like_conduits() {
        let registry = registry();
        for reference in [
            "generator",
            "builtin:generator",
            "any:generator",
            "generator@latest",
        ] {
            assert_eq!(
                registry.lookup(reference).unwrap().specification().name,
                "generator"
            );
        }
        let version = format!("builtin:log@v{}", env!("CARGO_PKG_VERSION"));
        assert!(registry.lookup(&version).is_ok());
        assert!(matches!(
            registry.lookup("builtin:log@v9.9.9"),
            Err(LookupError::NotFound { .. })
        ));
        let missing = registry.lookup("builtin:kafka").err().unwrap().to_string();
        assert!(missing.contains("file, generator, log"), "{missing}");
        assert!(matches!(
            registry.lookup("standalone:generator"),
            Err(LookupError::NotFound { .. })
        ));
        assert!(matches!(
            registry.lookup("weird:x"),
            Err(LookupError::Malformed(_))
        ));
        assert!(matches!(
            registry.lookup(""),
            Err(LookupError::Malformed(_))
        ));
    }

    #[test]
    fn validate_checks_the_side_and_the_settings() {
        let registry = registry();
        let settings: Settings = [("level".to_owned(), "warn".to_owned())].into();
        assert_eq!(
            registry
                .validate("builtin:log", Side::Destination, &settings)
                .unwrap()["level"],
            "warn"
        );
        let error = registry
            .validate("builtin:log", Side::Source, &settings)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "plugin \"log\" has no source");
        let error = registry
            .validate("builtin:file", Side::Destination, &Settings::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("setting \"path\": required"), "{error}");
    }
}
