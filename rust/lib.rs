//! agent-bom core: the hot path of evidence streaming.
//!
//! `canon` (RFC 8785), `digest` (SHA-256, BLAKE3), `chain` (hash chain and
//! RFC 6962 Merkle tree), `cloudevent` (DESIGN §4 mapping), `pipeline`
//! (bounded multi-threaded stream), `verify` (streaming verifier). The PyO3
//! glue lives in `py` and is only built with the `python` feature.

pub mod binding;
pub mod canon;
pub mod capture;
pub mod chain;
pub mod cloudevent;
pub mod contract;
pub mod digest;
pub mod json;
mod keywords;
pub mod ledger;
pub mod lines;
pub mod pipeline;
pub mod redact;
#[cfg(target_arch = "x86_64")]
mod shani;
pub mod time;
pub mod verify;

#[cfg(feature = "python")]
mod py;
