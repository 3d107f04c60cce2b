//! Cryptography: password hashing, opaque tokens, signing keys, access tokens, sealing and
//! one-time passwords (TOTP).

pub mod hash_bounds;
mod hash_params;
pub mod hash_pool;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod qr;
pub mod recovery;
pub mod seal;
pub mod token;
pub mod totp;
