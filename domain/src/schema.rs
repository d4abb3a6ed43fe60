//! The schema registry's read model: the schemas that connectors and processors registered
//! (Conduit's built-in schema registry), folded from `SchemaRegistered` events so that they
//! survive a restart and a replay of the log gives every schema the id it had.
//!
//! The rules are a schema registry's (Confluent's, which Conduit follows): versions count
//! from 1 per subject; the same text registered again under a subject answers the version it
//! has and records nothing; one text has one id across subjects; ids count from 1.

use crate::error::{DomainError, EntityKind};
use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The longest subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 255;
/// The longest schema text accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// The kind of a schema. Conduit registers Avro schemas only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaType {
    /// An Avro schema (JSON text).
    Avro,
}

/// One registered schema as a registry answers it: the subject and version it was asked
/// under, its global id, its type and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version under the subject (from 1).
    pub version: u32,
    /// The global id (from 1).
    pub id: u32,
    /// The schema type.
    pub schema_type: SchemaType,
    /// The schema text.
    pub text: String,
}

/// Every distinct schema text by id, and the subjects' versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schemas {
    /// (type, text) by id - 1.
    texts: Vec<(SchemaType, String)>,
    /// subject -> ids of its versions, in order (version n at index n - 1).
    subjects: BTreeMap<String, Vec<u32>>,
    /// (type, text) -> id; derived from `texts`, rebuilt by [`Schemas::reindex`].
    #[serde(skip)]
    ids: HashMap<(SchemaType, String), u32>,
}

impl Schemas {
    /// Rebuild the derived index (after deserialisation).
    pub(crate) fn reindex(&mut self) {
        self.ids = self
            .texts
            .iter()
            .enumerate()
            .map(|(index, key)| (key.clone(), index as u32 + 1))
            .collect();
    }

    /// `subject`'s schema at `version`, if both exist.
    pub fn get(&self, subject: &str, version: u32) -> Option<RegisteredSchema> {
        let versions = self.subjects.get(subject)?;
        let index = usize::try_from(version).ok()?.checked_sub(1)?;
        let id = *versions.get(index)?;
        self.answer(subject, version, id)
    }

