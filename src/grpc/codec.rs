//! The codec of the AuthService server and client (build.rs names it in the generated code).
//!
//! Encoding is exactly prost's (`tonic_prost::ProstEncoder`). Decoding is prost's too, but a
//! message that does not decode (a string that is not UTF-8, a truncated field, a wrong wire type)
//! is not answered the way `tonic_prost` answers it, INTERNAL with the decoder's own text: bytes a
//! caller sent that are not a request are that caller's mistake, so the server says
//! INVALID_ARGUMENT and names only the message it expected. What prost said goes to the debug log.
//!
//! The same codec runs in the generated client, where what it decodes is a response: a response
//! that does not decode is no fault of the caller's request, so there it is INTERNAL, with the
//! same short message.
//!
//! Some requests never reach the codec: tonic refuses them while it cuts the body into frames.
//! [`FramingErrors`] gives two of those answers the codes a caller should see; see there.

use prost::bytes::Buf;
use prost::{Message, Name};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::server::NamedService;
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;

/// prost encoding, and decode failures answered without the decoder's internals.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one `U` with prost; see [`decode_message`] for what a failure becomes.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Name + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_message(buf).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes the bytes of one message (the gRPC frame's payload) as a `U`.
///
/// A request (authd's request messages all end in `Request`, as the protobuf style guide has
/// it) that does not decode is INVALID_ARGUMENT; any other message is a response decoded by a
/// client, and a failure is INTERNAL. Either way the message names only the expected type.
pub fn decode_message<U: Message + Name + Default>(buf: impl Buf) -> Result<U, Status> {
    U::decode(buf).map_err(|error| {
        tracing::debug!(%error, message = U::NAME, "a message did not decode");
        let code = if U::NAME.ends_with("Request") {
            Code::InvalidArgument
        } else {
            Code::Internal
        };
        Status::new(
            code,
            format!("the message could not be decoded as {}", U::full_name()),
        )
    })
}

/// Wraps a gRPC service (the AuthService) and corrects two answers that tonic gives, before any
/// codec runs, to a request whose framing is broken:
///
/// - a message over the size limit (declared in its frame header, and refused before it is
///   read) is OUT_OF_RANGE in tonic; gRPC's status code table says RESOURCE_EXHAUSTED, and so
///   does every other implementation. authd answers OUT_OF_RANGE itself for a revocation cursor
///   it never gave out, so the case is told by tonic's text as well (a test,
///   `tests/api/bad_input/wire.rs`, notices if it changes).
/// - a body that ends inside a frame (its header declared more bytes than came) is INTERNAL
///   "Unexpected EOF decoding stream." in tonic: the caller's mistake, so INVALID_ARGUMENT. That
///   one is told by tonic's text; a test (`tests/api/bad_input/wire.rs`) notices if it changes.
///
/// A frame flagged as compressed when the request names no `grpc-encoding` stays INTERNAL: the
/// gRPC compression spec says it MUST.
#[derive(Debug, Clone)]
pub struct FramingErrors<S> {
    inner: S,
}

impl<S> FramingErrors<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for FramingErrors<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, RB> tower::Service<http::Request<B>> for FramingErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map(correct_framing_error) })
    }
}

/// tonic's text for a body that ended inside a frame.
const TONIC_EOF: &str = "Unexpected EOF decoding stream.";
/// How tonic's text for a message over the size limit starts.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

fn correct_framing_error<RB: Default>(response: http::Response<RB>) -> http::Response<RB> {
    // A call refused before the handler ran is answered "trailers-only": the status is in the
    // headers. An answer with a body carries it in the trailers, and is left alone.
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let corrected = match status.code() {
        Code::OutOfRange if status.message().starts_with(TONIC_TOO_LARGE) => {
            Status::resource_exhausted("the request message is larger than authd accepts")
        }
        Code::Internal if status.message() == TONIC_EOF => {
            Status::invalid_argument("the request ended inside a message")
        }
        _ => return response,
    };
    corrected.into_http()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn refusal<U: Message + Name + Default>(bytes: &[u8]) -> Status {
        match decode_message::<U>(bytes) {
            Ok(_) => panic!("{bytes:x?} decoded as {}", U::NAME),
            Err(status) => status,
        }
    }

    #[test]
    fn well_formed_messages_decode_as_prost_decodes_them() {
        let request = pb::SignupRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery".into(),
            name: "Ada".into(),
        };
        let bytes = request.encode_to_vec();
        let decoded = decode_message::<pb::SignupRequest>(bytes.as_slice());
        assert_eq!(decoded.ok(), Some(request));
        let empty = decode_message::<pb::LogoutResponse>(&[][..]);
        assert_eq!(empty.ok(), Some(pb::LogoutResponse {}));
    }

    #[test]
    fn undecodable_requests_are_invalid_argument_without_prost_text() {
        let cases: [&[u8]; 5] = [
            &[0x0a, 0x02, 0xff, 0xfe],       // field 1 (email), 2 bytes, not UTF-8
            &[0x0a, 0x05, b'a', b'b'],       // field 1 says 5 bytes, 2 follow
            &[0x0a, 0xff, 0xff],             // a length varint cut short
            &[0x0d, 0x01, 0x02, 0x03, 0x04], // field 1 as fixed32: wrong wire type
            &[0x0f],                         // wire type 7 does not exist
        ];
        for bytes in cases {
            let status = refusal::<pb::SignupRequest>(bytes);
            assert_eq!(status.code(), Code::InvalidArgument, "{bytes:x?}");
            assert_eq!(
                status.message(),
                "the message could not be decoded as auth.v1.SignupRequest"
            );
        }
    }

    #[test]
    fn an_undecodable_response_is_internal_for_the_client() {
        let status = refusal::<pb::SignupResponse>(&[0x0a, 0x05]);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "the message could not be decoded as auth.v1.SignupResponse"
        );
    }
}
