//! The `grantledger` command: one binary whose subcommands simulate a
//! workload into a log, verify a log's hash chain, replay it through the state
//! machine, and show its events.
//!
//! Exit codes: 0 success; 1 the log is damaged or breaks a rule (`verify`,
//! `replay`); 2 bad input or an operational error (a missing directory, a
//! catalog that does not parse, ...), in which case nothing was written.

mod commands;
mod evidence;
mod nats_args;
mod policy_cli;
mod progress;
mod project_cli;
mod projections_cli;
mod proofs;
mod revoker_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the services allocate and free many
/// small buffers per event (NATS messages, JSON, RocksDB keys), and in the
/// expiry storm glibc's free-list upkeep (`malloc_consolidate`,
/// `unlink_chunk`) was a fifth of the process's CPU. Built without
/// transparent huge pages (the `no_thp` feature): mimalloc would otherwise
/// ask for them, and the first touch of each 2 MiB page zeroes it inside
/// whatever thread touched it, a 5 ms stall of the ledger's decide thread
/// on the machines measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An event-sourced ledger of access grants: every request, decision,
/// approval, issuance and revocation is an immutable event in a blake3
/// hash-chained log, so anyone can later prove why access existed.
#[derive(Parser, Debug)]
#[command(name = "grantledger", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run the ledger as a service on NATS JetStream: pull inputs from
    /// GRANT_INPUT, decide, commit to the log (synced), publish the events to
    /// LEDGER_EVENTS and only then acknowledge. SIGTERM/SIGINT finish the
    /// batch in hand and exit 0.
    Ledger {
        /// The log's directory: created when empty, else opened.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The NATS server.
        #[arg(long, value_name = "URL")]
        nats: String,
        /// The tenant (partition) served.
        #[arg(long, value_name = "T", default_value = "acme")]
        tenant: String,
        #[command(flatten)]
        login: nats_args::NatsLogin,
        /// Inbox prefix (the shipped config gives the ledger `_INBOX_LEDGER`).
        #[arg(long, value_name = "PREFIX")]
        inbox_prefix: Option<String>,
        /// Catalog published when the log is empty; the built-in example when absent.
        #[arg(long, value_name = "FILE")]
        catalog: Option<PathBuf>,
        /// Sign checkpoints of the log with this private key
        /// (`grantledger keys generate`): kept in the log's metadata,
        /// published on `ledger.checkpoints`, and written to
        /// `--checkpoint-file` if given.
        #[arg(long, value_name = "FILE")]
        checkpoint_key: Option<PathBuf>,
        /// Sign a checkpoint once this many records were committed since the last.
        #[arg(long, value_name = "N", default_value_t = 10_000, requires = "checkpoint_key",
              value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_every: u64,
        /// ...or once this many seconds passed with new records.
        #[arg(long, value_name = "S", default_value_t = 60, requires = "checkpoint_key",
              value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_interval: u64,
        /// Write the newest checkpoint to this file too (replaced atomically).
        #[arg(long, value_name = "FILE", requires = "checkpoint_key")]
        checkpoint_file: Option<PathBuf>,
        /// Workload identity issuers (TOML naming each issuer, its audiences
        /// and its JWKS file): a request's `identity_token` is verified
        /// against them at intake and only its verified claims reach the
        /// policies. Without it, requests carrying a token are refused.
        #[arg(long, value_name = "FILE")]
        identity_issuers: Option<PathBuf>,
    },
    /// Remove access at a target system when the ledger revokes or expires a
    /// grant, through a shell command or a webhook, and report the outcome
    /// to the ledger; failures are retried with capped exponential backoff.
    #[command(after_help = revoker_cli::AFTER_HELP)]
    Revoker(revoker_cli::RevokerArgs),
    /// Run one projection as a service on NATS: follow LEDGER_EVENTS in
    /// sequence order into its own store, backfill gaps from the ledger,
    /// answer queries on `grants.query.<tenant>.*`; expiry-timers also fires
    /// timers and publishes revocations for revocation workers.
    #[command(after_help = project_cli::AFTER_HELP)]
    Project(project_cli::ProjectArgs),
    /// Drive a deterministic, realistic workload through the real state
    /// machine into a new log.
    ///
    /// Humans, workloads and agents ask for entitlements of the catalog;
    /// some are auto-approved, some need approvers (who sometimes try to
    /// approve their own request, and are refused), some are denied; grants
    /// are revoked on task completion, by hand or by risk signals, and expire
    /// on a simulated clock; revocation workers confirm, sometimes after
    /// failures. The same seed and arguments give the same records, byte for
    /// byte, and the same head hash.
    Simulate {
        /// Directory of the new log; must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// How many access requests to submit (other commands interleave).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        requests: u64,
        /// Seed of the workload; the same seed gives the same log.
        #[arg(long, value_name = "S", default_value_t = 1)]
        seed: u64,
        /// Catalog of entitlements (TOML); the built-in example when absent.
        #[arg(long, value_name = "FILE")]
        catalog: Option<PathBuf>,
        /// Cedar policies to publish after the catalog: requests are then
        /// decided by the policy engine, each with a simulated context.
        /// Refused, with Cedar's message, when they do not validate.
        #[arg(long, value_name = "FILE")]
        policies: Option<PathBuf>,
        /// Exception rules (TOML) published with `--policies`.
        #[arg(long, value_name = "FILE", requires = "policies")]
        exceptions: Option<PathBuf>,
        /// The tenant (partition) the log belongs to.
        #[arg(long, value_name = "T", default_value = "acme")]
        tenant: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Walk the whole hash chain and check every record.
    ///
    /// Checks each record's key, header, body length, parent link, hash,
    /// time order and body encoding, and that the stored head matches the
    /// last record. Exit 0 when intact; exit 1 naming the first bad sequence
    /// number and the rule it breaks.
    ///
    /// With `--checkpoint` it also proves, with a consistency proof, that the
    /// log is an append-only extension of that signed checkpoint: records cut
    /// off the end, or a history rewritten with every hash recomputed to
    /// match, fail naming which.
    Verify {
        /// Directory of the log (opened read-only).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// A signed checkpoint the auditor kept (`grantledger checkpoint --out`).
        #[arg(long, value_name = "FILE", requires = "public_keys")]
        checkpoint: Option<PathBuf>,
        /// The ledger's public verifier key (repeat for rotated keys).
        #[arg(long = "public-key", value_name = "FILE", requires = "checkpoint")]
        public_keys: Vec<PathBuf>,
        /// Print `{"records": N, "head": "<hex>"}` (or the failure) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fold the log through the state machine from genesis and print a
    /// digest of the resulting state.
    ///
    /// Every event must follow the rules from the state before it (no grant
    /// without an allowing decision, no TTL past the entry's maximum, ...);
    /// exit 1 naming the first record that does not. The digest is
    /// bit-for-bit reproducible: any replay of the same log prints the same.
    Replay {
        /// Directory of the log (opened read-only).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Stop after this sequence number (inclusive).
        #[arg(long, value_name = "SEQ", conflicts_with = "projector")]
        to: Option<u64>,
        /// Rebuild one projection (current-grants, expiry-timers,
        /// audit-evidence) from the log and print its digest, which a
        /// running projector at the same sequence reports bit for bit.
        #[arg(long, value_name = "NAME")]
        projector: Option<String>,
        /// Where to rebuild it (must not exist or be empty); a temporary
        /// directory when absent.
        #[arg(long, value_name = "DIR", requires = "projector")]
        store: Option<PathBuf>,
        /// Print the digests as JSON: the state machine's and, replaying to
        /// the head, one per projection.
        #[arg(long)]
        json: bool,
        /// Evaluate every recorded decision again with the policy set and
        /// catalog in force at its sequence number; exit 1 naming every
        /// sequence whose decision comes out differently.
        #[arg(long, conflicts_with_all = ["to", "projector"])]
        recheck: bool,
    },
    /// Who had access, and why: whether PRINCIPAL could act on RESOURCE at
    /// time T, with each grant's evidence chain (request, decision and its
    /// reasons, approvals, issuance, extensions, revocation, confirmation),
    /// each with its sequence number. Answered from the log directory by
    /// rebuilding the audit-evidence projection.
    Why {
        /// Directory of the log (opened read-only): the answer is rebuilt
        /// from the log itself.
        #[arg(long, value_name = "DIR", required_unless_present = "nats", conflicts_with = "nats")]
        data: Option<PathBuf>,
        /// Ask the running audit-evidence projector instead
        /// (`grantledger project audit-evidence`), over NATS.
        #[arg(long, value_name = "URL", conflicts_with = "bundle")]
        nats: Option<String>,
        /// With --nats: the tenant.
        #[arg(long, value_name = "T", default_value = "acme", requires = "nats")]
        tenant: String,
        /// With --nats: how to log in.
        #[command(flatten)]
        login: nats_args::NatsLogin,
        /// The principal.
        #[arg(long, value_name = "P")]
        principal: String,
        /// The resource.
        #[arg(long, value_name = "R")]
        resource: String,
        /// The time (RFC 3339).
        #[arg(long, value_name = "T")]
        at: String,
        /// Print the answer as JSON.
        #[arg(long, conflicts_with = "bundle")]
        json: bool,
        /// Print instead an evidence bundle of the grants that gave access,
        /// each record with its inclusion proof against the smallest stored
        /// checkpoint that covers them (`grantledger verify-bundle` checks it).
        #[arg(long)]
        bundle: bool,
    },
    /// Try, test and publish policies: decide a request with a catalog and
    /// Cedar policies, run a policy directory's table tests, or put a policy
    /// set in force (into a stopped ledger's log, or through the running
    /// ledger over NATS).
    Policy {
        #[command(subcommand)]
        action: policy_cli::PolicyAction,
    },
    /// Put a catalog of entitlements in force: into a stopped ledger's log,
    /// or through the running ledger over NATS.
    Catalog {
        #[command(subcommand)]
        action: policy_cli::CatalogAction,
    },
    /// Sign a checkpoint of the whole log (origin, tree size, Merkle root,
    /// time) with the ledger's key, keep it in the log's metadata, print it,
    /// and write it to `--out` for an auditor to keep elsewhere.
    Checkpoint {
        /// Directory of the log (opened for writing: stop the ledger first).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The private signing key (`grantledger keys generate`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Also write the checkpoint to this new file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a grant's evidence bundle (JSON, on stdout): the records of its
    /// chain (request, decision, approvals, issuance, extensions,
    /// revocation, confirmation), each with its inclusion proof against a
    /// signed checkpoint, and the checkpoint. `grantledger verify-bundle`
    /// checks it with no database; schemas/EVIDENCE_BUNDLE.md documents it.
    Evidence {
        /// Directory of the log (opened read-only).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The grant (`grant:<request id>`).
        #[arg(long, value_name = "ID")]
        grant: String,
        /// The checkpoint to prove against; the smallest stored one that
        /// covers the grant's records when absent.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Manage the Ed25519 keys that sign the log's checkpoints.
    Keys {
        #[command(subcommand)]
        action: proofs::KeysAction,
    },
    /// Check an evidence bundle offline: no database, no network.
    ///
    /// Checks the checkpoint's signature against the trusted public keys,
    /// every record's hash (schemas/LOG_FORMAT.md), every record's inclusion
    /// proof against the checkpoint's root, and that each event shown for
    /// people is what its record says. The format is documented in
    /// schemas/EVIDENCE_BUNDLE.md. Exit 0 when it verifies; 1 naming the
    /// first failure; 2 for unreadable input.
    VerifyBundle {
        /// The bundle (JSON), as `grantledger evidence` writes it.
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
        /// A trusted public verifier key (repeat for rotated keys).
        #[arg(long = "public-key", value_name = "FILE", required = true)]
        public_keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print events as JSON lines (sequence, time, hash, envelope), for
    /// people and for `jq`.
    Show {
        /// Directory of the log (opened read-only).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// First sequence number to print.
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: u64,
        /// How many events to print at most.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u64,
    },
}

/// How a subcommand ended, beyond success.
pub enum Failure {
    /// The log is damaged or breaks a rule: exit 1. The message was printed.
    Damaged,
    /// Bad input or an operational error: exit 2.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Error(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Simulate { data, requests, seed, catalog, policies, exceptions, tenant, json } => {
            let policy = policies
                .as_deref()
                .map(|policies| commands::SimulatePolicy { policies, exceptions: exceptions.as_deref() });
            commands::simulate(&data, requests, seed, catalog.as_deref(), policy, &tenant, json)
        }
        Commands::Ledger {
            data,
            nats,
            tenant,
            login,
            inbox_prefix,
            catalog,
            checkpoint_key,
            checkpoint_every,
            checkpoint_interval,
            checkpoint_file,
            identity_issuers,
        } => commands::ledger(commands::LedgerArgs {
            data,
            nats,
            tenant,
            login,
            inbox_prefix,
            catalog,
            checkpoint_key,
            checkpoint_every,
            checkpoint_interval_s: checkpoint_interval,
            checkpoint_file,
            identity_issuers,
        }),
        Commands::Verify { data, checkpoint, public_keys, json } => {
            commands::verify(&data, checkpoint.as_deref(), &public_keys, json)
        }
        Commands::Revoker(args) => revoker_cli::run(args),
        Commands::Project(args) => project_cli::run(args),
        Commands::Checkpoint { data, key, out } => evidence::checkpoint(&data, &key, out.as_deref()),
        Commands::Evidence { data, grant, checkpoint } => evidence::evidence(&data, &grant, checkpoint.as_deref()),
        Commands::Replay { data, recheck: true, json, .. } => commands::recheck(&data, json),
        Commands::Replay { data, to: _, projector: Some(name), store, json, recheck: false } => {
            projections_cli::replay_projector(&data, &name, store.as_deref(), json)
        }
        Commands::Replay { data, to, projector: None, store: _, json, recheck: false } => {
            commands::replay(&data, to, json)
        }
        Commands::Why { data: Some(data), principal, resource, at, json, bundle, .. } => {
            projections_cli::why(&data, &principal, &resource, &at, json, bundle)
        }
        Commands::Why { data: None, nats, tenant, login, principal, resource, at, json, .. } => {
            let url = nats.unwrap_or_default();
            projections_cli::why_running(&url, &tenant, login, &principal, &resource, &at, json)
        }
        Commands::Show { data, from, limit } => commands::show(&data, from, limit),
        Commands::Keys { action } => proofs::keys(action),
        Commands::Policy { action } => policy_cli::policy(action),
        Commands::Catalog { action } => policy_cli::catalog(action),
        Commands::VerifyBundle { bundle, public_keys, json } => proofs::verify_bundle(&bundle, &public_keys, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Damaged) => ExitCode::from(1),
        Err(Failure::Error(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