    /// Whether a subject has any version.
    pub fn has_subject(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject)
    }

    /// `subject`'s newest version, if the subject exists.
    pub fn latest(&self, subject: &str) -> Option<RegisteredSchema> {
        let versions = self.subjects.get(subject)?;
        self.get(subject, versions.len() as u32)
    }

    /// The schema with a global id (its type and text; no subject).
    pub fn by_id(&self, id: u32) -> Option<(SchemaType, &str)> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.texts
            .get(index)
            .map(|(kind, text)| (*kind, text.as_str()))
    }

    /// The version `text` has under `subject`, if registered there.
    pub fn find(&self, subject: &str, kind: SchemaType, text: &str) -> Option<RegisteredSchema> {
        let id = *self.ids.get(&(kind, text.to_owned()))?;
        let versions = self.subjects.get(subject)?;
        let index = versions.iter().position(|v| *v == id)?;
        self.answer(subject, index as u32 + 1, id)
    }

    /// Every subject, in order.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subjects.keys().map(String::as_str)
    }

    fn answer(&self, subject: &str, version: u32, id: u32) -> Option<RegisteredSchema> {
        let (schema_type, text) = self.by_id(id)?;
        Some(RegisteredSchema {
            subject: subject.to_owned(),
            version,
            id,
            schema_type,
            text: text.to_owned(),
        })
    }

    /// Register `text` under `subject` directly (decide and fold in one step), for registries
    /// kept in memory; the server's goes through the log instead.
    pub fn register(
        &mut self,
        subject: &str,
        kind: SchemaType,
        text: &str,
    ) -> Result<RegisteredSchema, DomainError> {
        for event in self.decide_register(subject, kind, text)? {
            if let Event::SchemaRegistered {
                subject,
                id,
                schema_type,
                schema,
                ..
            } = &event
            {
                self.evolve_registered(subject, *id, *schema_type, schema);
            }
        }
        self.find(subject, kind, text)
            .ok_or_else(|| DomainError::NotFound {
                kind: EntityKind::Schema,
                id: subject.to_owned(),
            })
    }

    /// The events registering `text` under `subject`: none if it is registered there
    /// already. The caller has checked that the text is a schema of its type.
    pub(crate) fn decide_register(
        &self,
        subject: &str,
        kind: SchemaType,
        text: &str,
    ) -> Result<Vec<Event>, DomainError> {
        let invalid = |field: &'static str, reason: String| DomainError::InvalidArgument {
            entity: EntityKind::Schema,
            field,
            reason,
        };
        if subject.trim().is_empty() {
            return Err(invalid("subject", "must not be empty".into()));
        }
        if subject.len() > MAX_SUBJECT_BYTES {
            return Err(invalid(
                "subject",
                format!(
                    "is {} bytes, the limit is {MAX_SUBJECT_BYTES}",
                    subject.len()
                ),
            ));
        }
        if subject.chars().any(char::is_control) {
            return Err(invalid(
                "subject",
                "must not contain control characters".into(),
            ));
        }
        if text.trim().is_empty() {
            return Err(invalid("schema", "must not be empty".into()));
        }
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(invalid(
                "schema",
                format!("is {} bytes, the limit is {MAX_SCHEMA_BYTES}", text.len()),
            ));
        }
        if self.find(subject, kind, text).is_some() {
            return Ok(vec![]);
        }
        let id = match self.ids.get(&(kind, text.to_owned())) {
            Some(id) => *id,
            None => self.texts.len() as u32 + 1,
        };
        let version = self.subjects.get(subject).map_or(0, Vec::len) as u32 + 1;
        Ok(vec![Event::SchemaRegistered {
            subject: subject.to_owned(),
            version,
            id,
            schema_type: kind,
            schema: text.to_owned(),
        }])
    }

    /// Fold a `SchemaRegistered` event in. An event that contradicts the state (an id that is
    /// not the next one for a new text) is folded as recorded: the log is the truth.
    pub(crate) fn evolve_registered(
        &mut self,
        subject: &str,
        id: u32,
        kind: SchemaType,
        text: &str,
    ) {
        let key = (kind, text.to_owned());
        if !self.ids.contains_key(&key) {
            let index = (id as usize).saturating_sub(1);
            if index >= self.texts.len() {
                self.texts.resize(index + 1, (kind, String::new()));
            }
            self.texts[index] = key.clone();
            self.ids.insert(key, id);
        }
        let versions = self.subjects.entry(subject.to_owned()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(schemas: &mut Schemas, subject: &str, text: &str) -> Option<(u32, u32)> {
        let events = schemas
            .decide_register(subject, SchemaType::Avro, text)
            .unwrap();
        for event in &events {
            if let Event::SchemaRegistered {
                subject,
                id,
                schema_type,
                schema,
                ..
            } = event
            {
                schemas.evolve_registered(subject, *id, *schema_type, schema);
            }
        }
        events.first().map(|e| match e {
            Event::SchemaRegistered { version, id, .. } => (*version, *id),
            _ => unreachable!("only schema events"),
        })
    }

    #[test]
    fn versions_count_per_subject_and_texts_share_ids() {
        let mut schemas = Schemas::default();
        assert_eq!(register(&mut schemas, "s", "\"a\""), Some((1, 1)));
        assert_eq!(
            register(&mut schemas, "s", "\"a\""),
            None,
            "same text, no event"
        );
        assert_eq!(register(&mut schemas, "s", "\"b\""), Some((2, 2)));
        assert_eq!(register(&mut schemas, "t", "\"b\""), Some((1, 2)));
        assert_eq!(schemas.get("s", 2).unwrap().text, "\"b\"");
        assert_eq!(schemas.find("t", SchemaType::Avro, "\"b\"").unwrap().id, 2);
        assert_eq!(schemas.latest("s").unwrap().version, 2);
        assert!(schemas.get("s", 3).is_none());
        assert!(schemas.get("s", 0).is_none());
        assert!(schemas.get("u", 1).is_none());
        assert_eq!(schemas.by_id(1), Some((SchemaType::Avro, "\"a\"")));
        assert!(schemas.by_id(0).is_none() && schemas.by_id(3).is_none());
    }

    #[test]
    fn the_index_is_rebuilt_after_a_round_trip() {
        let mut schemas = Schemas::default();
        register(&mut schemas, "s", "\"a\"");
        let mut copy: Schemas =
            serde_json::from_str(&serde_json::to_string(&schemas).unwrap()).unwrap();
        copy.reindex();
        assert_eq!(copy, schemas);
        assert_eq!(register(&mut copy, "t", "\"a\""), Some((1, 1)));
    }

    #[test]
    fn bad_subjects_and_texts_are_refused_naming_the_field() {
        let schemas = Schemas::default();
        for (subject, text, field) in [
            ("", "\"a\"", "subject"),
            ("a\nb", "\"a\"", "subject"),
            (&"x".repeat(256), "\"a\"", "subject"),
            ("s", " ", "schema"),
        ] {
            let error = schemas
                .decide_register(subject, SchemaType::Avro, text)
                .unwrap_err();
            assert!(
                matches!(&error, DomainError::InvalidArgument { field: f, .. } if *f == field),
                "{error}"
            );
        }
    }
}
