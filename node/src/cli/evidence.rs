//! Evidence commands: `case fulfil --evidence`, `evidence fetch` and `evidence status`.
//!
//! Bytes stream between the files and the admin API, so memory stays flat whatever the size.
//! Progress goes to stderr: a bar with bytes, rate and ETA on a terminal, a plain line every
//! few seconds otherwise, nothing with `--json` (whose result goes to stdout).

use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_protocol::{CaseId, Hash32};
use futures::StreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::output;
use crate::admin::api::{AdminClient, NewEvidence};
use crate::evidence::{EvidenceStatus, PackageState, UploadFile};

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress of a byte count towards a total.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    printed: Instant,
}

impl Progress {
    pub(super) fn new(label: &str, total: u64, json: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!json && terminal).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        Self {
            bar,
            plain: !json && !terminal,
            label: label.to_owned(),
            total,
            done: 0,
            started: Instant::now(),
            printed: Instant::now(),
        }
    }

    fn set(&mut self, done: u64) {
        self.done = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if self.plain && self.printed.elapsed() >= PLAIN_EVERY {
            self.printed = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    pub(super) fn inc(&mut self, n: u64) {
        self.set(self.done + n);
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let percent = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        let eta = if rate > 0.0 {
            format!(
                "{:.0}s",
                (self.total.saturating_sub(self.done)) as f64 / rate
            )
        } else {
            "?".into()
        };
        format!(
            "{}: {} of {} ({percent:.0}%), {}/s, ETA {eta}",
            self.label,
            HumanBytes(self.done),
            HumanBytes(self.total),
            HumanBytes(rate as u64)
        )
    }

    pub(super) fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        } else if self.plain {
            eprintln!("{}", self.line());
        }
    }
}

