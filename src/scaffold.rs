//! `culvert connectors new NAME` and `culvert processors new NAME` (Conduit's verbs): a
//! new Go plugin project that builds as it is written, for Conduit and Culvert alike.
//!
//! * a connector (conduit-connector-sdk): a source that emits `recordCount` records whose
//!   position is a counter, and a destination that appends each record to a file as a JSON
//!   line; built with `go build`, installed with `culvert connector-plugins install`;
//! * a processor (conduit-processor-sdk, WASM): sets a metadata field on every record;
//!   built with `GOOS=wasip1 GOARCH=wasm go build`, installed with `culvert
//!   processor-plugins install`.
//!
//! The files are Culvert's own small templates (Conduit clones its template repositories
//! from GitHub; the result has the same shape: a module `github.com/<owner>/conduit-<kind>-
//! <name>`, a `main` package, a README). Unless `--skip-build`, `go mod tidy` fetches the SDK
//! and `go build` checks the project builds, so what is left is a working plugin.
//!
//! Exit codes: 0 written (and built); 2 bad usage (a name or module of the wrong form, a
//! directory that exists without `--force`); 3 the environment (no `go`, the module proxy
//! unreachable); 1 the project did not build (a bug: report it).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What `new` scaffolds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connector,
    Processor,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Connector => "connector",
            Kind::Processor => "processor",
        }
    }
}

/// `connectors new` and `processors new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The plugin's name (lower-case letters, digits and dashes, starting with a letter):
    /// its specification's name and the built file's.
    pub name: String,
    /// The Go module path: github.com/<owner>/conduit-<kind>-<name>.
    #[arg(long)]
    pub module: String,
    /// Where to write the project (default: ./conduit-<kind>-<name>).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The language; only `go` exists.
    #[arg(long, default_value = "go")]
    pub lang: String,
    /// The SDK version to require (default: the one Culvert's own tests build with).
    #[arg(long)]
    pub sdk_version: Option<String>,
    /// Write the files only: no `go mod tidy`, no check build.
    #[arg(long, alias = "skip-generate")]
    pub skip_build: bool,
    /// Initialise a git repository and commit the files.
    #[arg(long)]
    pub git: bool,
    /// Write into a directory that exists and is not empty (its files of the same names
    /// are replaced).
    #[arg(long)]
    pub force: bool,
}

/// The SDK each kind requires by default, and conduit-commons (the versions Culvert's test
/// fixtures build with, so known to work together).
const CONNECTOR_SDK: &str = "v0.14.2";
const PROCESSOR_SDK: &str = "v0.5.1";
const COMMONS: &str = "v0.6.0";

