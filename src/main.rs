//! The `grantledger` command.
fn main() {}
