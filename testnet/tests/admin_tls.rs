//! The admin API beyond loopback only with TLS, between real processes: a node set to listen
//! beyond loopback without TLS does not start and names the settings; with `comity tls-cert`'s
//! pair it serves https, the CLI pins the certificate, and a client that does not trust it,
//! or speaks plain http, gets nothing.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use comity_node::config::Config;
use common::*;
use tokio::io::AsyncReadExt;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(comity_testnet::comity_binary().unwrap())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_only_with_tls_and_the_cli_pins_the_certificate() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    let node = bloc.node("FR").clone();
    let path = node.config.clone();
    let original = Config::load(&path).unwrap();

    // Beyond loopback without TLS: refused at start, naming the settings.
    let mut exposed = original.clone();
    exposed.admin.listen = format!("0.0.0.0:{}", node.admin.port()).parse().unwrap();
    std::fs::write(&path, exposed.to_commented_toml()).unwrap();
    let out = cli(&["run", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_cert") && err.contains("beyond loopback"),
        "{err}"
    );

    // A self-signed pair, in the node's directory.
    let tls_dir = node.dir.join("admin-tls");
    let made = cli(&["tls-cert", "--dir", tls_dir.to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tls_dir.join("key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let mut secured = original.clone();
    secured.admin.tls_cert = Some("admin-tls/cert.pem".into());
    secured.admin.tls_key = Some("admin-tls/key.pem".into());
    std::fs::write(&path, secured.to_commented_toml()).unwrap();
    bloc.start("FR").unwrap();

    // With -c, the CLI speaks https and pins the node's own certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let out = comity(&path, &["status", "--json"]);
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "status over https never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.contains("\"FR\""), "{status}");

    let https = format!("https://127.0.0.1:{}", node.admin.port());
    let token = node.token_file.to_str().unwrap();
    let status_at = |extra: &[&str]| {
        let mut args = vec!["status", "--admin", &https, "--token-file", token];
        args.extend_from_slice(extra);
        cli(&args)
    };
    // Elsewhere, with the certificate pinned by hand.
    let cert = tls_dir.join("cert.pem");
    ok(status_at(&["--ca-file", cert.to_str().unwrap()]));
    // Idle connections that never start a handshake, from one address (127.0.0.2): they
    // hold at most that address's few places, and an officer elsewhere is still served.
    let mut idle = Vec::new();
    for _ in 0..80 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(socket.connect(node.admin).await.unwrap());
    }
    ok(status_at(&["--ca-file", cert.to_str().unwrap()]));
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await;
        closed += usize::from(matches!(read, Ok(Ok(0)) | Ok(Err(_))));
    }
    assert!(
        closed >= 70,
        "only {closed} of 80 idle connections were closed by the node"
    );
    drop(idle);
    // Without a CA file: told what to pass.
    let out = status_at(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-file"));
    // Trusting another certificate: no connection.
    let other = node.dir.join("other-tls");
    assert!(
        cli(&["tls-cert", "--dir", other.to_str().unwrap()])
            .status
            .success()
    );
    let out = status_at(&["--ca-file", other.join("cert.pem").to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "a certificate nobody pinned was trusted"
    );
    // Plain http beyond loopback: refused before anything is sent (the token would travel in
    // clear). The address is never dialled.
    let out = cli(&[
        "status",
        "--admin",
        "http://192.0.2.1:7701",
        "--token-file",
        token,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("beyond loopback") && err.contains("https"),
        "{err}"
    );
    // Plain http to the https port: no answer.
    let http = format!("http://127.0.0.1:{}", node.admin.port());
    let out = cli(&["status", "--admin", &http, "--token-file", token]);
    assert!(!out.status.success(), "plain http was answered");
}
