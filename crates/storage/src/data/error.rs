//! Why a data-plane operation failed.
//!
//! One enum for the whole data plane so that the service maps each variant to one gRPC status.
//! Every variant names the account (or block) involved, and every failure happens before anything
//! is written: a call either applies completely or not at all.

use std::path::PathBuf;

use super::block::KeyRef;
use cmksim_sim::SimTime;

/// A data-plane error.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("storage account {0} already exists")]
    AccountExists(String),
    #[error("storage account {0} does not exist")]
    AccountNotFound(String),
    #[error("the data of storage account {account} is permanently unreadable: it was purged (crypto-shredded: its account key and every block deleted) at {purged_at}")]
    PermanentlyUnreadable { account: String, purged_at: SimTime },
    #[error("the account key of {account} is wrapped by the customer's key, not the Microsoft-managed key")]
    NotMmkWrapped { account: String },
    #[error(
        "the account key given for {account} is not this account's key (fingerprint mismatch)"
    )]
    WrongAek { account: String },
    #[error("block {block_id} of {account} is sealed under {key_ref} and its account key was not provided")]
    KeyUnavailable {
        account: String,
        block_id: u64,
        key_ref: KeyRef,
    },
    #[error("block {block_id} of {account} in the {tier} tier failed authentication (tampered or corrupted)")]
    Integrity {
        account: String,
        block_id: u64,
        tier: &'static str,
    },
    #[error("malformed {tier} block under key {key_hex}: {reason}")]
    MalformedBlock {
        tier: &'static str,
        key_hex: String,
        reason: String,
    },
    #[error("the account key stored for {account} failed authentication under the Microsoft-managed key")]
    WrappedAekCorrupt { account: String },
    #[error("the account key stored for {account} as wrapped by the customer's key is not hex: the record is damaged")]
    WrappedAekNotHex { account: String },
    #[error("{what} must be {want_bytes} bytes, got {got_bytes}")]
    InvalidKeyLength {
        what: &'static str,
        got_bytes: usize,
        want_bytes: usize,
    },
    #[error("record {index}: {reason}")]
    InvalidRecord { index: usize, reason: String },
    #[error(
        "record {index} encodes to {bytes} bytes, more than block_max_bytes = {block_max_bytes}"
    )]
    RecordTooLarge {
        index: usize,
        bytes: usize,
        block_max_bytes: usize,
    },
    #[error("the batch encodes to {bytes} bytes, more than batch_max_bytes = {batch_max_bytes}")]
    BatchTooLarge {
        bytes: usize,
        batch_max_bytes: usize,
    },
    #[error("storage account {account} has its key wrapped by {wrapping}; new data cannot be sealed under {sealing}")]
    SealingMismatch {
        account: String,
        wrapping: &'static str,
        sealing: &'static str,
    },
    #[error("the outage buffer of {account} is full: {buffered_bytes} + {incoming_bytes} bytes exceeds buffer_max_bytes = {buffer_max_bytes}")]
    BufferFull {
        account: String,
        buffered_bytes: u64,
        incoming_bytes: u64,
        buffer_max_bytes: u64,
    },
    #[error("the query of {account}/{workspace}/{table} exceeds query_records_max = {query_records_max}")]
    QueryTooLarge {
        account: String,
        workspace: String,
        table: String,
        query_records_max: usize,
    },
    #[error("the summarize of {account}/{workspace}/{table} makes more than {groups_max} groups")]
    TooManyGroups {
        account: String,
        workspace: String,
        table: String,
        groups_max: usize,
    },
    #[error("invalid time range: from {from} is after to {to}")]
    InvalidTimeRange { from: SimTime, to: SimTime },
    #[error("outage buffer file {path}: {reason}")]
    BufferFile { path: PathBuf, reason: String },
    #[error("table keys {path}: {reason}")]
    TableKeys { path: PathBuf, reason: String },
    #[error("the purge of {account}/{table} waited {waited_ms} ms for appends that started before it to commit; retry it")]
    PurgeRaced {
        account: String,
        table: String,
        waited_ms: u64,
    },
    #[error("service key {path}: {reason}")]
    ServiceKey { path: PathBuf, reason: String },
    #[error("sled: {0}")]
    Storage(#[from] sled::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl From<sled::transaction::TransactionError<DataError>> for DataError {
    fn from(e: sled::transaction::TransactionError<DataError>) -> DataError {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => DataError::Storage(e),
        }
    }
}
