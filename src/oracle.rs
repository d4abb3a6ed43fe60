//! `culvert oracle verdict`: count what a pipeline fed by `builtin:oracle` delivered — lost,
//! duplicated, reordered, corrupted — from the oracle destination's ledger (`--ledger`) or
//! from a file of OpenCDC JSON records (`--opencdc`, as `builtin:file` writes). The rules
//! are `culvert_connectors::oracle::verdict`'s.
//!
//! Exit codes: 0 when nothing is missing, reordered or corrupted (duplicates are allowed:
//! at-least-once), 1 otherwise, 2 when the file cannot be read.

use culvert_connectors::oracle::{verdict_from_ledger, verdict_from_opencdc_file, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;

/// `culvert oracle ...`
#[derive(clap::Subcommand, Debug)]
pub enum OracleCommand {
    /// Count what arrived against what the oracle source emitted.
    ///
    /// Example: culvert oracle verdict --ledger ./ledger --partitions 4 --records 200000
    Verdict(VerdictArgs),
}

/// What to check, against what.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["ledger", "opencdc"])))]
pub struct VerdictArgs {
    /// The oracle destination's ledger file.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// A file of OpenCDC JSON records, one per line.
    #[arg(long)]
    opencdc: Option<PathBuf>,
    /// The source's `partitions`.
    #[arg(long)]
    partitions: u64,
    /// The source's `records` (0: no end; then missing counts gaps below the highest seen).
    #[arg(long)]
    records: u64,
    /// How to print the counts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// How to print.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Output {
    /// One count per line.
    Table,
    /// One JSON object.
    Json,
}

/// Run an `oracle` verb.
pub fn run(command: OracleCommand) -> ExitCode {
    let OracleCommand::Verdict(args) = command;
    if args.partitions == 0 {
        eprintln!("error: --partitions must be at least 1");
        return ExitCode::from(2);
    }
    let result = match (&args.ledger, &args.opencdc) {
        (Some(ledger), _) => verdict_from_ledger(ledger, args.partitions, args.records),
        (None, Some(file)) => verdict_from_opencdc_file(file, args.partitions, args.records),
        (None, None) => {
            eprintln!("error: give --ledger or --opencdc");
            return ExitCode::from(2);
        }
    };
    let verdict = match result {
        Ok(verdict) => verdict,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        Output::Json => println!("{}", json(&verdict)),
        Output::Table => print!("{}", table(&verdict)),
    }
    if verdict.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn json(v: &Verdict) -> serde_json::Value {
    let first_missing: Vec<String> = v
        .first_missing
        .iter()
        .map(|(p, s)| format!("{p}-{s}"))
        .collect();
    serde_json::json!({
        "received": v.received,
        "unique": v.unique,
        "missing": v.missing,
        "duplicated": v.duplicated,
        "reordered": v.reordered,
        "corrupted": v.corrupted,
        "firstMissing": first_missing,
        "ok": v.ok(),
    })
}

fn table(v: &Verdict) -> String {
    let mut out = String::new();
    for (name, count) in [
        ("received", v.received),
        ("unique", v.unique),
        ("missing", v.missing),
        ("duplicated", v.duplicated),
        ("reordered", v.reordered),
        ("corrupted", v.corrupted),
    ] {
        out.push_str(&format!("{name:<12}{count}\n"));
    }
    if !v.first_missing.is_empty() {
        let ids: Vec<String> = v
            .first_missing
            .iter()
            .map(|(p, s)| format!("{p}-{s}"))
            .collect();
        out.push_str(&format!("{:<12}{}\n", "first", ids.join(", ")));
    }
    out.push_str(&format!(
        "{:<12}{}\n",
        "verdict",
        if v.ok() { "ok" } else { "FAILED" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_counts_as_a_table_and_as_json() {
        let v = Verdict {
            received: 5,
            unique: 3,
            missing: 1,
            duplicated: 2,
            first_missing: vec![(0, 2)],
            ..Verdict::default()
        };
        assert_eq!(
            table(&v),
            "received    5\nunique      3\nmissing     1\nduplicated  2\nreordered   0\n\
             corrupted   0\nfirst       0-2\nverdict     FAILED\n"
        );
        let j = json(&v);
        assert_eq!(j["missing"], 1);
        assert_eq!(j["firstMissing"][0], "0-2");
        assert_eq!(j["ok"], false);
    }
}
