//! authd-verifier: what a service that receives authd access tokens needs to check them.