/// Run the verb.
pub fn run(kind: Kind, args: NewArgs) -> ExitCode {
    match scaffold(kind, &args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn scaffold(kind: Kind, args: &NewArgs) -> Result<Vec<String>, Failure> {
    check_request(kind, args)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("conduit-{}-{}", kind.word(), args.name)));
    let not_empty = std::fs::read_dir(&dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if not_empty && !args.force {
        return Err((
            2,
            format!(
                "{} exists and is not empty; choose another --path, or --force to write into it",
                dir.display()
            ),
        ));
    }
    let sdk = args.sdk_version.clone().unwrap_or_else(|| {
        match kind {
            Kind::Connector => CONNECTOR_SDK,
            Kind::Processor => PROCESSOR_SDK,
        }
        .to_owned()
    });
    let io = |what: &Path, e: std::io::Error| (3, format!("writing {}: {e}", what.display()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let mut lines = Vec::new();
    for (file, text) in files(kind, &args.name, &args.module, &sdk) {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        lines.push(format!("wrote {}", path.display()));
    }
    if !args.skip_build {
        go(&dir, &["mod", "tidy"], kind, 3)?;
        lines.push("go mod tidy: the SDK and its dependencies are in go.mod and go.sum".into());
        let output = built_file(kind, &args.name);
        go(&dir, &["build", "-o", &output, "."], kind, 1)?;
        lines.push(format!("built {}", dir.join(&output).display()));
    }
    if args.git {
        for step in [
            vec!["init", "-q"],
            vec!["add", "."],
            vec![
                "-c",
                "user.name=culvert",
                "-c",
                "user.email=culvert@localhost",
                "commit",
                "-q",
                "-m",
                "Scaffold with culvert",
            ],
        ] {
            run_tool("git", &step, &dir, &[])
                .map_err(|why| (3, format!("git {}: {why}", step.join(" "))))?;
        }
        lines.push("initialised a git repository with a first commit".into());
    }
    lines.push(next_steps(kind, &args.name, &dir));
    Ok(lines)
}

/// A name and module of the expected form, and a language that exists.
fn check_request(kind: Kind, args: &NewArgs) -> Result<(), Failure> {
    if args.lang != "go" {
        return Err((
            2,
            format!(
                "--lang {:?}: only go is available (the plugin SDKs are Go modules)",
                args.lang
            ),
        ));
    }
    let name = &args.name;
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err((
            2,
            format!(
                "name {name:?}: use lower-case letters, digits and dashes, starting with a \
                 letter (at most 64)"
            ),
        ));
    }
    let suffix = format!("conduit-{}-{name}", kind.word());
    let owner = args
        .module
        .strip_prefix("github.com/")
        .and_then(|rest| rest.strip_suffix(&format!("/{suffix}")));
    if !owner.is_some_and(|o| !o.is_empty() && !o.contains('/')) {
        return Err((
            2,
            format!(
                "--module {:?} must be github.com/<owner>/{suffix} for the name {name:?} (try \
                 --module github.com/<you>/{suffix})",
                args.module
            ),
        ));
    }
    Ok(())
}

/// The file `go build` writes.
fn built_file(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Connector => name.to_owned(),
        Kind::Processor => format!("{name}.wasm"),
    }
}

/// Run `go ARGS` in `dir` (for WASM when `kind` is a processor); `code` is the exit code of
/// a failure that is not a missing `go`.
fn go(dir: &Path, args: &[&str], kind: Kind, code: u8) -> Result<(), Failure> {
    let env: &[(&str, &str)] = match kind {
        Kind::Connector => &[],
        Kind::Processor if args.first() == Some(&"build") => {
            &[("GOOS", "wasip1"), ("GOARCH", "wasm")]
        }
        Kind::Processor => &[],
    };
    run_tool("go", args, dir, env).map_err(|why| match why {
        ToolError::Missing => (
            3,
            "go is not on the PATH: install Go (https://go.dev/dl/) or pass --skip-build".into(),
        ),
        ToolError::Failed(output) => (code, format!("go {}: {output}", args.join(" "))),
    })
}

enum ToolError {
    Missing,
    Failed(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Missing => f.write_str("not on the PATH"),
            ToolError::Failed(output) => f.write_str(output),
        }
    }
}

fn run_tool(tool: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Result<(), ToolError> {
    let output = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing,
            _ => ToolError::Failed(e.to_string()),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let text = text.trim();
    Err(ToolError::Failed(if text.is_empty() {
        output.status.to_string()
    } else {
        text.to_owned()
    }))
}

fn next_steps(kind: Kind, name: &str, dir: &Path) -> String {
    let dir = dir.display();
    match kind {
        Kind::Connector => format!(
            "next: cd {dir} && go build -o {name} . && culvert connector-plugins install \
             ./{name}; then use it as plugin \"standalone:{name}\""
        ),
        Kind::Processor => format!(
            "next: cd {dir} && GOOS=wasip1 GOARCH=wasm go build -o {name}.wasm . && culvert \
             processor-plugins install ./{name}.wasm; then use it as plugin \
             \"standalone:{name}\""
        ),
    }
}

/// The project's files: (relative path, content).
fn files(kind: Kind, name: &str, module: &str, sdk: &str) -> Vec<(&'static str, String)> {
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{module}}", module)
            .replace("{{sdk}}", sdk)
            .replace("{{commons}}", COMMONS)
    };
    match kind {
        Kind::Connector => vec![
            ("go.mod", fill(CONNECTOR_GO_MOD)),
            ("main.go", fill(CONNECTOR_MAIN)),
            ("README.md", fill(CONNECTOR_README)),
            (".gitignore", format!("/{name}\n")),
        ],
        Kind::Processor => vec![
            ("go.mod", fill(PROCESSOR_GO_MOD)),
            ("main.go", fill(PROCESSOR_MAIN)),
            ("README.md", fill(PROCESSOR_README)),
            (".gitignore", format!("/{name}.wasm\n")),
        ],
    }
}

const CONNECTOR_GO_MOD: &str = "module {{module}}

go 1.24

require (
\tgithub.com/conduitio/conduit-commons {{commons}}
\tgithub.com/conduitio/conduit-connector-sdk {{sdk}}
)
";

const CONNECTOR_MAIN: &str = r#"// Command {{name}} is a Conduit connector plugin (for Conduit and Culvert): its source
// emits recordCount records whose position is a counter; its destination appends each
// record it is given to a file as a JSON line. Change both to talk to your system.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/conduitio/conduit-commons/config"
	"github.com/conduitio/conduit-commons/opencdc"
	sdk "github.com/conduitio/conduit-connector-sdk"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "v0.1.0"

