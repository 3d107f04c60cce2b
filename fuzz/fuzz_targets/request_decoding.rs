//! The AuthService codec's decoder (`authd::grpc::codec::decode_message`) on any bytes, as every
//! request message: never panics; a failure is INVALID_ARGUMENT with the one short message; a
//! success re-encodes to bytes that decode to the same message.
#![no_main]

use authd::grpc::codec::decode_message;
use authd::pb;
use libfuzzer_sys::fuzz_target;
use prost::{Message, Name};
use tonic::Code;

fn check<T: Message + Name + Default + PartialEq>(data: &[u8]) {
    match decode_message::<T>(data) {
        Ok(message) => {
            let bytes = message.encode_to_vec();
            assert!(bytes.len() <= data.len(), "{} grew", T::NAME);
            let again = decode_message::<T>(bytes.as_slice()).expect("re-encoded bytes decode");
            assert!(again == message, "{} changed on a round trip", T::NAME);
        }
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(
                status.message(),
                format!("the message could not be decoded as {}", T::full_name())
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the message, so each one gets the fuzzer's whole attention in turn.
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 10 {
        0 => check::<pb::SignupRequest>(data),
        1 => check::<pb::LoginRequest>(data),
        2 => check::<pb::RefreshRequest>(data),
        3 => check::<pb::LogoutRequest>(data),
        4 => check::<pb::VerifyEmailRequest>(data),
        5 => check::<pb::ResendVerificationRequest>(data),
        6 => check::<pb::RequestPasswordResetRequest>(data),
        7 => check::<pb::ResetPasswordRequest>(data),
        8 => check::<pb::IntrospectRequest>(data),
        _ => check::<pb::GetJwksRequest>(data),
    }
});
