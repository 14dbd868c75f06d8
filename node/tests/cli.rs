//! The `comity` binary as an operator meets it: init, and the errors that guide them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn comity() -> Command {
    Command::new(env!("CARGO_BIN_EXE_comity"))
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_private_node_directory_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("fr");
    let token_file = dir.path().join("fr.token");
    let out = comity()
        .args(["init", "--jurisdiction", "fr", "--data-dir"])
        .arg(&node)
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--admin",
            "127.0.0.1:0",
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(stdout.contains(token.trim()), "the token is shown once");
    assert!(stdout.contains("PeerId"));
    assert_eq!(mode(&node.join("node.key")), 0o600);
    assert_eq!(mode(&node.join("signing.key")), 0o600);
    assert_eq!(mode(&node.join("master.key")), 0o600);
    assert_eq!(mode(&node.join("sealing.key")), 0o600);
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&node), 0o700);
    let config = std::fs::read_to_string(node.join("comity.toml")).unwrap();
    assert!(
        config.contains("jurisdiction = \"FR\"") && config.contains("# "),
        "{config}"
    );
    // The store holds only a hash of the token.
    let mut found_clear = false;
    for entry in walk(&node.join("store")) {
        let bytes = std::fs::read(entry).unwrap();
        found_clear |= bytes
            .windows(token.trim().len())
            .any(|w| w == token.trim().as_bytes());
    }
    assert!(!found_clear, "the token must not be stored in clear");

    let again = comity()
        .args(["init", "--jurisdiction", "FR", "--data-dir"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn bad_jurisdiction_and_missing_daemon_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = comity()
        .args(["init", "--jurisdiction", "XX", "--data-dir"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !dir.path().join("x").exists(),
        "nothing created for a bad jurisdiction"
    );

    let out = comity()
        .args(["status", "--admin", "http://127.0.0.1:1", "--token", "t"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `comity run` running?"));
}

#[test]
fn run_refuses_to_start_without_a_bloc_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("de");
    let ok = comity()
        .args([
            "init",
            "--jurisdiction",
            "DE",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--admin",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&node)
        .output()
        .unwrap();
    assert!(ok.status.success());
    // No genesis and no anchor: the node says how to found or join a bloc.
    let out = comity()
        .args(["run", "-c"])
        .arg(node.join("comity.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no bloc configuration"), "{stderr}");
    assert!(stderr.contains("--bloc-anchor"), "{stderr}");

    // A genesis file that is not one: refused with the file named.
    std::fs::write(node.join("genesis.cbor"), b"not a configuration").unwrap();
    let out = comity()
        .args(["run", "-c"])
        .arg(node.join("comity.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("genesis.cbor"), "{stderr}");
}

#[test]
fn policy_check_names_the_line_and_field_of_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/policy.toml");
    let out = comity()
        .args(["policy", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = dir.path().join("policy.toml");
    std::fs::write(
        &bad,
        "[[agreement]]\npartner = \"FR\"\ninstruments = [\"eu-epocc\"]\ndata_categories = [\"dna\"]\n",
    )
    .unwrap();
    let out = comity()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3: agreement[0].instruments[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":4: agreement[0].data_categories[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
}

#[test]
fn run_refuses_a_broken_policy_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("de");
    let ok = comity()
        .args([
            "init",
            "--jurisdiction",
            "DE",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--admin",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&node)
        .output()
        .unwrap();
    assert!(ok.status.success());
    std::fs::write(
        node.join("policy.toml"),
        "refused_offences = [\"Political!\"]\n",
    )
    .unwrap();
    let out = comity()
        .args(["run", "-c"])
        .arg(node.join("comity.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1: refused_offences[0]"), "{stderr}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs `comity` with `args`; its stdout if it succeeded, else panics with its stderr.
fn run_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = comity().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "comity {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn founders_form_a_bloc_offline_and_a_newcomer_needs_a_member_to_bootstrap_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).into_os_string();
    for j in ["FR", "DE"] {
        run_ok(&[
            "init".as_ref(),
            "--jurisdiction".as_ref(),
            j.as_ref(),
            "--bloc".as_ref(),
            "eu-test".as_ref(),
            "--listen".as_ref(),
            "/ip4/127.0.0.1/tcp/0".as_ref(),
            "--admin".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            &path(j),
        ]);
    }
    let fr_card = dir.path().join("FR/member.toml");
    let de_card = dir.path().join("DE/member.toml");
    assert!(
        std::fs::read_to_string(&fr_card)
            .unwrap()
            .contains("card = ")
    );
    run_ok(&[
        "bloc".as_ref(),
        "genesis".as_ref(),
        "--bloc".as_ref(),
        "eu-test".as_ref(),
        "--member".as_ref(),
        fr_card.as_os_str(),
        "--member".as_ref(),
        de_card.as_os_str(),
        "--out".as_ref(),
        &path("blank.cbor"),
    ]);
    for j in ["FR", "DE"] {
        let out = run_ok(&[
            "bloc".as_ref(),
            "sign-genesis".as_ref(),
            &path("blank.cbor"),
            "-c".as_ref(),
            &path(&format!("{j}/comity.toml")),
            "--out".as_ref(),
            &path(&format!("{j}.cbor")),
        ]);
        assert!(out.contains(&format!("Signed for {j}")), "{out}");
    }
    // One founder's signature is not a genesis.
    let out = comity()
        .args(["bloc", "assemble"])
        .arg(path("FR.cbor"))
        .arg("--out")
        .arg(path("short.cbor"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing DE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_ok(&[
        "bloc".as_ref(),
        "assemble".as_ref(),
        &path("FR.cbor"),
        &path("DE.cbor"),
        "--out".as_ref(),
        &path("genesis.cbor"),
    ]);
    let anchor = out
        .lines()
        .find_map(|l| l.strip_prefix("Trust anchor: "))
        .unwrap()
        .to_owned();
    assert_eq!(anchor.len(), 64, "{out}");

    // A card edited after it was signed is refused before anything is sent.
    let edited = dir.path().join("edited.toml");
    let text = std::fs::read_to_string(&fr_card).unwrap();
    std::fs::write(&edited, text.replace("name = \"FR\"", "name = \"Someone\"")).unwrap();
    let out = comity()
        .args(["bloc", "genesis", "--bloc", "eu-test", "--member"])
        .arg(&edited)
        .arg("--out")
        .arg(path("x.cbor"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("edited after the card was signed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Joining by anchor needs a member to pull the configuration from, named by its PeerId.
    let out = comity()
        .args([
            "init",
            "--jurisdiction",
            "IT",
            "--bloc",
            "eu-test",
            "--bloc-anchor",
            &anchor,
        ])
        .arg("--data-dir")
        .arg(path("IT"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap"));
    let out = comity()
        .args([
            "init",
            "--jurisdiction",
            "IT",
            "--bloc",
            "eu-test",
            "--bloc-anchor",
            &anchor,
        ])
        .args(["--bootstrap", "/ip4/127.0.0.1/tcp/4001"])
        .arg("--data-dir")
        .arg(path("IT"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/p2p/PEERID"));
}
