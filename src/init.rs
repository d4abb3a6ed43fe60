//! `culvert init` and `culvert quickstart`: a working directory to run a server from, as
//! Conduit's verbs of the same names.
//!
//! `init [dir]` writes `culvert.yaml` (every `culvert run` setting at its default,
//! commented out, with its help; only the paths to the folders below set), a
//! `pipelines/` folder with a sample pipeline (the built-in generator into the built-in
//! log), and empty `connectors/` and `processors/` folders for standalone plugins.
//! `culvert run` started in that directory picks it all up. Existing folders are kept;
//! an existing file is never overwritten unless `--force`.
//!
//! `quickstart [dir]` writes the same into `dir` (default: a new temporary directory,
//! removed afterwards) and runs a server on it with its state in memory, so records flow
//! to the console at once; Ctrl-C stops it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `culvert init`'s arguments.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The directory (created if missing; default: the current one).
    pub dir: Option<PathBuf>,
    /// The directory, as Conduit's `--path` (the positional argument wins).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Overwrite `culvert.yaml` and the sample pipeline if they exist.
    #[arg(long)]
    pub force: bool,
}

/// `culvert quickstart`'s arguments.
#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    /// Keep the working directory here (default: a temporary one, removed on exit).
    pub dir: Option<PathBuf>,
    /// Overwrite the files of an existing `dir`.
    #[arg(long)]
    pub force: bool,
    /// Logs (and the records the log destination prints) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The config file's name (`culvert run`'s default `--config.path`).
pub const CONFIG_FILE: &str = "culvert.yaml";
/// The sample pipeline's file, under `pipelines/`.
pub const SAMPLE_FILE: &str = "generator-to-log.yaml";
/// The sample pipeline's id.
pub const SAMPLE_ID: &str = "generator-to-log";

/// What the sample pipeline's log destination prints before each record.
const SAMPLE_MESSAGE: &str = "sample record";

/// The folders a working directory has.
const FOLDERS: [&str; 3] = ["pipelines", "connectors", "processors"];

/// Run `culvert init`; `run` is the `culvert run` command whose flags the config file
/// lists.
pub fn init(args: InitArgs, run: &clap::Command) -> ExitCode {
    let dir = args.dir.or(args.path).unwrap_or_else(|| PathBuf::from("."));
    match scaffold(&dir, run, args.force) {
        Ok(written) => {
            for line in written {
                println!("{line}");
            }
            println!(
                "next: cd {} && culvert pipelines validate pipelines && culvert run",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Run `culvert quickstart`.
pub fn quickstart(args: QuickstartArgs, run: &clap::Command) -> ExitCode {
    let (dir, temporary) = match args.dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("culvert-quickstart-{}", std::process::id())),
            true,
        ),
    };
    let code = match scaffold(&dir, run, args.force || temporary) {
        Ok(_) => serve(&dir, args.json),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    };
    if temporary {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("warning: could not remove {}: {e}", dir.display());
        }
    }
    code
}

/// Write the working directory; the lines to print, or an exit code and why not.
fn scaffold(dir: &Path, run: &clap::Command, force: bool) -> Result<Vec<String>, (u8, String)> {
    let files = [
        (dir.join(CONFIG_FILE), config_file(run)),
        (
            dir.join("pipelines").join(SAMPLE_FILE),
            SAMPLE_PIPELINE
                .replace("{id}", SAMPLE_ID)
                .replace("{message}", SAMPLE_MESSAGE),
        ),
    ];
    // Refuse before writing anything.
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(path, _)| path.exists())
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err((
                2,
                format!(
                    "{} already exist(s); use --force to overwrite",
                    existing.join(", ")
                ),
            ));
        }
    }
    let mut written = Vec::new();
    let io = |what: &Path, e: std::io::Error| (1, format!("{}: {e}", what.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for folder in FOLDERS {
        let path = dir.join(folder);
        if path.is_dir() {
            written.push(format!("kept {}/ (exists)", path.display()));
        } else {
            std::fs::create_dir(&path).map_err(|e| io(&path, e))?;
            written.push(format!("created {}/", path.display()));
        }
    }
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(format!("wrote {}", path.display()));
    }
    Ok(written)
}

/// Run `culvert run` in `dir` with its state in memory until it ends; Ctrl-C reaches it
/// (it drains and exits) while this process waits.
/// Send the child SIGTERM (it drains and exits); SIGKILL if it cannot be signalled.
#[allow(unsafe_code)]
fn terminate(child: &mut std::process::Child) -> std::io::Result<()> {
    extern "C" {
        fn kill(pid: i32, signal: i32) -> i32;
    }
    const SIGTERM: i32 = 15;
    let Ok(pid) = i32::try_from(child.id()) else {
        return child.kill();
    };
    // SAFETY: kill(2) only sends a signal to the process id of our own, not yet reaped,
    // child (so the id cannot have been reused).
    if unsafe { kill(pid, SIGTERM) } == 0 {
        Ok(())
    } else {
        child.kill()
    }
}

