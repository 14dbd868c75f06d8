//! `comity audit`: verify this node's audit log and prove its entries, offline.

use std::path::Path;

use anyhow::{Context, bail};

use super::{AuditCommand, output};
use crate::audit;
use crate::config::Config;

pub(super) fn run(command: AuditCommand) -> anyhow::Result<()> {
    let open =
        |config: &Path| -> anyhow::Result<(crate::store::Store, Vec<ed25519_dalek::VerifyingKey>)> {
            let config = Config::load(config)?;
            let identity = crate::identity::NodeIdentity::load(
                &config.key_path(),
                &config.signing_key_path(),
            )?;
            let store = crate::store::Store::open_read_only(&config.store_path())?;
            // Every signing key this node has had, as its bloc configuration records them.
            let mut keys = crate::bloc::own_keys(&store, &config.node.jurisdiction)?;
            keys.push(identity.signing_key().verifying_key());
            Ok((store, keys))
        };
    match command {
        AuditCommand::Verify { config, json } => {
            let (store, key) = open(&config)?;
            let report = audit::verify(&store, &key)?;
            if json {
                output::json(&report)?;
            } else {
                println!(
                    "{} entries, {} signed checkpoint(s)",
                    report.entries, report.checkpoints
                );
                for problem in &report.problems {
                    println!("PROBLEM: {problem}");
                }
            }
            if report.problems.is_empty() {
                if !json {
                    println!("the audit log verifies");
                }
                Ok(())
            } else {
                bail!(
                    "the audit log does not verify: {} problem(s)",
                    report.problems.len()
                )
            }
        }
        AuditCommand::Prove { entry, config } => {
            let (store, _) = open(&config)?;
            output::json(&audit::prove(&store, entry)?)
        }
        AuditCommand::Consistency { old, new, config } => {
            let (store, _) = open(&config)?;
            output::json(&audit::consistency(&store, old, new)?)
        }
        AuditCommand::Entries { .. } => {
            bail!("`comity audit entries` reads through the admin API (handled by the CLI)")
        }
        AuditCommand::Check { file, signer } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let key = signer
                .verifying_key()
                .map_err(|e| anyhow::anyhow!("--signer: {e}"))?;
            if let Ok(proof) = serde_json::from_str::<audit::EntryProof>(&text) {
                let (checkpoint, cosigners) = audit::check_entry(&proof, &key)
                    .map_err(|e| anyhow::anyhow!("the proof does not hold: {e}"))?;
                for line in audit::entry_statements(&proof, &checkpoint, &cosigners) {
                    println!("{line}");
                }
                return Ok(());
            }
            let proof: audit::CheckpointConsistency =
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is neither an entry nor a consistency proof",
                        file.display()
                    )
                })?;
            let (old, new) = audit::check_consistency(&proof, &key)
                .map_err(|e| anyhow::anyhow!("the proof does not hold: {e}"))?;
            println!("{}", audit::consistency_statement(&old, &new));
            Ok(())
        }
    }
}
