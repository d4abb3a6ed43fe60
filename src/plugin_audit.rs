//! `culvert connector-plugins audit` and `culvert processor-plugins audit` (also `culvert
//! connectors audit`, Conduit's name): every plugin installed in the plugin directory
//! checked again against an index (docs/plugins-install.md), offline like `install`.
//! Install-time checks stop a bad artifact from being installed; an audit finds the one
//! installed last month whose version has since been yanked, whose file changed on disk, or
//! that the index no longer lists.
//!
//! Each installed file is hashed (SHA-256) and its specification read (a connector is
//! started and asked, a module compiled and asked), then given one finding, the worst that
//! applies (Conduit's codes and severities where it has the case):
//!
//! | code | status | when |
//! |---|---|---|
//! | `VERIFIED` | pass | its digest is an index entry's, not yanked |
//! | `YANKED_VERSION` | fail | the entry its digest or its name and version match is yanked |
//! | `DRIFTED` | warn | the index has its name and version with another digest: the file changed after it was published or installed |
//! | `UNKNOWN_VERSION` | warn | the index has its name, not its version |
//! | `DELISTED` | warn | the index does not have its name |
//! | `UNREADABLE` | warn | its specification could not be read (not a plugin, or broken) |
//!
//! Exit codes: 0 when nothing failed (warnings are printed), 2 when a finding failed, 3
//! when the index cannot be read (no finding is made from an index that is not there), 2
//! when it is not a valid index.

use crate::cli::{print_value, Output};
use crate::plugin_install::{
    hex, hex_digest, platform, read_index, read_spec, Entry, Failure, Index, Kind, PluginDirs,
    Unreadable,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// `audit`'s arguments.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The index to check against: a file path, a file:// or an http(s):// URL of a JSON or
    /// YAML document (see docs/plugins-install.md).
    #[arg(long, visible_alias = "index-url", alias = "index-file")]
    pub index: String,
    #[command(flatten)]
    pub dirs: PluginDirs,
    #[command(flatten)]
    pub output: Output,
}

/// How a finding counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// What the audit found about one installed plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file, relative to the plugin directory.
    pub file: String,
    /// The plugin's name (its specification's, else the file's).
    pub name: String,
    /// Its version, when its specification could be read.
    pub version: Option<String>,
    pub sha256: String,
    pub status: Status,
    /// `VERIFIED`, `YANKED_VERSION`, `DRIFTED`, `UNKNOWN_VERSION`, `DELISTED`, `UNREADABLE`.
    pub code: &'static str,
    /// What it means, and what to do.
    pub detail: String,
}

/// The counts of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct Summary {
    checked: usize,
    pass: usize,
    warn: usize,
    fail: usize,
}

/// The finding for a plugin called `name` at `version` (`Err`: why its specification
/// could not be read) whose file has `digest`, against `index`'s entries of `kind`.
pub fn classify(
    index: &Index,
    kind: Kind,
    name: &str,
    version: Result<&str, &str>,
    digest: &str,
) -> (Status, &'static str, String) {
    let entries: Vec<&Entry> = index.plugins.iter().filter(|e| e.kind == kind).collect();
    // Its exact bytes are in the index: that entry says it all.
    let same_bytes = |e: &Entry| {
        hex_digest(&e.sha256)
            .ok()
            .is_some_and(|d| d.eq_ignore_ascii_case(digest))
    };
    if let Some(entry) = entries.iter().find(|e| same_bytes(e)) {
        if entry.yanked {
            return (
                Status::Fail,
                "YANKED_VERSION",
                format!(
                    "{}; uninstall it or install another version",
                    entry.yanked_text()
                ),
            );
        }
        return (
            Status::Pass,
            "VERIFIED",
            format!(
                "the index's {}@{} (same SHA-256)",
                entry.name, entry.version
            ),
        );
    }
    let version = match version {
        Ok(version) => version,
        Err(why) => {
            return (
                Status::Warn,
                "UNREADABLE",
                format!("its specification could not be read ({why}); a server will not load it"),
            )
        }
    };
    let named: Vec<&Entry> = entries.iter().copied().filter(|e| e.name == name).collect();
    if named.is_empty() {
        return (
            Status::Warn,
            "DELISTED",
            format!(
                "the index has no {} {name:?}: installed from elsewhere, or withdrawn",
                kind.name()
            ),
        );
    }
    let same = |e: &Entry| e.version.trim_start_matches('v') == version.trim_start_matches('v');
    if let Some(yanked) = named.iter().find(|e| same(e) && e.yanked) {
        return (
            Status::Fail,
            "YANKED_VERSION",
            format!(
                "{}; uninstall it or install another version",
                yanked.yanked_text()
            ),
        );
    }
    let (os, arch) = platform();
    if let Some(entry) = named
        .iter()
        .find(|e| same(e) && e.fits(&os, &arch))
        .or_else(|| named.iter().find(|e| same(e)))
    {
        return (
            Status::Warn,
            "DRIFTED",
            format!(
                "its SHA-256 is not the index's {} for {name}@{}: the file changed after it \
                 was published or installed; install it again from the index",
                entry.sha256, entry.version
            ),
        );
    }
    let mut versions: Vec<&str> = named.iter().map(|e| e.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    (
        Status::Warn,
        "UNKNOWN_VERSION",
        format!(
            "the index has {name} at {}, not {version}",
            versions.join(", ")
        ),
    )
}

/// Run `audit` for `kind`; the exit code's failure when a finding failed.
pub async fn audit(kind: Kind, args: AuditArgs) -> Result<(), Failure> {
    let dir = args.dirs.dir(kind)?;
    let text = read_index(&args.index).await?;
    let index = crate::plugin_install::parse_index(&args.index, &text)?;
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter_map(|path| kind.installed_name(&path).map(|name| (path, name)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Failure(
                3,
                format!("reading the plugin directory {}: {e}", dir.display()),
            ))
        }
    };
    files.sort();
    let mut findings = Vec::new();
    for (path, file_name) in files {
        findings.push(audit_one(kind, &index, &path, file_name).await?);
    }
    let mut summary = Summary {
        checked: findings.len(),
        ..Summary::default()
    };
    for finding in &findings {
        match finding.status {
            Status::Pass => summary.pass += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
        }
    }
    let printed = print_value(
        args.output.format(),
        &serde_json::json!({"summary": summary, "findings": findings}),
    )
    .map_err(|e| Failure(1, e.to_string()))?;
    if !printed {
        print_table(&findings, &summary, &dir);
    }
    if summary.fail > 0 {
        return Err(Failure(
            2,
            format!(
                "{} of {} installed {} plugin(s) failed the audit",
                summary.fail,
                summary.checked,
                kind.name()
            ),
        ));
    }
    Ok(())
}

