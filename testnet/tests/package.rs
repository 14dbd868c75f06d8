//! The Debian package (`scripts/package`): built from the binaries the tests use, it holds
//! the binaries, the systemd unit and its user, completions, man pages and the example
//! config; the unit passes `systemd-analyze verify` as installed (its paths pointed at the
//! unpacked package), and its maintainer scripts are valid shell.

use std::path::Path;
use std::process::Command;

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (scripts/bootstrap installs it)"));
    assert!(
        out.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_package_holds_the_service_completions_and_man_pages() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let binary = comity_testnet::comity_binary().unwrap();
    let bin_dir = binary.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deb = run(Command::new(workspace.join("scripts/package"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(dir.path())
        // Debug binaries are large; compressing them is not what is tested.
        .args(["--compress", "none"]));
    let deb = deb.trim();
    assert!(deb.ends_with(".deb"), "{deb}");

    let listing = run(Command::new("dpkg-deb").args(["-c", deb]));
    for path in [
        "./usr/bin/comity",
        "./usr/bin/comity-verify",
        "./usr/lib/systemd/system/comity.service",
        "./usr/lib/sysusers.d/comity.conf",
        "./usr/share/bash-completion/completions/comity",
        "./usr/share/zsh/vendor-completions/_comity",
        "./usr/share/fish/vendor_completions.d/comity.fish",
        "./usr/share/man/man1/comity.1.gz",
        "./usr/share/man/man1/comity-run.1.gz",
        "./usr/share/man/man1/comity-backup.1.gz",
        "./usr/share/doc/comity/examples/comity.toml",
        "./usr/share/doc/comity/operations.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{listing}"
        );
    }
    let control = run(Command::new("dpkg-deb").args(["-f", deb, "Package", "Depends"]));
    assert!(control.contains("Package: comity"), "{control}");

    // Unpacked; the unit as installed, its programs pointed into the unpacked tree.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/comity.service")).unwrap();
    for setting in [
        "User=comity",
        "StateDirectory=comity",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/comity",
    ] {
        assert!(unit.contains(setting), "{setting} missing from the unit");
    }
    let here = unit.replace(
        "/usr/bin/comity",
        &format!("{}/usr/bin/comity", root.display()),
    );
    let checked = dir.path().join("comity.service");
    std::fs::write(&checked, here).unwrap();
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&checked)
        .env("MANPATH", root.join("usr/share/man")));
    // The example config is one the node reads.
    comity_node::config::Config::load(&root.join("usr/share/doc/comity/examples/comity.toml"))
        .unwrap();

    let control_dir = dir.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(&control_dir));
    for script in ["postinst", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control_dir.join(script)));
    }
}
