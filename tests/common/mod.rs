//! Helpers shared by the binary's integration tests.

#![allow(dead_code)] // Each test file uses a different part.

use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_grantledger");

/// Starts `grantledger ledger` for tenant `acme` on `data`, logging warnings only.
pub fn spawn_ledger(data: &Path, url: &str) -> Child {
    Command::new(BIN)
        .args(["ledger", "--data"])
        .arg(data)
        .args(["--nats", url, "--tenant", "acme"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the ledger")
}

/// Sends SIGTERM and asserts the process exits 0.
pub fn terminate(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("reaped");
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}

/// A small deterministic generator: tests are reproducible from their seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
