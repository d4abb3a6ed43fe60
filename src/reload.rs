//! Live reload of pipeline configuration files (`--pipelines.watch`, off by default): the
//! server looks at the pipelines path every [`POLL`] and, when a file was added, changed or
//! removed, provisions the path again exactly as at start — each pipeline's changes one
//! atomic batch recorded with `provisioning:<file>` as the actor, pipelines whose file no
//! longer names them deleted.
//!
//! A pipeline that runs and that the new file would change is first stopped (a drained stop,
//! recorded with the file as actor) and waited for, so nothing changes under a running
//! engine; the file's `status: running` starts it again as part of the batch. A file with
//! errors changes nothing: its broken pipelines are skipped and every problem is logged with
//! its file, line and column, as at start; a file whose YAML does not parse deletes nothing.
//!
//! Changes are noticed by each file's length and modification time (polling works on every
//! file system and needs no watcher limits; a poll costs one `stat` per file).

use culvert_commands::{Context, ControlPlaneWriter, PipelineOrchestrator};
use culvert_domain::{PipelineId, PipelineStatus};
use culvert_provisioning::Provisioner;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// How often the pipelines path is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// How long a reload waits for a running pipeline to stop before provisioning anyway (the
/// domain then refuses to change it while it runs, and the problem is logged).
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Each configuration file's length and modification time.
type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

fn fingerprint(path: &Path) -> Fingerprint {
    Provisioner::files(path)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|file| {
            let meta = std::fs::metadata(&file).ok()?;
            Some((file, (meta.len(), meta.modified().ok())))
        })
        .collect()
}

/// Watch `path` until `shutdown` turns true, provisioning it again after every change.
pub async fn watch(
    path: PathBuf,
    provisioner: Arc<Provisioner>,
    writer: Arc<ControlPlaneWriter>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || fingerprint(&path))
            .await
            .unwrap_or_default()
    };
    tracing::info!(path = %path.display(), files = seen.len(), "watching pipeline files");
    loop {
        tokio::select! {
            // Cancel-safety: both branches only wait; nothing is taken that a drop loses.
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let now = {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || fingerprint(&path)).await {
                Ok(now) => now,
                Err(_) => continue,
            }
        };
        if now == seen {
            continue;
        }
        let changed: Vec<PathBuf> = now
            .iter()
            .filter(|(file, print)| seen.get(*file) != Some(*print))
            .map(|(file, _)| file.clone())
            .collect();
        seen = now;
        tracing::info!(path = %path.display(), changed = changed.len(), "pipeline files changed; provisioning again");
        reload(&path, changed, &provisioner, &writer).await;
    }
}

/// Stop what the changed files would change under a running engine, then provision `path`.
async fn reload(
    path: &Path,
    changed: Vec<PathBuf>,
    provisioner: &Arc<Provisioner>,
    writer: &Arc<ControlPlaneWriter>,
) {
    let env = |name: &str| std::env::var(name).ok();
    let to_stop = {
        let provisioner = provisioner.clone();
        tokio::task::spawn_blocking(move || provisioner.running_to_change(&changed, &env))
            .await
            .unwrap_or_default()
    };
    for (id, file) in &to_stop {
        let ctx = Context::new(format!("provisioning:{file}"))
            .with_reason(Some("its configuration file changed".to_owned()));
        let pipelines = PipelineOrchestrator::new(writer.clone());
        let id = id.clone();
        let stopped = tokio::task::spawn_blocking(move || pipelines.stop(&ctx, &id, false)).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "could not stop a pipeline to reload its file");
        }
    }
    let ids: Vec<PipelineId> = to_stop.into_iter().map(|(id, _)| id).collect();
    if !ids.is_empty() && !stopped_within(writer, &ids, STOP_WAIT).await {
        tracing::warn!(pipelines = ?ids, "pipelines did not stop in time; provisioning anyway");
    }
    let started = Instant::now();
    let report = {
        let (provisioner, path) = (provisioner.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || provisioner.provision(&path, &env)).await
    };
    match report {
        Ok(Ok(report)) => crate::log_provisioning(path, &report, started),
        Ok(Err(error)) => tracing::error!(%error, "provisioning the changed files failed"),
        Err(error) => tracing::error!(%error, "the provisioning task failed"),
    }
}

/// Whether every pipeline of `ids` stopped (or failed, or is gone) within `limit`, waiting on
/// the event log's head rather than sleeping.
async fn stopped_within(writer: &ControlPlaneWriter, ids: &[PipelineId], limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut head = writer.log().watch_head();
    loop {
        let all_stopped = {
            let state = writer.projections().read();
            ids.iter().all(|id| {
                state.pipeline(id).is_none_or(|p| {
                    matches!(
                        p.status,
                        PipelineStatus::Stopped { .. } | PipelineStatus::Degraded { .. }
                    )
                })
            })
        };
        if all_stopped {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // The engine's stop report is an event: wake when the head moves (the read model
        // folds it just after), and look again at least every 50 ms.
        let _ = tokio::time::timeout(Duration::from_millis(50), head.changed()).await;
    }
}
