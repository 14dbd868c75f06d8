//! `comity-testnet bench evidence`: one evidence package of a given size delivered between two
//! real nodes (sealed on upload at DE, pulled and verified chunk by chunk by FR), with the peak
//! memory growth of both nodes; beside `scp` over loopback (OpenSSH with its default cipher, a
//! server this bench starts on its own port with its own keys) and a raw TCP copy of the same
//! file, in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_node::admin::api::{Action, NewEvidence};
use comity_node::evidence::{PackageState, UploadFile};
use comity_node::roster::EvidenceLimits;
use comity_protocol::Decision;
use serde::Serialize;

use crate::Bloc;

#[derive(Clone, Debug)]
pub struct EvidenceOptions {
    /// Bytes of evidence (one file).
    pub size: u64,
    /// Where the files go (a disk with room for about four times `size`).
    pub dir: Option<PathBuf>,
    /// The bloc's chunk size (`[evidence] chunk_bytes`); the default when `None`.
    pub chunk_bytes: Option<u32>,
    /// Chunks in flight (`[evidence] parallel`); the node's default when `None`.
    pub parallel: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvidenceReport {
    pub size_bytes: u64,
    /// The headline, what an officer waits for: from the first byte DE's officer uploads to
    /// FR's node holding the whole package, verified and durable (FR's `completed_at`), in
    /// MB/s (10^6 evidence bytes per second).
    pub end_to_end_mb_per_s: f64,
    /// `end_to_end_mb_per_s` over scp's, measured in the same run.
    pub ratio_end_to_end_vs_scp: f64,
    /// Component: the upload and sealing at DE (the officer's `fulfil --evidence`).
    pub seal_mb_per_s: f64,
    /// Component: FR's whole transfer, from its first chunk request (pulling chunks as DE
    /// seals them, so it overlaps the sealing) to the last chunk verified and synced, every
    /// attempt included (the bench fails unless it ran in one pass).
    pub transfer_mb_per_s: f64,
    /// Chunks FR pulled while DE sealed them that the signed manifest confirmed, of `chunks`.
    pub chunks_pulled_while_sealing: u64,
    pub chunks: u64,
    /// Baseline, same run: the same delivery with the transfer after the sealing (the sender
    /// offering nothing), end to end and its two parts.
    pub sequential_end_to_end_mb_per_s: f64,
    pub sequential_seal_mb_per_s: f64,
    pub sequential_transfer_mb_per_s: f64,
    pub ratio_transfer_vs_scp: f64,
    pub ratio_transfer_vs_raw_tcp: f64,
    /// Pulls the transfer took (always 1 in a report: more fails the bench).
    pub transfer_pulls: u32,
    /// Component: opening the package for an officer with `comity evidence fetch` (every
    /// chunk checked and decrypted by the node, every file's size and BLAKE3 checked against
    /// the signed manifest by the CLI, written and synced).
    pub open_mb_per_s: f64,
    /// The mean of two scp copies, one before and one after Comity's transfer (this machine's
    /// speed drifts within a run).
    pub scp_mb_per_s: f64,
    pub scp_runs_mb_per_s: [f64; 2],
    pub raw_tcp_mb_per_s: f64,
    /// The larger of the two nodes' peak resident memory growth during upload and transfer.
    pub peak_rss_mb: f64,
    pub peak_rss_sender_mb: f64,
    pub peak_rss_receiver_mb: f64,
    pub chunk_bytes: u32,
    pub cores: usize,
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6)
}

/// Parses sizes like `1GiB`, `512MiB`, `4 GiB`, `1000000`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().replace(' ', "");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1GiB or 512MiB"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Writes `size` incompressible bytes (xorshift) to `path`.
fn write_random(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// `VmRSS` and `VmHWM` of a process, in bytes.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} for process {pid}"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed /proc status")?
            .parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets a process's peak RSS to its current RSS (Linux `clear_refs` 5).
fn reset_peak(pid: u32) -> anyhow::Result<u64> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("cannot reset the peak RSS of process {pid}"))?;
    Ok(memory(pid)?.0)
}

