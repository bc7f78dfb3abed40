//! The harness itself, against the real nats-server it finds. These tests
//! speak only the first line of the NATS protocol (the server's `INFO`), so
//! the testkit needs no client; the JetStream checks (data survives a
//! restart) are in `grantledger-nats`, which has one.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use grantledger_testkit::NatsServer;

/// The port of the machine's own nats-server, which no test may touch.
const MACHINE_NATS_PORT: u16 = 4222;

/// The server's `INFO` line on `port`, or `None` when nothing answers.
fn info_line(port: u16) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("INFO ").then_some(line)
}

/// Waits, up to a bound, until nothing accepts connections on `port`.
fn wait_until_closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if info_line(port).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn two_servers_at_once_get_different_ports_and_store_dirs() {
    let first = NatsServer::start();
    let second = NatsServer::start();
    assert_ne!(first.port(), second.port());
    assert_ne!(first.store_dir(), second.store_dir());
    for server in [&first, &second] {
        assert_ne!(server.port(), MACHINE_NATS_PORT);
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
        let info = info_line(server.port()).expect("the server answers with INFO");
        assert!(
            info.contains(r#""jetstream":true"#),
            "JetStream is on: {info}"
        );
    }
}

#[test]
fn restart_keeps_the_port_and_the_store_dir() {
    let mut server = NatsServer::start();
    let port = server.port();
    let store_dir = server.store_dir().to_path_buf();
    let pid_before = server.pid().expect("a started server has a pid");
    assert!(
        store_dir.join("jetstream").is_dir(),
        "JetStream writes under the store dir"
    );

    server.restart();

    assert_eq!(server.port(), port);
    assert_eq!(server.store_dir(), store_dir);
    assert_ne!(server.pid(), Some(pid_before), "a new process");
    assert!(info_line(port).is_some(), "the restarted server answers");
}

#[test]
fn kill_stops_the_server_and_restart_brings_it_back() {
    let mut server = NatsServer::start();
    let port = server.port();

    server.kill();
    assert_eq!(server.pid(), None);
    assert!(wait_until_closed(port), "nothing listens after kill");

    server.restart();
    assert_eq!(server.port(), port);
    assert!(info_line(port).is_some(), "the server is back on its port");
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    let server = NatsServer::start();
    let port = server.port();
    let store_dir = server.store_dir().to_path_buf();
    drop(server);
    assert!(wait_until_closed(port), "nothing listens after drop");
    assert!(!store_dir.exists(), "the store dir is removed");
}

#[test]
fn start_with_config_uses_the_config_but_never_its_listen_address() {
    // A config written for production listens on the standard port: the
    // helper's command line must override it.
    let config = "server_name: testkit_config_check\nlisten: 0.0.0.0:4222\n";
    let server = NatsServer::start_with_config(config);
    assert_ne!(server.port(), MACHINE_NATS_PORT);
    let info = info_line(server.port()).expect("the server answers with INFO");
    assert!(
        info.contains(r#""server_name":"testkit_config_check""#),
        "{info}"
    );
}

#[test]
fn a_server_that_cannot_start_fails_the_test_with_its_log() {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        NatsServer::start_with_config("this is { not a config")
    }));
    let payload = outcome.expect_err("a broken config fails the start");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
        })
        .unwrap_or_default();
    assert!(message.contains("exited during startup"), "{message}");
    assert!(message.contains("its log:\n"), "{message}");
    assert!(
        message.len() > "its log:\n".len() + 40,
        "the log is in the message: {message}"
    );
}