async fn audit_one(
    kind: Kind,
    index: &Index,
    path: &Path,
    file_name: String,
) -> Result<Finding, Failure> {
    // Streamed: a plugin binary can be large.
    let mut hasher = Sha256::new();
    std::fs::File::open(path)
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher))
        .map_err(|e| Failure(3, format!("reading {}: {e}", path.display())))?;
    let digest = hex(&hasher.finalize());
    let spec = match read_spec(kind, path).await {
        Ok(spec) => Ok(spec),
        Err(Unreadable::Io(Failure(_, why)) | Unreadable::NotAPlugin(why)) => Err(why),
    };
    let name = spec
        .as_ref()
        .map_or(file_name.clone(), |(name, _)| name.clone());
    let version = spec
        .as_ref()
        .map(|(_, v)| v.as_str())
        .map_err(String::as_str);
    let (status, code, detail) = classify(index, kind, &name, version, &digest);
    Ok(Finding {
        file: path
            .file_name()
            .map_or(file_name, |f| f.to_string_lossy().into_owned()),
        name,
        version: spec.as_ref().ok().map(|(_, v)| v.clone()),
        sha256: digest,
        status,
        code,
        detail,
    })
}

fn print_table(findings: &[Finding], summary: &Summary, dir: &Path) {
    if findings.is_empty() {
        println!("No plugins installed in {}.", dir.display());
        return;
    }
    let rows = findings
        .iter()
        .map(|f| {
            vec![
                match f.status {
                    Status::Pass => "pass",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                }
                .to_owned(),
                f.code.to_owned(),
                f.name.clone(),
                f.version.clone().unwrap_or_else(|| "-".to_owned()),
                f.file.clone(),
                f.detail.clone(),
            ]
        })
        .collect();
    crate::cli::table(
        &["STATUS", "FINDING", "PLUGIN", "VERSION", "FILE", "DETAIL"],
        rows,
    );
    println!(
        "{} checked in {}: {} pass, {} warn, {} fail",
        summary.checked,
        dir.display(),
        summary.pass,
        summary.warn,
        summary.fail
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: serde_json::Value) -> Index {
        crate::plugin_install::parse_index("test", &entries.to_string()).unwrap()
    }

    fn entry(version: &str, sha: &str, yanked: bool) -> serde_json::Value {
        let (os, arch) = platform();
        serde_json::json!({"name": "file", "version": version, "kind": "connector",
            "os": os, "arch": arch, "url": "x", "sha256": sha, "yanked": yanked,
            "yanked_reason": "CVE-2026-0001"})
    }

    fn code(index: &Index, name: &str, version: Result<&str, &str>, digest: &str) -> &'static str {
        classify(index, Kind::Connector, name, version, digest).1
    }

    #[test]
    fn each_case_gets_its_finding() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let idx = index(serde_json::json!({"plugins": [
            entry("v0.10.8", &a, false),
            entry("v0.10.9", &b, true),
        ]}));
        assert_eq!(code(&idx, "file", Ok("v0.10.8"), &a), "VERIFIED");
        // Upper-case hex in a file digest still matches.
        assert_eq!(
            code(&idx, "file", Ok("v0.10.8"), &a.to_uppercase()),
            "VERIFIED"
        );
        assert_eq!(code(&idx, "file", Ok("v0.10.9"), &b), "YANKED_VERSION");
        // Yanked by name and version even when the bytes differ.
        assert_eq!(code(&idx, "file", Ok("0.10.9"), &c), "YANKED_VERSION");
        assert_eq!(code(&idx, "file", Ok("v0.10.8"), &c), "DRIFTED");
        assert_eq!(code(&idx, "file", Ok("v0.9.0"), &c), "UNKNOWN_VERSION");
        assert_eq!(code(&idx, "s3", Ok("v0.1.0"), &c), "DELISTED");
        assert_eq!(
            code(&idx, "junk", Err("exec format error"), &c),
            "UNREADABLE"
        );
        // A processor index entry does not vouch for a connector.
        let (status, found, _) = classify(&idx, Kind::Processor, "file", Ok("v0.10.8"), &a);
        assert_eq!((status, found), (Status::Warn, "DELISTED"));
    }

    #[test]
    fn details_say_what_to_do() {
        let a = "a".repeat(64);
        let idx = index(serde_json::json!({"plugins": [entry("v1.0.0", &a, true)]}));
        let (status, _, detail) = classify(&idx, Kind::Connector, "file", Ok("v1.0.0"), &a);
        assert_eq!(status, Status::Fail);
        assert!(
            detail.contains("file@v1.0.0 was yanked: CVE-2026-0001")
                && detail.contains("uninstall it"),
            "{detail}"
        );
    }
}
