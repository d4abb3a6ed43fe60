//! Conduit's result envelope for the offline verbs that take `--json`
//! (`pipelines repair`, `pipelines init`): `{command, ok, summary, result, error}`, with the
//! error's reason in `error.code`, and Conduit's exit codes (2 for what the input causes, 1
//! for failures of ours or the disk's). Without `--json` the verb's text goes to standard
//! output and an error to standard error with its reason and suggestion.

use serde::Serialize;
use std::process::ExitCode;

/// A refusal: Conduit's reason code, what happened, what to do, where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandError {
    /// The reason code (`repair.plan_stale`, `pipelines.init_destination_exists`, ...).
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The field or file concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
}

impl CommandError {
    /// An error with a suggestion and no path.
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        suggestion: impl Into<String>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            suggestion: Some(suggestion.into()),
            config_path: None,
        }
    }

    /// The exit code: 1 for internal and write failures, 2 for the rest (Conduit maps
    /// InvalidArgument, NotFound, AlreadyExists and FailedPrecondition there).
    pub fn exit_code(&self) -> u8 {
        match self.code {
            "internal" | "io.write_failed" => 1,
            code if code.starts_with("internal.") => 1,
            _ => 2,
        }
    }
}

/// A verb's success: its text for a person, and its summary and result for the envelope.
pub struct Done {
    /// Printed without `--json`.
    pub text: String,
    /// The envelope's `summary`.
    pub summary: serde_json::Value,
    /// The envelope's `result`.
    pub result: serde_json::Value,
}

/// Print `outcome` (as the envelope of `command` with `json`) and give the exit code.
pub fn finish(command: &str, json: bool, outcome: Result<Done, CommandError>) -> ExitCode {
    let (summary, result, error) = match outcome {
        Ok(done) => {
            if !json {
                print!("{}", done.text);
            }
            (done.summary, done.result, None)
        }
        Err(error) => {
            if !json {
                eprintln!("error: {} [{}]", error.message, error.code);
                if let Some(suggestion) = &error.suggestion {
                    eprintln!("  suggestion: {suggestion}");
                }
            }
            (
                serde_json::Value::Null,
                serde_json::Value::Null,
                Some(error),
            )
        }
    };
    if json {
        let envelope = serde_json::json!({
            "command": command,
            "ok": error.is_none(),
            "summary": summary,
            "result": result,
            "error": error,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&envelope).expect("JSON serialises")
        );
    }
    match error {
        None => ExitCode::SUCCESS,
        Some(error) => ExitCode::from(error.exit_code()),
    }
}

#[cfg(test)]
mod tests {
    use super::CommandError;

    #[test]
    fn internal_failures_exit_1_and_the_rest_2() {
        let code = |c| CommandError::new(c, "m", "s").exit_code();
        assert_eq!(code("internal"), 1);
        assert_eq!(code("internal.error"), 1);
        assert_eq!(code("io.write_failed"), 1);
        assert_eq!(code("repair.plan_stale"), 2);
        assert_eq!(code("pipelines.init_destination_exists"), 2);
    }
}
