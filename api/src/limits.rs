//! The gRPC server's limits: the largest message accepted, how long a call may take to be
//! answered, and how many calls a connection may have in flight.
//!
//! A request over the size limit is refused with `RESOURCE_EXHAUSTED` (as grpc-go answers;
//! tonic's own answer is `OUT_OF_RANGE`), naming the size, the limit and the flag. A call
//! not answered within the timeout gets `DEADLINE_EXCEEDED`. The timeout covers producing
//! the answer's headers, so it bounds unary calls while a stream (WatchEvents, health
//! Watch) that has started flows for as long as the client keeps it open. A client's own
//! `grpc-timeout` still applies when shorter.
//!
//! Every call also gets an `x-request-id`, as Conduit's interceptor gives one: the
//! caller's (trimmed) or a new UUID, seen by the services as the correlation id of what
//! they record and sent back in the answer's headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::{Code, Status};

/// Limits of the gRPC server (flags `--api.grpc.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcOptions {
    /// The largest request message accepted, in bytes (answers are not limited: a long
    /// list is the client's to take).
    pub max_message_bytes: usize,
    /// How long a call may take to be answered.
    pub call_timeout: Duration,
    /// Calls one connection may have in flight at once; more wait their turn.
    pub max_concurrent_calls: usize,
}

impl Default for GrpcOptions {
    /// 4 MiB (gRPC's usual default), 60 s (longer than StartPipeline's wait for a start),
    /// 256 calls per connection.
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            call_timeout: Duration::from_secs(60),
            max_concurrent_calls: 256,
        }
    }
}

/// The layer that applies the call timeout, answers oversized requests with
/// `RESOURCE_EXHAUSTED` and gives each call its `x-request-id`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitsLayer {
    pub(crate) options: GrpcOptions,
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits {
            inner,
            options: self.options,
        }
    }
}

/// See [`LimitsLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Limits<S> {
    inner: S,
    options: GrpcOptions,
}

type Answer = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for Limits<S>
where
    S: tower::Service<http::Request<B>, Response = Answer>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Answer;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let id = request_id(request.headers_mut());
        let answer = self.inner.call(request);
        let options = self.options;
        Box::pin(async move {
            let answer = match tokio::time::timeout(options.call_timeout, answer).await {
                Err(_) => {
                    tracing::warn!(%method, timeout = ?options.call_timeout, "gRPC call timed out");
                    Ok(Status::deadline_exceeded(format!(
                        "the call was not answered within the server's limit of {:?} \
                         (--api.grpc.call-timeout)",
                        options.call_timeout
                    ))
                    .into_http())
                }
                Ok(Ok(answer)) => Ok(resource_exhausted(answer, &options)),
                Ok(Err(error)) => Err(error),
            };
            answer.map(|mut answer| {
                answer.headers_mut().insert(REQUEST_ID, id);
                answer
            })
        })
    }
}

/// The header naming a call (Conduit's `x-request-id`).
const REQUEST_ID: &str = "x-request-id";

/// The call's request id: the caller's `x-request-id` without surrounding spaces, else a
/// new UUID; set on the request, so the services read the same one.
fn request_id(headers: &mut http::HeaderMap) -> http::HeaderValue {
    let given = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| http::HeaderValue::from_str(v).ok());
    let id = given.unwrap_or_else(|| {
        http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .expect("a UUID is a valid header value")
    });
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// tonic answers a message over the limit with `OUT_OF_RANGE`; gRPC's convention (and
/// grpc-go's, which Conduit's clients know) is `RESOURCE_EXHAUSTED`.
fn resource_exhausted(answer: Answer, options: &GrpcOptions) -> Answer {
    let Some(status) = Status::from_header_map(answer.headers()) else {
        return answer;
    };
    if status.code() != Code::OutOfRange || !status.message().contains("message length too large") {
        return answer;
    }
    let found = status
        .message()
        .split("found ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("more");
    Status::resource_exhausted(format!(
        "the message is {found} bytes, over the server's limit of {} bytes \
         (--api.grpc.max-message-bytes)",
        options.max_message_bytes
    ))
    .into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_its_request_id_or_gets_a_new_one() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, http::HeaderValue::from_static("  req-7 "));
        assert_eq!(request_id(&mut headers), "req-7");
        assert_eq!(headers[REQUEST_ID], "req-7", "the services see the same id");
        for given in [None, Some("   ")] {
            let mut headers = http::HeaderMap::new();
            if let Some(value) = given {
                headers.insert(REQUEST_ID, http::HeaderValue::from_static(value));
            }
            let id = request_id(&mut headers);
            assert!(
                uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok(),
                "{id:?}"
            );
            assert_eq!(headers[REQUEST_ID], id);
        }
    }

    fn answer_with(status: Status) -> Answer {
        status.into_http()
    }

    #[test]
    fn an_oversized_message_is_resource_exhausted_naming_the_limit() {
        let options = GrpcOptions::default();
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 10485760 bytes, the limit is: \
             4194304 bytes",
        );
        let answer = resource_exhausted(answer_with(tonic_says), &options);
        let status = Status::from_header_map(answer.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "the message is 10485760 bytes, over the server's limit of 4194304 bytes \
             (--api.grpc.max-message-bytes)"
        );
    }

    #[test]
    fn other_answers_pass_unchanged() {
        let options = GrpcOptions::default();
        for status in [
            Status::out_of_range("page token out of range"),
            Status::not_found("pipeline x"),
        ] {
            let code = status.code();
            let message = status.message().to_owned();
            let answer = resource_exhausted(answer_with(status), &options);
            let status = Status::from_header_map(answer.headers()).unwrap();
            assert_eq!((status.code(), status.message()), (code, message.as_str()));
        }
        let ok = http::Response::new(tonic::body::Body::empty());
        assert!(resource_exhausted(ok, &options).headers().is_empty());
    }

    #[tokio::test]
    async fn a_call_not_answered_in_time_is_deadline_exceeded() {
        use tower::{Layer, Service, ServiceExt};
        let options = GrpcOptions {
            call_timeout: Duration::from_millis(20),
            ..GrpcOptions::default()
        };
        let never = tower::service_fn(|_request: http::Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<Answer, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let mut service = LimitsLayer { options }.layer(never);
        let answer = service
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(()))
            .await
            .unwrap();
        let status = Status::from_header_map(answer.headers()).unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.message().contains("--api.grpc.call-timeout"));
    }
}
