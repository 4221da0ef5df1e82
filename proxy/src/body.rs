//! The bodies the proxy sends: its own short answers, and forwarded
//! bodies as they come (hyper's buffers bound what is held).

use std::io;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Body;

/// The body type of every response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, io::Error>;

/// A body with nothing but `text`.
pub(crate) fn full(text: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Any body of bytes, boxed. Bodies are not paced here: the client
/// connection they travel on is ([`crate::meter`]).
pub(crate) fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    body.map_err(io::Error::other).boxed()
}