fn serve(dir: &Path, json: bool) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: finding the culvert binary: {e}");
            return ExitCode::from(1);
        }
    };
    let mut command = std::process::Command::new(exe);
    command
        .current_dir(dir)
        .args(["run", "--db.type", "inmemory"]);
    if json {
        command.args(["--log.format", "json"]);
    }
    if !json {
        println!(
            "Starting a demo pipeline (generator -> log) from {}; records follow. Ctrl-C stops it.",
            dir.display()
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let status = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Ctrl-C reaches the server from the terminal (same process group) and it drains;
        // this process only keeps from dying of it. SIGTERM sent to this process alone is
        // passed on: the server drains and exits as `culvert run` does (0), and so does
        // this process.
        let mut interrupts = signal(SignalKind::interrupt())?;
        let mut terminations = signal(SignalKind::terminate())?;
        let mut child = command.spawn()?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok::<_, std::io::Error>(status);
            }
            // Polled: std's child has no async wait, and the server's own exit is rare.
            // Cancel-safety: a signal's `recv` and a sleep hold nothing; a signal that
            // arrives while another branch wins is delivered to the next `recv`.
            tokio::select! {
                _ = interrupts.recv() => {}
                _ = terminations.recv() => terminate(&mut child)?,
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
        }
    });
    match status {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: running culvert run: {e}");
            ExitCode::from(1)
        }
    }
}

/// The sample pipeline: made-up structured records, one a second, printed by the log
/// destination.
const SAMPLE_PIPELINE: &str = r#"# A sample pipeline: the built-in generator makes one structured record a second and
# the built-in log destination prints each. Check it with `culvert pipelines validate`.
version: "2.2"
pipelines:
  - id: {id}
    status: running
    description: Made-up records from the generator, printed by the log destination.
    connectors:
      - id: example-source
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          format.options.name: string
          operations: create
          rate: "1"
      - id: example-destination
        type: destination
        plugin: builtin:log
        settings:
          level: info
          message: "{message}"
"#;

/// `culvert.yaml`: every flag of `culvert run` at its default, commented out, nested by
/// its dotted name; the folder paths set.
fn config_file(run: &clap::Command) -> String {
    let active = [
        ("pipelines.path", "./pipelines"),
        ("connectors.path", "./connectors"),
        ("processors.path", "./processors"),
    ];
    let mut settings: Vec<(Vec<String>, String, String, bool)> = Vec::new();
    for arg in run.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if long == "config.path" || arg.is_hide_set() {
            continue;
        }
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let (value, on) = match active.iter().find(|(k, _)| *k == long) {
            Some((_, v)) => ((*v).to_owned(), true),
            None => (
                arg.get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                false,
            ),
        };
        settings.push((
            long.split('.').map(str::to_owned).collect(),
            value,
            help,
            on,
        ));
    }
    let mut out = String::from(
        "# Culvert configuration, read by `culvert run` from ./culvert.yaml (or --config.path).\n\
         # Keys nest by the flags' dotted names. Flags and CULVERT_* environment variables\n\
         # win over this file. Each setting is shown at its default, commented out.\n",
    );
    write_tree(&mut out, &settings, 0);
    out
}

/// Write settings sharing the first `depth` name segments, grouping by the next one in
/// the order first seen.
fn write_tree(out: &mut String, settings: &[(Vec<String>, String, String, bool)], depth: usize) {
    let indent = "  ".repeat(depth);
    let mut groups: Vec<&str> = Vec::new();
    for (name, ..) in settings {
        if !groups.contains(&name[depth].as_str()) {
            groups.push(&name[depth]);
        }
    }
    for group in groups {
        let members: Vec<(Vec<String>, String, String, bool)> = settings
            .iter()
            .filter(|(name, ..)| name[depth] == group)
            .cloned()
            .collect();
        match members.as_slice() {
            [(name, value, help, on)] if name.len() == depth + 1 => {
                if !help.is_empty() {
                    out.push_str(&format!("{indent}# {help}\n"));
                }
                let comment = if *on { "" } else { "# " };
                out.push_str(&format!("{indent}{comment}{group}: {value:?}\n"));
            }
            _ => {
                out.push_str(&format!("{indent}{group}:\n"));
                write_tree(out, &members, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> clap::Command {
        clap::Command::new("run")
            .arg(
                clap::Arg::new("a")
                    .long("db.rocksdb.path")
                    .default_value("./data")
                    .help("Where."),
            )
            .arg(clap::Arg::new("b").long("db.type").default_value("rocksdb"))
            .arg(clap::Arg::new("c").long("pipelines.path"))
    }

    #[test]
    fn the_config_file_nests_comments_and_sets_the_paths() {
        let text = config_file(&command());
        assert!(
            text.ends_with(
                "db:\n  rocksdb:\n    # Where.\n    # path: \"./data\"\n  # type: \"rocksdb\"\npipelines:\n  path: \"./pipelines\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = std::env::temp_dir().join(format!("culvert-init-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(scaffold(&dir, &command(), false).is_ok());
        let (code, message) = scaffold(&dir, &command(), false).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("culvert.yaml"), "{message}");
        assert!(scaffold(&dir, &command(), true).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