/// `comity case fulfil ID --evidence PATH…`.
pub async fn fulfil(
    client: &AdminClient,
    case: CaseId,
    note: String,
    paths: &[PathBuf],
    json: bool,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !meta.is_file() {
            bail!(
                "{} is not a regular file; give the files themselves (for a directory, DIR/*)",
                path.display()
            );
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name (UTF-8)", path.display()))?;
        files.push(UploadFile {
            name: name.to_owned(),
            size: meta.len(),
            media_type: mime_guess::from_path(path)
                .first_or_octet_stream()
                .essence_str()
                .to_owned(),
        });
    }
    let ticket = client
        .begin_evidence(
            case,
            &NewEvidence {
                files: files.clone(),
                note,
            },
        )
        .await?;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new(
        "sealing",
        ticket.total_bytes,
        json,
    )));
    let sizes: Vec<(PathBuf, u64)> = paths
        .iter()
        .cloned()
        .zip(files.iter().map(|f| f.size))
        .collect();
    let counter = progress.clone();
    // Each file is read exactly as announced; one that changed size since is an error.
    let body = futures::stream::iter(sizes)
        .then(|(path, size)| async move {
            use tokio::io::AsyncReadExt;
            let file = tokio::fs::File::open(&path).await?;
            let reader = tokio_util::io::ReaderStream::with_capacity(file.take(size), 256 * 1024);
            Ok::<_, std::io::Error>(reader)
        })
        .map(|opened| match opened {
            Ok(reader) => reader.boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .inspect(move |piece| {
            if let Ok(bytes) = piece {
                counter.lock().expect("lock").inc(bytes.len() as u64);
            }
        });
    let result = client
        .upload_evidence(&ticket.upload, reqwest::Body::wrap_stream(body))
        .await;
    let progress = std::sync::Arc::try_unwrap(progress)
        .ok()
        .map(|m| m.into_inner().expect("lock"));
    if let Some(progress) = progress {
        progress.finish();
    }
    let done = result?;
    if json {
        return output::json(&done);
    }
    let secs = done.seal_ms as f64 / 1000.0;
    println!(
        "Case {case} fulfilled with evidence package {}:\n  {} file(s), {} sealed to {} in {} chunk(s) ({secs:.1} s)",
        done.root,
        files.len(),
        HumanBytes(done.total_bytes),
        done.case.summary.counterparty,
        done.chunks,
    );
    println!(
        "  {}'s node pulls it now; `comity evidence status {case}` shows progress.",
        done.case.summary.counterparty
    );
    Ok(())
}

/// One file as written out by `evidence fetch`.
#[derive(Debug, Serialize)]
struct FetchedFile {
    name: String,
    size: u64,
    media_type: String,
    blake3: Hash32,
    path: PathBuf,
}

#[derive(Debug, Serialize)]
struct Fetched {
    case_id: CaseId,
    root: Hash32,
    from: comity_protocol::Jurisdiction,
    files: Vec<FetchedFile>,
}

/// `comity evidence fetch ID --out DIR --purpose …`: every file is checked against the signed
/// manifest (size and BLAKE3) in a hidden staging folder; only when all are good do they move
/// into DIR, so a damaged package leaves nothing behind.
pub async fn fetch(
    client: &AdminClient,
    case: CaseId,
    out: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let index = client.evidence_index(case).await?;
    // The node checked the names; a second line of defence, since they become files here.
    let mut names = std::collections::HashSet::new();
    for file in &index.files {
        if let Some(problem) = comity_protocol::evidence::file_name_problem(&file.name) {
            bail!("the package is refused: {problem}; nothing was written");
        }
        if !names.insert(file.name.to_lowercase()) {
            bail!(
                "the package names {:?} twice; nothing was written",
                file.name
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for file in &index.files {
        let target = out.join(&file.name);
        if target.exists() {
            bail!(
                "{} already exists; fetch into an empty directory (nothing was written)",
                target.display()
            );
        }
    }
    let staging = out.join(format!(".comity-fetch-{case}"));
    let _ = std::fs::remove_dir_all(&staging);
    // Decrypted evidence is for this officer alone: the staging directory and every file in
    // it are readable by their owner only.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = fetch_into(client, case, &index, &staging, json).await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        let detail = match client.evidence_status(case).await {
            Ok(EvidenceStatus {
                last_error: Some(why),
                ..
            }) => format!(" ({why})"),
            _ => String::new(),
        };
        bail!("{e:#}{detail}; nothing was written to {}", out.display());
    }
    let mut fetched: Vec<FetchedFile> = Vec::new();
    for file in &index.files {
        let target = out.join(&file.name);
        // A link never replaces a file that appeared meanwhile (a rename would): on any
        // failure the files already placed are taken back, so that nothing is written.
        if let Err(e) = std::fs::hard_link(staging.join(&file.name), &target) {
            for placed in &fetched {
                let _ = std::fs::remove_file(&placed.path);
            }
            let _ = std::fs::remove_dir_all(&staging);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                bail!(
                    "{} appeared while the evidence was fetched; fetch into an empty directory (nothing was written)",
                    target.display()
                );
            }
            return Err(e).with_context(|| format!("cannot move {} into place", file.name));
        }
        fetched.push(FetchedFile {
            name: file.name.clone(),
            size: file.size,
            media_type: file.media_type.clone(),
            blake3: file.blake3,
            path: target,
        });
    }
    let _ = std::fs::remove_dir_all(&staging);
    let fetched = Fetched {
        case_id: case,
        root: index.root,
        from: index.from.clone(),
        files: fetched,
    };
    if json {
        return output::json(&fetched);
    }
    println!(
        "Evidence of case {case} from {} (package {}): {} file(s), every one verified against the signed manifest:",
        fetched.from,
        fetched.root,
        fetched.files.len()
    );
    for f in &fetched.files {
        println!(
            "  {}  {}  {}  blake3 {}",
            f.path.display(),
            HumanBytes(f.size),
            f.media_type,
            f.blake3
        );
    }
    Ok(())
}

async fn fetch_into(
    client: &AdminClient,
    case: CaseId,
    index: &crate::evidence::PackageIndex,
    staging: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let mut progress = Progress::new("opening", index.total_bytes, json);
    for (n, entry) in index.files.iter().enumerate() {
        let response = client.evidence_file(case, n).await?;
        let path = staging.join(&entry.name);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.with_context(|| {
                format!(
                    "the node stopped sending {} (the package may be damaged)",
                    entry.name
                )
            })?;
            hasher.update(&piece);
            size += piece.len() as u64;
            file.write_all(&piece)
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
            progress.inc(piece.len() as u64);
        }
        file.sync_all().await?;
        let hash = Hash32(*hasher.finalize().as_bytes());
        if size != entry.size || hash != entry.blake3 {
            bail!(
                "{} does not match the signed manifest ({size} bytes, BLAKE3 {hash}; expected {} bytes, {})",
                entry.name,
                entry.size,
                entry.blake3
            );
        }
    }
    progress.finish();
    Ok(())
}

/// `comity evidence status ID [--follow]`.
pub async fn status(
    client: &AdminClient,
    case: CaseId,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut status = client.evidence_status(case).await?;
    if follow && status.state != PackageState::Complete {
        let mut progress = Progress::new("receiving", status.sealed_bytes, json);
        loop {
            progress.total = status.sealed_bytes;
            if let Some(bar) = &progress.bar {
                bar.set_length(status.sealed_bytes);
            }
            progress.set(status.bytes_verified);
            if status.state == PackageState::Complete {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            status = client.evidence_status(case).await?;
        }
        progress.finish();
    }
    if json {
        return output::json(&status);
    }
    output::evidence_status(&status);
    Ok(())
}
