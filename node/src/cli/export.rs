//! `comity case export`: the case's signed bundle, streamed from the admin API to a file that
//! appears whole or not at all (written beside it, synced, then renamed), readable by its
//! owner only: it holds the request's content.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_protocol::CaseId;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::evidence::Progress;
use crate::admin::api::{AdminClient, ClientError};

pub async fn run(
    client: &AdminClient,
    case: CaseId,
    out: &Path,
    with_evidence: bool,
    wait: Duration,
) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} already exists; choose another --out (a bundle is never overwritten)",
            out.display()
        );
    }
    let started = Instant::now();
    let mut told = false;
    let response = loop {
        match client.export(case, with_evidence).await {
            Err(ClientError::Api { status: 409, error })
                if error.error == "not-checkpointed" && started.elapsed() < wait =>
            {
                if !told {
                    eprintln!("waiting for the audit log's next signed checkpoint…");
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => break other?,
        }
    };
    let total = response.content_length().unwrap_or(0);
    let partial = out.with_extension("partial");
    let mut file = {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        options
            .open(&partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?
    };
    let written = async {
        let mut progress = Progress::new("exporting", total, false);
        let mut body = response.bytes_stream();
        let mut size = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.context("the node stopped sending the bundle")?;
            file.write_all(&piece)
                .await
                .with_context(|| format!("cannot write {}", partial.display()))?;
            size += piece.len() as u64;
            progress.inc(piece.len() as u64);
        }
        progress.finish();
        if total != 0 && size != total {
            bail!("the bundle ended after {size} of {total} bytes");
        }
        file.sync_all().await?;
        anyhow::Ok(size)
    }
    .await;
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&partial, out)
        .await
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    println!(
        "case {case} exported to {} ({size} bytes); check it anywhere with `comity-verify bundle {}`",
        out.display(),
        out.display()
    );
    Ok(())
}
