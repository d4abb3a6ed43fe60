//! An entity's history: its state as JSON at any point, and the fields that differ between
//! two points. Used by the audit tool and the EventLogService's Diff.

use culvert_domain::{ConnectorId, ControlPlane, PipelineId, ProcessorId};
use serde_json::Value;
use std::collections::BTreeMap;

/// One field that differs between two states of an entity.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// The field's path (`name`, `settings.rate`, `connector_ids[1]`).
    pub field: String,
    /// Its value before (`None`: it did not exist).
    pub before: Option<Value>,
    /// Its value after (`None`: it no longer exists).
    pub after: Option<Value>,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(a), Some(b)) => write!(f, "{}: {a} -> {b}", self.field),
            (None, Some(b)) => write!(f, "{}: + {b}", self.field),
            (Some(a), None) => write!(f, "{}: - {a}", self.field),
            (None, None) => write!(f, "{}", self.field),
        }
    }
}

/// The pipeline, connector or processor `id` in `state`, as JSON (`None`: not there).
pub fn entity_json(state: &ControlPlane, id: &str) -> Option<Value> {
    let value = if let Some(p) = state.pipeline(&PipelineId(id.into())) {
        serde_json::to_value(p)
    } else if let Some(c) = state.connector(&ConnectorId(id.into())) {
        serde_json::to_value(c)
    } else if let Some(p) = state.processor(&ProcessorId(id.into())) {
        serde_json::to_value(p)
    } else {
        return None;
    };
    value.ok()
}

/// Leaves of a JSON value by path.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// The fields that differ from `before` to `after`, by path; the bookkeeping fields
/// (`created_at`, `updated_at`, `version`) are left out.
pub fn field_changes(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let mut old = BTreeMap::new();
    let mut new = BTreeMap::new();
    if let Some(v) = before {
        flatten("", v, &mut old);
    }
    if let Some(v) = after {
        flatten("", v, &mut new);
    }
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !matches!(k.as_str(), "updated_at" | "created_at" | "version"))
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            (a != b).then(|| FieldChange {
                field: k.clone(),
                before: a.cloned(),
                after: b.cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_the_field_and_both_values() {
        let before = json!({"name": "a", "settings": {"rate": "1"}, "ids": ["x"], "version": 1});
        let after =
            json!({"name": "b", "settings": {"rate": "1", "burst": "2"}, "ids": [], "version": 2});
        let changes: Vec<String> = field_changes(Some(&before), Some(&after))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "ids: + []",
                "ids[0]: - \"x\"",
                "name: \"a\" -> \"b\"",
                "settings.burst: + \"2\"",
            ]
        );
        assert!(field_changes(Some(&before), Some(&before)).is_empty());
    }
}
