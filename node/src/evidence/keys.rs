//! The node's sealing key: the X25519 key evidence for this jurisdiction is sealed to. Kept in
//! a file of its own (mode 0600), never in the store; its public half is in the bloc roster.

use std::path::Path;

use comity_protocol::evidence::SealingKey;
use tracing::warn;

use super::{EvidenceError, io};

/// Makes a new sealing key file (0600) and returns its public half, for the roster.
pub fn create_sealing_key(path: &Path) -> anyhow::Result<SealingKey> {
    let (private, public) = comity_protocol::evidence::generate_sealing_key()?;
    crate::roster::write_private(path, format!("{}\n", hex::encode(private)).as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write the sealing key {}: {e}", path.display()))?;
    Ok(SealingKey(public))
}

/// The public half of an existing sealing key file (for a new member card).
pub fn read_sealing_public(path: &Path) -> Result<SealingKey, EvidenceError> {
    if !path.exists() {
        return Err(EvidenceError::Io(format!(
            "no sealing key at {}",
            path.display()
        )));
    }
    load_or_create_sealing_key(path).map(|(_, public)| public)
}

/// Reads the sealing key (refusing one readable by others), or makes it if this node was
/// initialised before evidence existed.
pub(super) fn load_or_create_sealing_key(
    path: &Path,
) -> Result<([u8; 32], SealingKey), EvidenceError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let public = create_sealing_key(path).map_err(|e| EvidenceError::Io(e.to_string()))?;
            warn!(path = %shown, sealing_key = %public, "made a new sealing key: add it to this node's roster entry");
            return load_or_create_sealing_key(path);
        }
        Err(e) => return Err(io(format!("cannot read {shown}"))(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(EvidenceError::Io(format!(
            "sealing key {shown} is readable by others (mode {mode:o}); run `chmod 600 {shown}`"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io(format!("cannot read {shown}")))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            EvidenceError::Io(format!(
                "sealing key {shown} is not 64 hex characters; restore it from backup"
            ))
        })?;
    let public = comity_protocol::evidence::sealing_public_key(&bytes)
        .map_err(|e| EvidenceError::Io(e.to_string()))?;
    Ok((bytes, SealingKey(public)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealing_key_is_made_once_kept_private_and_refused_when_exposed_or_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealing.key");
        let (private, public) = load_or_create_sealing_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_create_sealing_key(&path).unwrap(),
            (private, public)
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_sealing_key(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create_sealing_key(&path).unwrap_err().to_string();
        assert!(err.contains("restore it from backup"), "{err}");
    }
}