pub async fn run(
    options: &EvidenceOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<EvidenceReport> {
    let work = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let size = options.size;
    let source = work.path().join("evidence.bin");
    log(&format!("writing {size} random bytes"));
    write_random(&source, size)?;
    // A freshly booted VM pays for the first touch of each page of its RAM (seen here: the
    // first 2 GiB written to the page cache at 0.7 GB/s, the next at 4.6 GB/s). Touch what the
    // measurements below will hold at once (source, two copies and the two nodes' packages),
    // so that every one of them, baselines included, writes to memory already used once.
    log("warming the page cache");
    let scratch = work.path().join("warm-up.bin");
    write_random(&scratch, size.saturating_mul(3))?;
    std::fs::remove_file(&scratch)?;

    // Baselines first, on a cold start for each, the same file.
    log("baseline: scp over loopback");
    let scp_before = scp_copy(work.path(), &source).await?;
    log("baseline: raw TCP copy over loopback");
    let tcp = tcp_copy(&source, &work.path().join("tcp-copy.bin")).await?;

    let limits = EvidenceLimits {
        max_package_bytes: size.max(1 << 20),
        chunk_bytes: options
            .chunk_bytes
            .unwrap_or(EvidenceLimits::default().chunk_bytes),
    };
    let limits = EvidenceLimits {
        chunk_bytes: limits.chunk_bytes.max(
            (size.div_ceil(comity_protocol::evidence::MAX_CHUNKS) as u32)
                .next_multiple_of(32 * 1024),
        ),
        ..limits
    };
    let parallel = options.parallel;
    let mut bloc = Bloc::create_with(
        &work.path().join("bloc"),
        &["FR".parse()?, "DE".parse()?],
        "testnet",
        |c| {
            if let Some(p) = parallel {
                c.evidence.parallel = p;
            }
        },
    )
    .await?;
    bloc.log_filter = "warn".into();
    bloc.set_evidence_limits(limits)?;
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(30))
        .await
        .context("starting the two nodes")?;
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));

    // The baseline: the same delivery with the transfer after the sealing (DE offers
    // nothing, as a sender that does not stage), in the same run.
    log("delivering the package, sealed first and then transferred (baseline)");
    de.evidence_faults(&comity_node::evidence::EvidenceFaults {
        no_staging: true,
        ..Default::default()
    })
    .await?;
    let sequential = deliver(&fr, &de, &bloc, &source, size).await?;
    de.evidence_faults(&Default::default()).await?;
    log(&format!(
        "sealed in {:.1} s, then transferred in {:.1} s; {:.1} s end to end",
        sequential.seal.as_secs_f64(),
        sequential.transfer.as_secs_f64(),
        sequential.end_to_end.as_secs_f64()
    ));

    let (fr_pid, de_pid) = (bloc.pid("FR")?, bloc.pid("DE")?);
    let fr_base = reset_peak(fr_pid)?;
    let de_base = reset_peak(de_pid)?;
    log("delivering the package, pulled as it is sealed");
    let overlapped = deliver(&fr, &de, &bloc, &source, size).await?;
    let (_, fr_peak) = memory(fr_pid)?;
    let (_, de_peak) = memory(de_pid)?;
    let Delivery {
        id,
        seal: seal_time,
        transfer,
        end_to_end,
        status,
    } = overlapped;
    log(&format!(
        "sealed in {:.1} s, transferred in {:.1} s alongside; {:.1} s end to end",
        seal_time.as_secs_f64(),
        transfer.as_secs_f64(),
        end_to_end.as_secs_f64()
    ));
    // DE's sealed copy is deleted once FR confirms: delete the source too to free the disk.
    std::fs::remove_file(work.path().join("tcp-copy.bin")).ok();

    log("baseline again: scp over loopback");
    let scp_after = scp_copy(work.path(), &source).await?;
    log("opening the package for an officer (comity evidence fetch)");
    let open_time = open(&bloc, id, &work.path().join("opened"), size)?;
    bloc.stop_all();

    let grow = |peak: u64, base: u64| peak.saturating_sub(base) as f64 / (1 << 20) as f64;
    let sender = grow(de_peak, de_base);
    let receiver = grow(fr_peak, fr_base);
    let scp = (mb_per_s(size, scp_before) + mb_per_s(size, scp_after)) / 2.0;
    let transfer_mb = mb_per_s(size, transfer);
    let end_to_end_mb = mb_per_s(size, end_to_end);
    let report = EvidenceReport {
        size_bytes: size,
        end_to_end_mb_per_s: end_to_end_mb,
        ratio_end_to_end_vs_scp: end_to_end_mb / scp,
        seal_mb_per_s: mb_per_s(size, seal_time),
        transfer_mb_per_s: transfer_mb,
        ratio_transfer_vs_scp: transfer_mb / scp,
        ratio_transfer_vs_raw_tcp: transfer_mb / mb_per_s(size, tcp),
        transfer_pulls: status.pulls,
        chunks_pulled_while_sealing: status.chunks_staged,
        sequential_end_to_end_mb_per_s: mb_per_s(size, sequential.end_to_end),
        sequential_seal_mb_per_s: mb_per_s(size, sequential.seal),
        sequential_transfer_mb_per_s: mb_per_s(size, sequential.transfer),
        chunks: status.chunks,
        open_mb_per_s: mb_per_s(size, open_time),
        scp_mb_per_s: scp,
        scp_runs_mb_per_s: [mb_per_s(size, scp_before), mb_per_s(size, scp_after)],
        raw_tcp_mb_per_s: mb_per_s(size, tcp),
        peak_rss_mb: sender.max(receiver),
        peak_rss_sender_mb: sender,
        peak_rss_receiver_mb: receiver,
        chunk_bytes: limits.chunk_bytes,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    super::every_figure_present(&report)?;
    Ok(report)
}

