//! The HTTP client Hodi's outward requests share (providers' APIs, prompts to play): one
//! connection pool, TLS with the ring provider and the webpki roots, every request bounded in
//! time and every answer in size.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Largest answer read from a provider (theirs are a few hundred bytes of JSON).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// What a provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Why a request got no answer: worth trying again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer(pub String);

fn client() -> Result<&'static Client<Https, Full<Bytes>>, NoAnswer> {
    static CLIENT: OnceLock<Result<Client<Https, Full<Bytes>>, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let provider = tokio_rustls::rustls::crypto::ring::default_provider();
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| format!("TLS setup: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(https))
        })
        .as_ref()
        .map_err(|e| NoAnswer(e.clone()))
}

/// POSTs `body` to `url` with `headers`, waiting at most `timeout` for the whole answer.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    let mut request = hyper::Request::post(url).header(hyper::header::CONTENT_TYPE, content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| NoAnswer(format!("{url}: {e}")))?;
    exchange(url, request, timeout, MAX_ANSWER_BYTES).await
}

/// GETs `url` with `headers`, reading at most `max_bytes` of the answer within `timeout`.
pub async fn get(url: &str, headers: &[(&str, &str)], timeout: Duration, max_bytes: usize) -> Result<Answer, NoAnswer> {
    let mut request = hyper::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).map_err(|e| NoAnswer(format!("{url}: {e}")))?;
    exchange(url, request, timeout, max_bytes).await
}

async fn exchange(
    url: &str,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Answer, NoAnswer> {
    let exchange = async {
        let response = client()?.request(request).await.map_err(|e| NoAnswer(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| NoAnswer(format!("{url}: reading the answer: {e} (limit {max_bytes} bytes)")))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| NoAnswer(format!("{url}: no answer in {timeout:?}")))?
}

/// The fields of an `application/x-www-form-urlencoded` body, by name (the first of each): how
/// providers post their callbacks.
pub fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A field a callback must carry, not empty.
pub fn required<'a>(fields: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    fields.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is required"))
}

/// `application/x-www-form-urlencoded` for `fields`.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish().into_bytes()
}
