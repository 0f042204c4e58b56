//! The soak's HTTP clients: one keep-alive HTTP/1.1 connection each (a
//! browser, a phone, a device), opened again after it breaks, every call
//! recorded in the [`Log`] with a deadline of its own.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use hyper::{
    header::{self, HeaderName},
    HeaderMap, Method,
};
use serde::de::DeserializeOwned;

use super::log::{CallRecord, Log};
use crate::{
    client::{Answer, Conn, Proto},
    servers::LOOPBACK,
};

/// A request to make.
#[derive(Clone)]
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, String)>,
    body: Option<(&'static str, String)>,
    timeout: Duration,
}

impl Req {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(15),
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    pub fn cookie(self, cookie: &str) -> Self {
        self.header(header::COOKIE, cookie)
    }

    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(("application/json", value.to_string()));
        self
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = Some(("application/x-www-form-urlencoded", form(pairs)));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// `application/x-www-form-urlencoded` (also a URL's query).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a URL's query.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// An answer, or what went wrong instead.
pub struct Reply {
    pub status: Option<u16>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub sent: f64,
    /// When the first of the calls that led to this answer was sent.
    pub first_sent: f64,
    pub answered: f64,
    pub transport: Option<String>,
    /// A 5xx page from nginx itself.
    pub balancer: bool,
}

impl Reply {
    pub fn is(&self, status: u16) -> bool {
        self.status == Some(status)
    }

    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `error` of a JSON error answer (API v1 and OAuth alike).
    pub fn error_code(&self) -> Option<String> {
        let value: serde_json::Value = self.json()?;
        value.get("error")?.as_str().map(ToOwned::to_owned)
    }

    /// Worth trying again: no answer, a 503, nginx's 502/504, a 429.
    pub fn retryable(&self) -> bool {
        matches!(self.status, None | Some(429 | 502 | 503 | 504))
    }

    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header(header::LOCATION)
    }

    /// `name=value` of the first cookie set, or of the one whose name
    /// ends with `suffix`.
    pub fn cookie(&self, suffix: Option<&str>) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| {
                suffix.is_none_or(|s| pair.split_once('=').is_some_and(|(n, _)| n.ends_with(s)))
            })
            .map(ToOwned::to_owned)
    }

    /// A short account for reports: `503 unavailable`, `no answer: …`.
    pub fn describe(&self) -> String {
        match (self.status, &self.transport) {
            (Some(s), _) if self.balancer => format!("{s} from nginx"),
            (Some(s), _) => match self.error_code() {
                Some(code) => format!("{s} {code}"),
                None => s.to_string(),
            },
            (None, Some(t)) => format!("no answer: {t}"),
            (None, None) => "no answer".to_owned(),
        }
    }
}

/// One client connection to `addr`, recorded as `target`.
pub struct Http {
    addr: SocketAddr,
    target: &'static str,
    conn: Option<Conn>,
    log: Arc<Log>,
}

impl Http {
    pub fn new(addr: SocketAddr, target: &'static str, log: &Arc<Log>) -> Self {
        Self {
            addr,
            target,
            conn: None,
            log: log.clone(),
        }
    }

    pub async fn call(&mut self, kind: &'static str, req: Req) -> Reply {
        let sent = self.log.now();
        let result = tokio::time::timeout(req.timeout, self.send(&req)).await;
        let answered = self.log.now();
        let reply = match result {
            Ok(Ok(answer)) => {
                let closing = answer
                    .headers
                    .get(header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                if closing {
                    self.conn = None;
                }
                let status = answer.status.as_u16();
                let balancer = status >= 500
                    && !answer
                        .headers
                        .get(header::CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
                    && String::from_utf8_lossy(&answer.body).contains("nginx");
                Reply {
                    status: Some(status),
                    headers: answer.headers,
                    body: answer.body,
                    sent,
                    first_sent: sent,
                    answered,
                    transport: None,
                    balancer,
                }
            }
            Ok(Err(err)) => {
                self.conn = None;
                Reply::broken(sent, answered, format!("{err:#}"))
            }
            Err(_) => {
                self.conn = None;
                Reply::broken(sent, answered, format!("timed out after {:?}", req.timeout))
            }
        };
        self.log.call(CallRecord {
            kind,
            target: self.target,
            sent,
            answered,
            status: reply.status,
            upstream: reply
                .header(HeaderName::from_static("x-upstream"))
                .map(ToOwned::to_owned),
            balancer: reply.balancer,
            error: match &reply.transport {
                Some(t) => Some(t.clone()),
                None => reply.error_code(),
            },
        });
        reply
    }

    async fn send(&mut self, req: &Req) -> anyhow::Result<Answer> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(self.addr, LOOPBACK, Proto::H1).await?);
        }
        let conn = self.conn.as_mut().context("no connection")?;
        let headers: Vec<(HeaderName, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str()))
            .collect();
        conn.send_typed(req.method.clone(), &req.path, &headers, req.body.clone())
            .await
    }

    /// `call` until it is answered with something other than a retryable
    /// failure, or until `for_s` seconds have passed; backs off from
    /// 0.25 s doubling to 2 s, as the pages do (faster, to see more).
    pub async fn until_answered(
        &mut self,
        kind: &'static str,
        for_s: f64,
        make: impl Fn() -> Req,
    ) -> Reply {
        let until = self.log.now() + for_s;
        let mut delay = 0.25;
        let mut first_sent = None;
        loop {
            let mut reply = self.call(kind, make()).await;
            reply.first_sent = *first_sent.get_or_insert(reply.sent);
            if !reply.retryable() || self.log.now() + delay > until {
                return reply;
            }
            let wait = match reply.status {
                // Retry-After is whole seconds; the limit is off here anyway.
                Some(429) => 1.0,
                _ => delay,
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            delay = (delay * 2.0).min(2.0);
        }
    }
}

impl Reply {
    fn broken(sent: f64, answered: f64, transport: String) -> Self {
        Self {
            status: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            sent,
            first_sent: sent,
            answered,
            transport: Some(transport),
            balancer: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_round_trip() {
        let encoded = form(&[("scope", "openid profile"), ("uri", "http://x/cb?a=1")]);
        assert_eq!(
            encoded,
            "scope=openid%20profile&uri=http%3A%2F%2Fx%2Fcb%3Fa%3D1"
        );
        let url = format!("http://h/p?{encoded}&state=a%2Bb+c");
        assert_eq!(
            query_param(&url, "scope").as_deref(),
            Some("openid profile")
        );
        assert_eq!(query_param(&url, "uri").as_deref(), Some("http://x/cb?a=1"));
        assert_eq!(query_param(&url, "state").as_deref(), Some("a+b c"));
        assert_eq!(query_param(&url, "none"), None);
        assert_eq!(decode("100%"), "100%");
    }
}
