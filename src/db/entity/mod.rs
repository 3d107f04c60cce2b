//! SeaORM entities: the tables as the queries in `store` see them. Only `store` uses these.

pub mod audit_event;
pub mod mail_outbox;
pub mod mfa_challenge;
pub mod one_time_token;
pub mod recovery_code;
pub mod refresh_token;
pub mod revocation;
pub mod session;
pub mod signing_key;
pub mod totp_factor;
pub mod user;
