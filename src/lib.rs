//! authd: an authentication service over gRPC. See README.md for what it does and how to run it.
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod import;
pub mod keys_command;
pub mod mail;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use grpc::pb;