func main() {
	sdk.Serve(sdk.Connector{
		NewSpecification: func() sdk.Specification {
			return sdk.Specification{
				Name:        "{{name}}",
				Summary:     "The {{name}} connector.",
				Description: "Source: emits recordCount counter records. Destination: appends records to a file.",
				Version:     version,
				Author:      "",
				SourceParams: config.Parameters{
					"recordCount": {Default: "10", Description: "how many records to emit", Type: config.ParameterTypeInt},
				},
				DestinationParams: config.Parameters{
					"path": {Description: "the file to append records to", Type: config.ParameterTypeString,
						Validations: []config.Validation{config.ValidationRequired{}}},
				},
			}
		},
		NewSource:      func() sdk.Source { return &Source{} },
		NewDestination: func() sdk.Destination { return &Destination{} },
	})
}

// SourceConfig is the source's settings.
type SourceConfig struct {
	sdk.UnimplementedSourceConfig
	RecordCount int `json:"recordCount"`
}

// Validate refuses settings the source cannot work with.
func (c *SourceConfig) Validate(context.Context) error {
	if c.RecordCount < 0 {
		return fmt.Errorf("recordCount must be 0 or more")
	}
	return nil
}

// Source emits counter records, resuming after the last position it was given.
type Source struct {
	sdk.UnimplementedSource
	cfg  SourceConfig
	next int
}

func (s *Source) Config() sdk.SourceConfig { return &s.cfg }

func (s *Source) Open(_ context.Context, position opencdc.Position) error {
	if len(position) > 0 {
		n, err := strconv.Atoi(string(position))
		if err != nil {
			return fmt.Errorf("invalid position %q: %w", position, err)
		}
		s.next = n + 1
	}
	return nil
}

func (s *Source) Read(ctx context.Context) (opencdc.Record, error) {
	if s.next >= s.cfg.RecordCount {
		<-ctx.Done() // nothing more: wait until stopped
		return opencdc.Record{}, ctx.Err()
	}
	n := s.next
	s.next++
	return sdk.Util.Source.NewRecordCreate(
		opencdc.Position(strconv.Itoa(n)),
		opencdc.Metadata{"{{name}}.n": strconv.Itoa(n)},
		opencdc.RawData(strconv.Itoa(n)),
		opencdc.RawData(fmt.Sprintf("record %d", n)),
	), nil
}

func (s *Source) Ack(context.Context, opencdc.Position) error { return nil }

func (s *Source) Teardown(context.Context) error { return nil }

// DestinationConfig is the destination's settings.
type DestinationConfig struct {
	sdk.UnimplementedDestinationConfig
	Path string `json:"path"`
}

// Validate refuses settings the destination cannot work with.
func (c *DestinationConfig) Validate(context.Context) error {
	if c.Path == "" {
		return fmt.Errorf("path is required")
	}
	return nil
}

// Destination appends records to a file, one JSON line each.
type Destination struct {
	sdk.UnimplementedDestination
	cfg  DestinationConfig
	file *os.File
}

func (d *Destination) Config() sdk.DestinationConfig { return &d.cfg }

