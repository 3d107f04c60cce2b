//! What hashing costs, as plain values settings are turned into: the algorithm for new hashes
//! and its parameters.

use argon2::Params;

/// The algorithm for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Argon2id,
    Bcrypt,
}

impl HashAlgorithm {
    /// The names settings use for the algorithms, in the order of the enum.
    pub const NAMES: [&'static str; 2] = ["argon2id", "bcrypt"];

    /// The algorithm of a name from `NAMES`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "argon2id" => Some(Self::Argon2id),
            "bcrypt" => Some(Self::Bcrypt),
            _ => None,
        }
    }
}

/// The cost of hashing: what the hasher needs, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashParams {
    pub algorithm: HashAlgorithm,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub bcrypt_cost: u32,
    /// Hashes running at once (at least 1); more callers wait.
    pub max_concurrent: usize,
}

impl HashParams {
    /// What is wrong with the argon2 cost, if anything: the field at fault (`argon2_memory_kib`,
    /// `argon2_iterations` or `argon2_parallelism`) and why.
    pub fn argon2_problem(&self) -> Option<(&'static str, String)> {
        let err = self.argon2().err()?;
        let field = match err {
            argon2::Error::MemoryTooLittle | argon2::Error::MemoryTooMuch => "argon2_memory_kib",
            argon2::Error::TimeTooSmall => "argon2_iterations",
            _ => "argon2_parallelism",
        };
        Some((field, err.to_string()))
    }

    pub(super) fn argon2(&self) -> Result<Params, argon2::Error> {
        Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
    }
}
