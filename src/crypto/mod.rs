//! Cryptography: password hashing, opaque tokens, signing keys, access tokens and sealing.

pub mod hash_pool;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod seal;
pub mod token;