func (d *Destination) Open(context.Context) error {
	file, err := os.OpenFile(d.cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	d.file = file
	return nil
}

func (d *Destination) Write(_ context.Context, records []opencdc.Record) (int, error) {
	for i, record := range records {
		line, err := json.Marshal(record)
		if err != nil {
			return i, err
		}
		if _, err := d.file.Write(append(line, '\n')); err != nil {
			return i, err
		}
	}
	return len(records), nil
}

func (d *Destination) Teardown(context.Context) error {
	if d.file != nil {
		return d.file.Close()
	}
	return nil
}
"#;

const CONNECTOR_README: &str = "# conduit-connector-{{name}}

A Conduit connector plugin, for Conduit and Culvert. Scaffolded with `culvert connectors new`.

Build and install it where a server loads standalone connectors:

```sh
go build -o {{name}} .
culvert connector-plugins install ./{{name}}
```

Then use it in a pipeline as `plugin: standalone:{{name}}`. The source emits `recordCount`
records (a counter is their position); the destination appends each record to the file at
`path` as a JSON line. Change `main.go` to read from and write to your system.
";

const PROCESSOR_GO_MOD: &str = "module {{module}}

go 1.24

require (
\tgithub.com/conduitio/conduit-commons {{commons}}
\tgithub.com/conduitio/conduit-processor-sdk {{sdk}}
)
";

const PROCESSOR_MAIN: &str = r#"//go:build wasm

// Command {{name}} is a Conduit processor plugin (WebAssembly, for Conduit and Culvert): it
// sets the metadata field `{{name}}.processed` of every record to the setting `value`.
// Change Process to do your work.
package main

import (
	"context"

	"github.com/conduitio/conduit-commons/config"
	"github.com/conduitio/conduit-commons/opencdc"
	sdk "github.com/conduitio/conduit-processor-sdk"
)

func main() {
	sdk.Run(&Processor{})
}

// Processor marks every record.
type Processor struct {
	sdk.UnimplementedProcessor
	value string
}

func (p *Processor) Specification() (sdk.Specification, error) {
	return sdk.Specification{
		Name:        "{{name}}",
		Summary:     "The {{name}} processor.",
		Description: "Sets the metadata field {{name}}.processed of every record.",
		Version:     "v0.1.0",
		Author:      "",
		Parameters: config.Parameters{
			"value": {Default: "true", Type: config.ParameterTypeString,
				Description: "what to set the field to"},
		},
	}, nil
}

func (p *Processor) Configure(_ context.Context, cfg config.Config) error {
	p.value = cfg["value"]
	if p.value == "" {
		p.value = "true"
	}
	return nil
}

func (p *Processor) Process(_ context.Context, records []opencdc.Record) []sdk.ProcessedRecord {
	out := make([]sdk.ProcessedRecord, 0, len(records))
	for _, record := range records {
		if record.Metadata == nil {
			record.Metadata = opencdc.Metadata{}
		}
		record.Metadata["{{name}}.processed"] = p.value
		out = append(out, sdk.SingleRecord(record))
	}
	return out
}
"#;

const PROCESSOR_README: &str = "# conduit-processor-{{name}}

A Conduit processor plugin (WebAssembly), for Conduit and Culvert. Scaffolded with
`culvert processors new`.

Build and install it where a server loads standalone processors:

```sh
GOOS=wasip1 GOARCH=wasm go build -o {{name}}.wasm .
culvert processor-plugins install ./{{name}}.wasm
```

Then use it in a pipeline as `plugin: standalone:{{name}}`. It sets the metadata field
`{{name}}.processed` of every record to the setting `value` (default `true`). Change
`Process` in `main.go` to do your work.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, module: &str) -> NewArgs {
        NewArgs {
            name: name.into(),
            module: module.into(),
            path: None,
            lang: "go".into(),
            sdk_version: None,
            skip_build: true,
            git: false,
            force: false,
        }
    }

    #[test]
    fn names_and_modules_are_checked() {
        let ok = args("my-source", "github.com/acme/conduit-connector-my-source");
        assert!(check_request(Kind::Connector, &ok).is_ok());
        for (kind, name, module, says) in [
            (
                Kind::Connector,
                "My",
                "github.com/a/conduit-connector-My",
                "lower-case",
            ),
            (
                Kind::Connector,
                "1x",
                "github.com/a/conduit-connector-1x",
                "starting with",
            ),
            (
                Kind::Connector,
                "x",
                "github.com/a/conduit-processor-x",
                "github.com/<you>/conduit-connector-x",
            ),
            (
                Kind::Processor,
                "x",
                "gitlab.com/a/conduit-processor-x",
                "must be github.com",
            ),
            (
                Kind::Processor,
                "x",
                "github.com/a/b/conduit-processor-x",
                "must be github.com",
            ),
        ] {
            let (code, message) = check_request(kind, &args(name, module)).unwrap_err();
            assert_eq!(code, 2);
            assert!(message.contains(says), "{name} {module}: {message}");
        }
        let mut python = args("x", "github.com/a/conduit-processor-x");
        python.lang = "python".into();
        assert!(check_request(Kind::Processor, &python)
            .unwrap_err()
            .1
            .contains("only go"));
    }

    #[test]
    fn the_files_carry_the_name_module_and_versions() {
        let files = files(
            Kind::Processor,
            "tagger",
            "github.com/a/conduit-processor-tagger",
            "v9.9.9",
        );
        let text = |name: &str| &files.iter().find(|(f, _)| *f == name).unwrap().1;
        assert!(text("go.mod").starts_with("module github.com/a/conduit-processor-tagger\n"));
        assert!(text("go.mod").contains("conduit-processor-sdk v9.9.9"));
        assert!(text("main.go").contains("Name:        \"tagger\""));
        assert!(
            !files.iter().any(|(_, t)| t.contains("{{")),
            "a placeholder is left"
        );
    }

    #[test]
    fn a_directory_with_files_needs_force() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let mut request = args("x", "github.com/a/conduit-connector-x");
        request.path = Some(tmp.path().to_owned());
        let (code, message) = scaffold(Kind::Connector, &request).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("--force"), "{message}");
        request.force = true;
        scaffold(Kind::Connector, &request).unwrap();
        assert!(tmp.path().join("main.go").is_file());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
            "mine"
        );
    }
}
