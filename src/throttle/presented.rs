//! A token a client presents (a refresh token, a one-time link's token, an `mfa_token`): looked
//! up by its digest, with the client throttled when it keeps presenting ones that lead nowhere.

use super::Throttle;
use crate::crypto::token::TokenDigest;
use crate::db::StoreError;
use crate::error::AuthError;
use std::future::Future;

impl Throttle {
    /// Refuses a client that has been failing too often; then `find`s the record of the token
    /// `raw` (by its digest) and counts a failure of the client when there is none (an unknown,
    /// malformed, spent or expired token: `find` answers `None` for each).
    pub async fn find_presented<T, F, Fut>(
        &self,
        client: &str,
        raw: &str,
        find: F,
    ) -> Result<Option<(TokenDigest, T)>, AuthError>
    where
        F: FnOnce(TokenDigest) -> Fut,
        Fut: Future<Output = Result<Option<T>, StoreError>>,
    {
        self.check_client(client).await?;
        let found = match TokenDigest::of_presented(raw.trim()) {
            Some(digest) => find(digest).await?.map(|record| (digest, record)),
            None => None,
        };
        if found.is_none() {
            self.client_failed(client).await?;
        }
        Ok(found)
    }

    /// The same lookup for a caller that checks the client's failures itself once the record is
    /// found, in the read it makes anyway (VerifyMfa, with the account's wrong codes): the
    /// client is checked before its failure is counted only when nothing is found.
    pub async fn find_presented_then_check<T, F, Fut>(
        &self,
        client: &str,
        raw: &str,
        find: F,
    ) -> Result<Option<(TokenDigest, T)>, AuthError>
    where
        F: FnOnce(TokenDigest) -> Fut,
        Fut: Future<Output = Result<Option<T>, StoreError>>,
    {
        let found = match TokenDigest::of_presented(raw.trim()) {
            Some(digest) => find(digest).await?.map(|record| (digest, record)),
            None => None,
        };
        if found.is_none() {
            self.check_client(client).await?;
            self.client_failed(client).await?;
        }
        Ok(found)
    }
}
