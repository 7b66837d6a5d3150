//! Replies sent as they were encoded before. A reply that a service keeps (a check answered
//! again from its memo) is built and encoded once, and every later call that gets the same
//! reply sends those bytes: building a reply of a few hundred messages and encoding it cost
//! more than the rest of such a call. The bytes are the message's protobuf encoding, so the
//! caller reads the same message whichever way it was sent.
//!
//! A generated service serves its methods with replies of their message type;
//! [`EncodedReplies`] serves one unary method of it by a handler whose reply is
//! [`Encoded`], and passes every other call to the generated service.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::body::Body;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};

use crate::limits::{Bounded, BoundedCodec, BoundedDecoder};

/// A reply: a message, or the encoding of one.
#[derive(Debug, Clone)]
pub enum Encoded<M> {
    Message(M),
    Bytes(Bytes),
}

impl<M: prost::Message + Default> Encoded<M> {
    /// The encoding of `message`, to keep and send again.
    pub fn encode(message: &M) -> Bytes {
        Bytes::from(message.encode_to_vec())
    }

    /// The reply as a message (decoding it when it is bytes).
    pub fn into_message(self) -> Result<M, Status> {
        match self {
            Encoded::Message(message) => Ok(message),
            Encoded::Bytes(bytes) => M::decode(bytes)
                .map_err(|e| Status::internal(format!("a kept reply does not decode: {e}"))),
        }
    }
}

/// Encodes a reply: a message as prost does, bytes as they are.
pub struct EncodedEncoder<M> {
    _message: PhantomData<M>,
}

impl<M: prost::Message> Encoder for EncodedEncoder<M> {
    type Item = Encoded<M>;
    type Error = Status;

    fn encode(&mut self, item: Encoded<M>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            // The buffer grows as it is written, so prost finds room for any message.
            Encoded::Message(message) => message
                .encode(dst)
                .map_err(|e| Status::internal(format!("encoding the reply: {e}"))),
            Encoded::Bytes(bytes) => {
                dst.put_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// The codec of a method whose replies may be [`Encoded`]: requests are decoded and measured
/// as [`BoundedCodec`] does.
pub struct EncodedCodec<M, U> {
    _messages: PhantomData<(M, U)>,
}

impl<M, U> Default for EncodedCodec<M, U> {
    fn default() -> Self {
        EncodedCodec {
            _messages: PhantomData,
        }
    }
}

impl<M, U> Codec for EncodedCodec<M, U>
where
    M: prost::Message + Send + 'static,
    U: prost::Message + Default + Bounded + Send + 'static,
{
    type Encode = Encoded<M>;
    type Decode = U;
    type Encoder = EncodedEncoder<M>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder {
            _message: PhantomData,
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedCodec::<M, U>::default().decoder()
    }
}

/// A generated service `S` whose unary method at `path` is served by `handler`, with
/// [`Encoded`] replies; every other call goes to `S`. It is named as `S` is.
pub struct EncodedReplies<S, H, U, M> {
    service: S,
    path: &'static str,
    handler: H,
    max_decoding_bytes: usize,
    _messages: PhantomData<fn() -> (U, M)>,
}

impl<S: Clone, H: Clone, U, M> Clone for EncodedReplies<S, H, U, M> {
    fn clone(&self) -> Self {
        EncodedReplies {
            service: self.service.clone(),
            path: self.path,
            handler: self.handler.clone(),
            max_decoding_bytes: self.max_decoding_bytes,
            _messages: PhantomData,
        }
    }
}

impl<S, H, U, M> EncodedReplies<S, H, U, M> {
    /// Serves `path` (`/package.Service/Method`) by `handler`, decoding requests of at most
    /// `max_decoding_bytes` as the generated service does.
    pub fn new(service: S, path: &'static str, handler: H, max_decoding_bytes: usize) -> Self {
        EncodedReplies {
            service,
            path,
            handler,
            max_decoding_bytes,
            _messages: PhantomData,
        }
    }
}

impl<S, H, U, M> Service<http::Request<Body>> for EncodedReplies<S, H, U, M>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
    H: UnaryService<U, Response = Encoded<M>> + Clone + Send + 'static,
    H::Future: Send + 'static,
    U: prost::Message + Default + Bounded + Send + 'static,
    M: prost::Message + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != self.path {
            return Box::pin(self.service.call(request));
        }
        let handler = self.handler.clone();
        let max_decoding_bytes = self.max_decoding_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(EncodedCodec::<M, U>::default())
                .apply_max_message_size_config(Some(max_decoding_bytes), None);
            Ok(grpc.unary(handler, request).await)
        })
    }
}

impl<S: NamedService, H, U, M> NamedService for EncodedReplies<S, H, U, M> {
    const NAME: &'static str = S::NAME;
}
