//! The daemon speaks systemd's notify protocol: READY=1 once it runs, STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::Harness;

fn recv_until(sock: &UnixDatagram, want: &str) -> Result<Vec<String>, Vec<String>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let hit = msg.lines().any(|l| l == want);
                seen.push(msg);
                if hit {
                    return Ok(seen);
                }
            }
            Err(_) => return Err(seen),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_notifies_ready_and_stopping() {
    let h = Harness::start(Duration::ZERO).await;
    let sock_path = h.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_dvc-bridge"))
        .args(["run", "--config"])
        .arg(&h.config)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.log_path(0)).unwrap())
        .spawn()
        .expect("spawn");
    let ready = tokio::task::block_in_place(|| recv_until(&sock, "READY=1"));
    assert!(ready.is_ok(), "no READY=1: {ready:?}\n{}", h.daemon_logs());
    let pid = daemon.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopping = tokio::task::block_in_place(|| recv_until(&sock, "STOPPING=1"));
    assert!(stopping.is_ok(), "no STOPPING=1: {stopping:?}");
    let status = tokio::task::block_in_place(|| daemon.wait()).unwrap();
    assert!(status.success(), "{status:?}\n{}", h.daemon_logs());
    h.world.shutdown().await;
}
