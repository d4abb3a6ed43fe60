//! `error`: fail every record it sees, with a message.
//!
//! A failed record goes where any failed record goes: to the dead-letter queue if the
//! pipeline has one that takes it, otherwise the pipeline stops. The processor is meant to
//! be used with a `condition`, which picks the records to fail; without one, every record
//! fails.
//!
//! The message is a Go template rendered with the record (`{{ .Metadata.table }}`), as in
//! Conduit; a message without `{{` is used as it is. When the template cannot be rendered
//! for a record, that record fails with the rendering error instead. Conduit's processor
//! SDK disables schema decoding and encoding for this processor by default, so its
//! `sdk.schema.*` parameters default to `false`.

use crate::params::{invalid, setting_or, with_schema_parameters};
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType};
use culvert_plugins::{PluginError, Settings};
use culvert_template::Template;

/// The message when none is set.
const DEFAULT_MESSAGE: &str = "error processor triggered";

/// `error`: fail every record it receives.
pub struct ErrorProcessor {
    spec: ProcessorSpecification,
}

impl ErrorProcessor {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![Parameter::new(
                "message",
                ParameterType::String,
                "The error each record fails with: a Go template evaluated with the record \
                 (e.g. `bad record: {{ .Metadata.table }}`).",
            )
            .default_value(DEFAULT_MESSAGE)],
            "false",
        );
        Self {
            spec: ProcessorSpecification {
                name: "error",
                summary: "Fail every record that reaches the processor.",
                description: "Every record this processor receives fails with the configured \
                              message, so it is sent to the dead-letter queue if there is \
                              one, or else the pipeline stops. Give it a condition to choose \
                              which records fail; without one, all of them do. The message \
                              is a Go template evaluated with the record.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for ErrorProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for ErrorProcessor {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let message = setting_or(settings, "message", DEFAULT_MESSAGE);
        let message = if message.contains("{{") {
            let template = Template::parse(message).map_err(|e| {
                invalid(
                    "message",
                    format!("error while parsing the error message template: {e}"),
                )
            })?;
            Message::Template(template)
        } else {
            Message::Text(message.to_owned())
        };
        Ok(Box::new(FailEvery { message }))
    }
}

/// The message: fixed text, or a template to render with each record.
enum Message {
    Text(String),
    Template(Template),
}

struct FailEvery {
    message: Message,
}

#[async_trait::async_trait]
impl Processor for FailEvery {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter().zip(outcomes.iter_mut()) {
            let message = match &self.message {
                Message::Text(text) => text.clone(),
                Message::Template(template) => template
                    .render(record)
                    .unwrap_or_else(|error| error.to_string()),
            };
            *outcome = Outcome::Fail(message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        assert_parameters, meta, payload, run, settings, structured, validated_settings,
    };
    use culvert_domain::{Change, Operation};
    use culvert_plugins::spec::validate;
    use serde_json::json;

    /// Validate (defaults applied) and configure, as the registry does.
    fn processor(pairs: &[(&str, &str)]) -> Box<dyn Processor> {
        crate::testing::configure(&ErrorProcessor::new(), pairs)
            .unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
    }

    /// Two records like those of Conduit's tests of this processor.
    fn two_records() -> Vec<Record> {
        vec![
            Record {
                metadata: meta(&[("foo", "rec 1")]),
                ..payload(None, structured(json!({"foo": "bar"})))
            },
            Record {
                metadata: meta(&[("foo", "rec 2")]),
                ..Record::default()
            },
        ]
    }

    #[test]
    fn conduit_examples() {
        struct Example {
            summary: &'static str,
            settings: &'static [(&'static str, &'static str)],
            have: Record,
            want: Outcome,
        }
        let examples = [Example {
            summary: "Error record with custom error message",
            settings: &[(
                "message",
                "custom error message with data from record: {{.Metadata.foo}}",
            )],
            have: Record {
                operation: Operation::Create,
                metadata: meta(&[("foo", "bar")]),
                payload: Change {
                    before: structured(json!({"bar": "baz"})),
                    after: structured(json!({"foo": "bar"})),
                },
                ..Record::default()
            },
            want: Outcome::Fail("custom error message with data from record: bar".to_owned()),
        }];
        for example in examples {
            let mut p = processor(example.settings);
            let mut records = vec![example.have.clone()];
            let outcomes = run(p.as_mut(), &mut records);
            assert_eq!(outcomes, [example.want], "{}", example.summary);
            assert_eq!(records, [example.have], "{}: unchanged", example.summary);
        }
    }

    #[test]
    fn every_record_fails_with_its_message() {
        let fail = |m: &str| Outcome::Fail(m.to_owned());
        for (pairs, want) in [
            (
                &[][..],
                [
                    fail("error processor triggered"),
                    fail("error processor triggered"),
                ],
            ),
            (
                &[("message", "static error message")][..],
                [fail("static error message"), fail("static error message")],
            ),
            (
                &[("message", "error message: {{.Metadata.foo}}")][..],
                [fail("error message: rec 1"), fail("error message: rec 2")],
            ),
            // Without `{{` the message is not a template: kept as written.
            (
                &[("message", "}} as is")][..],
                [fail("}} as is"), fail("}} as is")],
            ),
        ] {
            let mut p = processor(pairs);
            let mut records = two_records();
            assert_eq!(run(p.as_mut(), &mut records), want, "{pairs:?}");
            assert_eq!(records, two_records(), "records are not changed");
        }
        // An empty batch is fine.
        assert_eq!(run(processor(&[]).as_mut(), &mut []), []);
    }

    #[test]
    fn a_template_that_cannot_render_fails_the_record_with_that_error() {
        let mut p = processor(&[("message", "bad: {{ .Foo }}")]);
        let mut records = two_records();
        let outcomes = run(p.as_mut(), &mut records);
        for outcome in outcomes {
            let Outcome::Fail(message) = outcome else {
                panic!("not failed: {outcome:?}")
            };
            assert!(
                message.contains("can't evaluate field Foo in type opencdc.Record"),
                "{message}"
            );
        }
    }

    #[test]
    fn settings_are_validated() {
        let plugin = ErrorProcessor::new();
        let params = &plugin.specification().parameters;
        assert_parameters(
            &plugin,
            &[("message", "error processor triggered")],
            "false",
        );
        let validated = validated_settings(&plugin, &[]);
        assert_eq!(validated["message"], "error processor triggered");
        assert_eq!(validated["sdk.schema.encode.payload.enabled"], "false");
        plugin.configure(&validated).unwrap();

        let unknown = validate(params, &settings(&[("msg", "x")])).unwrap_err();
        assert!(unknown.to_string().contains("\"msg\""), "{unknown}");
        let not_bool = validate(params, &settings(&[("sdk.schema.decode.key.enabled", "x")]));
        assert!(not_bool.is_err());

        let validated = validated_settings(&plugin, &[("message", "{{ .Metadata.x ")]);
        let Err(error) = plugin.configure(&validated) else {
            panic!("an unclosed action is accepted")
        };
        let error = error.to_string();
        assert!(
            error.contains("\"message\"")
                && error.contains("error while parsing the error message template"),
            "{error}"
        );
    }
}