/// One delivery, measured.
struct Delivery {
    id: comity_protocol::CaseId,
    /// The officer's upload, sealing included (the PUT).
    seal: Duration,
    /// FR's whole transfer, every attempt.
    transfer: Duration,
    /// From the first byte uploaded to FR's recorded completion.
    end_to_end: Duration,
    status: comity_node::evidence::EvidenceStatus,
}

/// A case FR sent and DE accepted.
async fn accepted_case(
    fr: &comity_node::admin::api::AdminClient,
    de: &comity_node::admin::api::AdminClient,
    bloc: &Bloc,
) -> anyhow::Result<comity_protocol::CaseId> {
    let id = crate::send_request(
        fr,
        &bloc.approver("FR"),
        {
            let mut r = comity_protocol::examples::sample_request();
            r.requesting = "FR".parse()?;
            r.executing = "DE".parse()?;
            r
        },
        Some(Duration::from_secs(20)),
    )
    .await?
    .summary
    .case_id;
    de.act(
        id,
        &Action::Decide {
            decision: Decision::Accept,
        },
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while fr.case(id).await?.summary.state != "accepted" {
        anyhow::ensure!(Instant::now() < deadline, "FR never saw the acceptance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(id)
}

/// DE's officer delivers `source` for a new case; returns once FR holds it, with the times.
async fn deliver(
    fr: &comity_node::admin::api::AdminClient,
    de: &comity_node::admin::api::AdminClient,
    bloc: &Bloc,
    source: &Path,
    size: u64,
) -> anyhow::Result<Delivery> {
    let id = accepted_case(fr, de, bloc).await?;
    let announce = de
        .begin_evidence(
            id,
            &NewEvidence {
                files: vec![UploadFile {
                    name: "evidence.bin".into(),
                    size,
                    media_type: "application/octet-stream".into(),
                }],
                note: String::new(),
            },
        )
        .await?;
    let file = tokio::fs::File::open(source).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    // The clock starts as the officer's first byte goes: FR's completion time is read from its
    // record, on the same machine's clock, so polling adds nothing to the figure.
    let started_at = comity_protocol::Timestamp::now();
    let started = Instant::now();
    de.upload_evidence(&announce.upload, body).await?;
    let seal = started.elapsed();
    let status = loop {
        let s = fr.evidence_status(id).await;
        if let Ok(s) = &s
            && s.state == PackageState::Complete
        {
            break s.clone();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the package did not arrive: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let completed_at = status
        .completed_at
        .context("FR reports the package complete without a completion time")?;
    let end_to_end = Duration::from_millis(
        completed_at
            .as_millis()
            .checked_sub(started_at.as_millis())
            .and_then(|ms| u64::try_from(ms).ok())
            .filter(|ms| *ms > 0)
            .context("FR completed the package before the upload began: clocks disagree")?,
    );
    anyhow::ensure!(
        status.pulls == 1,
        "the transfer took {} pulls (last error {:?}): it was interrupted, so its time is not one pass; run the bench again",
        status.pulls,
        status.last_error
    );
    let transfer = Duration::from_millis(
        status
            .transfer_ms
            .filter(|ms| *ms > 0)
            .context("FR recorded no transfer time (or 0 ms): use a larger --size")?,
    );
    Ok(Delivery {
        id,
        seal,
        transfer,
        end_to_end,
        status,
    })
}

/// Opens the received package at FR as an officer does, with `comity evidence fetch` (the
/// same checks: the node verifies and decrypts every chunk, the CLI checks each file's size
/// and BLAKE3 against the signed manifest before moving it into place); returns its duration.
fn open(
    bloc: &Bloc,
    id: comity_protocol::CaseId,
    out: &Path,
    size: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let done = std::process::Command::new(crate::comity_binary()?)
        .args(["evidence", "fetch", &id.to_string(), "--out"])
        .arg(out)
        .args(["--purpose", "benchmark", "-c"])
        .arg(&bloc.node("FR").config)
        .output()
        .context("running comity evidence fetch")?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        done.status.success(),
        "comity evidence fetch failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let opened = std::fs::metadata(out.join("evidence.bin"))
        .context("comity evidence fetch wrote no evidence.bin")?
        .len();
    std::fs::remove_dir_all(out).ok();
    anyhow::ensure!(opened == size, "opened {opened} bytes of {size}");
    Ok(elapsed)
}

/// Copies `source` with scp to a server this function starts on loopback (its own host key,
/// user key and port) and stops; returns the copy's duration.
async fn scp_copy(work: &Path, source: &Path) -> anyhow::Result<Duration> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("no sshd: install openssh-server (scripts/bootstrap does)")?;
    let dir = work.join("ssh");
    // Fresh keys and config for each server.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for key in ["host_key", "user_key"] {
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .status()
            .context("running ssh-keygen (openssh-client)")?;
        anyhow::ensure!(status.success(), "ssh-keygen failed");
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))?;
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").ok();
    let port = crate::free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPidFile {pid}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
            host = dir.join("host_key").display(),
            keys = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display(),
        ),
    )?;
    let mut server = tokio::process::Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", sshd.display()))?;
    let target = work.join("scp-copy.bin");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut elapsed = None;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let started = Instant::now();
            let out = tokio::process::Command::new("scp")
                .args(["-q", "-P", &port.to_string(), "-i"])
                .arg(dir.join("user_key"))
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "LogLevel=ERROR",
                ])
                .arg(source)
                .arg(format!("{user}@127.0.0.1:{}", target.display()))
                .output()
                .await
                .context("running scp (openssh-client)")?;
            if !out.status.success() {
                let _ = server.kill().await;
                bail!("scp failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            elapsed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill().await;
    let elapsed = elapsed.context("sshd did not start listening")?;
    let copied = std::fs::metadata(&target)?.len();
    std::fs::remove_file(&target).ok();
    anyhow::ensure!(
        copied == std::fs::metadata(source)?.len(),
        "scp copied {copied} bytes"
    );
    Ok(elapsed)
}

/// Copies `source` to `target` through a loopback TCP connection, no encryption: two threads
/// and `std::io::copy`, which lets the kernel move the bytes (sendfile/splice) where it can.
async fn tcp_copy(source: &Path, target: &Path) -> anyhow::Result<Duration> {
    let (source, target) = (source.to_owned(), target.to_owned());
    tokio::task::spawn_blocking(move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let receiver = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept()?;
            let mut file = std::fs::File::create(&target)?;
            let n = std::io::copy(&mut socket, &mut file)?;
            anyhow::Ok(n)
        });
        let started = Instant::now();
        let mut socket = std::net::TcpStream::connect(addr)?;
        let mut file = std::fs::File::open(&source)?;
        std::io::copy(&mut file, &mut socket)?;
        socket.shutdown(std::net::Shutdown::Write)?;
        let n = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            n == std::fs::metadata(&source)?.len(),
            "TCP copy moved {n} bytes"
        );
        Ok(elapsed)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("GiB").is_err());
    }
}
