//! The body of a streamed answer: the upstream's frames passed through as they come (no
//! buffering), with a deadline between frames. A stream that breaks after it started ends
//! with an OpenAI-shaped error event, never a silent truncation.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::balancer::{Lease, Pool};
use crate::keys::{Keys, UsageScanner};
use crate::metrics::Metrics;
use crate::openai::Refusal;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Done,
}

/// Who a relayed stream reports to.
#[derive(Debug)]
pub struct RelayTo {
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    pub route: String,
    /// The key (account) the request spends.
    pub account: String,
    pub started: Instant,
}

/// A relayed upstream body; holds the replica's lease until it ends.
pub struct Relay {
    inner: Incoming,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    state: State,
    lease: Lease,
    to: RelayTo,
    usage: UsageScanner,
    first_frame: bool,
    first_at: Option<Instant>,
}

impl Relay {
    pub fn new(inner: Incoming, between: Duration, lease: Lease, to: RelayTo) -> Self {
        Relay {
            inner,
            between,
            timer: Box::pin(tokio::time::sleep(between)),
            state: State::Streaming,
            lease,
            to,
            usage: UsageScanner::default(),
            first_frame: true,
            first_at: None,
        }
    }

    fn fail(&mut self, why: Refusal) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.to.pool.failure(&self.lease.replica);
        self.to.metrics.stream_broken(&self.to.route, &self.lease.replica.name);
        tracing::warn!(target: "gateway", replica = %self.lease.replica.name, error = %why.message(), "stream broke after it started");
        self.state = State::Done;
        Poll::Ready(Some(Ok(Frame::data(why.sse_event()))))
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.state == State::Done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.first_frame {
                        this.first_frame = false;
                        this.first_at = Some(Instant::now());
                        let (to, name) = (&this.to, &this.lease.replica.name);
                        to.metrics.first_token(&to.route, name, to.started.elapsed());
                    }
                    this.usage.feed(data);
                }
                let next = tokio::time::Instant::now() + this.between;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.fail(Refusal::UpstreamFailed(format!("the stream broke: {e}")))
            }
            Poll::Ready(None) => {
                let to = &this.to;
                to.pool.success(&this.lease.replica);
                to.metrics.finished(
                    &to.route,
                    &this.lease.replica.name,
                    "ok",
                    to.started.elapsed(),
                );
                to.metrics.key_finished(&to.account, "ok", to.started.elapsed());
                if let Some(tokens) = this.usage.total {
                    to.keys.charge(&to.account, tokens);
                    to.metrics.tokens(&to.route, &to.account, tokens);
                }
                if let (Some(n), Some(first)) = (this.usage.completion, this.first_at) {
                    let name = &this.lease.replica.name;
                    to.metrics.token_rate(&to.route, name, n, first.elapsed());
                }
                this.state = State::Done;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    let ms = this.between.as_millis();
                    return this.fail(Refusal::UpstreamTimeout(format!("no token for {ms} ms")));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// An answer: a whole body, or a stream of frames.
pub enum Answer<S> {
    Full(Option<Bytes>),
    Stream(S),
}

/// Every answer of the gateway: a whole body or a relayed stream.
pub type GatewayBody = Answer<Box<Relay>>;

impl<S> Answer<S> {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Answer::Full(Some(bytes.into()))
    }
}

impl<S: Body<Data = Bytes, Error = Infallible> + Unpin> Body for Answer<S> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Answer::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Full(b) => b.is_none(),
            Answer::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Answer::Full(None) => SizeHint::with_exact(0),
            Answer::Stream(s) => s.size_hint(),
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("replica", &self.lease.replica.name)
            .field("route", &self.to.route)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for Answer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if matches!(self, Answer::Full(_)) { "full" } else { "stream" };
        f.debug_struct("Answer").field("kind", &kind).finish_non_exhaustive()
    }
}
