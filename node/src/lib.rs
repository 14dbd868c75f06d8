//! The Comity node: the daemon (`comity run`) and the library behind the `comity` CLI.
//!
//! Rooms: `network` (libp2p, the only owner of the swarm), `store` (RocksDB, the only importer
//! of `rocksdb`), `cases` (requests, the exchange and the outbox), `evidence` (sealed packages and
//! their transfers), `admin` (HTTP API and its
//! typed client), `cli` (the officer and operator commands), `opmon` and `metrics` (what an
//! operator watches: a record of every exchange, and the Prometheus instruments).

pub mod admin;
pub mod audit;
pub mod backup;
pub mod bloc;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod evidence;
pub mod export;
pub mod identity;
pub mod init;
pub mod metrics;
pub mod network;
pub mod opmon;
pub mod policy;
pub mod process;
pub mod report;
pub mod roster;
pub mod store;
pub mod telemetry;
pub mod vault;
