//! A tower layer that counts every gRPC call for `/metrics` (see `crate::metrics::grpc`), unary
//! and streaming alike.
//!
//! - started: when the call reaches the server;
//! - messages: by counting the 5-byte length-prefixed gRPC frames in the request and response
//!   bodies as they pass ([`FrameCounter`]), whatever the chunking;
//! - handled, and the handling time: when the response ends, with the code of the `grpc-status`
//!   trailer, or of the headers for a trailers-only answer (an immediate error). A call whose
//!   response is dropped before it ends (the client went away, the server is stopping) is
//!   handled with CANCELLED.

use crate::metrics::{GrpcCall, MethodMetrics, Metrics};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Code;
use tonic::body::Body;

#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, RB> tower::Service<http::Request<Body>> for MetricsService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<SentFrames<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let mut call = self.metrics.grpc().start(request.uri().path());
        let method = call.method();
        let request = request.map(|body| {
            Body::new(ReceivedFrames {
                inner: body,
                frames: FrameCounter::default(),
                method,
            })
        });
        let response = self.inner.call(request);
        // Dropped before the response, `call` counts as CANCELLED.
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    if let Some(status) = response.headers().get("grpc-status") {
                        // Trailers-only: the status is in the headers and the body is empty.
                        call.handled(Code::from_bytes(status.as_bytes()));
                    }
                    Ok(response.map(|inner| SentFrames {
                        inner,
                        frames: FrameCounter::default(),
                        call,
                    }))
                }
                Err(err) => {
                    call.handled(Code::Unknown);
                    Err(err)
                }
            }
        })
    }
}

/// Counts whole gRPC messages in a byte stream cut into arbitrary chunks: each message is a
/// 1-byte compression flag, a 4-byte big-endian length, then that many bytes.
#[derive(Debug, Default)]
pub struct FrameCounter {
    /// Prefix bytes of the current frame seen so far (0 to 4; at 5 the payload starts).
    prefix_seen: u8,
    length: [u8; 4],
    /// Payload bytes of the current frame still to come, once its prefix is complete.
    remaining: Option<u64>,
}

impl FrameCounter {
    /// Takes the next chunk of the stream; returns how many frames it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let mut completed = 0;
        while !chunk.is_empty() {
            if let Some(remaining) = self.remaining {
                let take = usize::try_from(remaining).map_or(chunk.len(), |r| r.min(chunk.len()));
                chunk = &chunk[take..];
                let left = remaining - take as u64;
                self.remaining = (left > 0).then_some(left);
                if left == 0 {
                    completed += 1;
                }
            } else {
                let byte = chunk[0];
                chunk = &chunk[1..];
                if self.prefix_seen > 0 {
                    // Bytes 1 to 4 are the length; byte 0 is the compression flag.
                    self.length[usize::from(self.prefix_seen - 1)] = byte;
                }
                self.prefix_seen += 1;
                if self.prefix_seen == 5 {
                    self.prefix_seen = 0;
                    match u32::from_be_bytes(self.length) {
                        0 => completed += 1,
                        length => self.remaining = Some(u64::from(length)),
                    }
                }
            }
        }
        completed
    }
}

/// The request body, counting the messages the client sends as the handler reads them.
struct ReceivedFrames {
    inner: Body,
    frames: FrameCounter,
    method: Arc<MethodMetrics>,
}

impl HttpBody for ReceivedFrames {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.method.received(this.frames.feed(data));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body: counts the messages the server sends and the call as handled when the
/// status trailer passes (or CANCELLED when dropped before).
pub struct SentFrames<B> {
    inner: B,
    frames: FrameCounter,
    call: GrpcCall,
}

impl<B> HttpBody for SentFrames<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.call.sent(this.frames.feed(data));
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .map_or(Code::Unknown, |s| Code::from_bytes(s.as_bytes()));
                    this.call.handled(code);
                }
            }
            // A body that fails, or ends with no status at all (a trailers-only answer was
            // counted at its headers already; `handled` counts once).
            Poll::Ready(Some(Err(_)) | None) => this.call.handled(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `payloads` framed as gRPC messages, one after the other.
    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            out.push(0);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    fn count_in_chunks(stream: &[u8], chunk: usize) -> u64 {
        let mut counter = FrameCounter::default();
        stream.chunks(chunk).map(|c| counter.feed(c)).sum()
    }

    #[test]
    fn several_frames_in_one_chunk() {
        let stream = framed(&[b"one", b"", b"three", &[0; 300]]);
        assert_eq!(FrameCounter::default().feed(&stream), 4);
    }

    #[test]
    fn frames_split_across_chunks_of_every_size() {
        let stream = framed(&[b"hello", b"", b"x", &[7; 1000], b"world"]);
        for chunk in 1..=stream.len() {
            assert_eq!(count_in_chunks(&stream, chunk), 5, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_frame_counts_only_once_complete() {
        let stream = framed(&[b"abcdef"]);
        let mut counter = FrameCounter::default();
        assert_eq!(counter.feed(&stream[..3]), 0, "inside the prefix");
        assert_eq!(counter.feed(&stream[3..8]), 0, "inside the payload");
        assert_eq!(counter.feed(&stream[8..]), 1);
        assert_eq!(counter.feed(&[]), 0);
    }

    #[test]
    fn a_huge_declared_length_never_completes_and_costs_nothing() {
        let mut counter = FrameCounter::default();
        assert_eq!(counter.feed(&[1, 0xff, 0xff, 0xff, 0xff]), 0);
        assert_eq!(counter.feed(&[0; 64 * 1024]), 0);
        assert_eq!(counter.remaining, Some(u64::from(u32::MAX) - 64 * 1024));
    }

    #[test]
    fn compressed_flag_does_not_change_the_framing() {
        let mut stream = framed(&[b"zz", b"yy"]);
        stream[0] = 1;
        assert_eq!(FrameCounter::default().feed(&stream), 2);
    }
}
