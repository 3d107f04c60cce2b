//! authd: an authentication service over gRPC. See README.md for what it does and how to run it,
//! and ARCHITECTURE.md for where each part lives and which part may use which.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod audit;
pub mod cleanup;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod revocations;
pub mod sessions;
pub mod telemetry;
pub mod throttle;

pub use grpc::pb;
