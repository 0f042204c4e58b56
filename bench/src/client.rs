//! The load generator's HTTP side: hyper client connections (HTTP/1.1, one
//! request at a time; or h2c, many streams), and qrlogin's API calls.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context};
use app::api::{paths, LoginCreated, LoginStatus, Scanned, SignedIn};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    client::conn::{http1, http2},
    header, HeaderMap, Method, Request, StatusCode,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Proto {
    /// One connection per waiting desktop, as browsers without HTTP/2 do.
    #[serde(rename = "http1")]
    H1,
    /// Cleartext HTTP/2 with many streams per connection, as behind an
    /// HTTP/2 proxy or from browsers on HTTP/2.
    #[serde(rename = "h2c")]
    H2,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection to a server on loopback.
pub struct Conn {
    sender: Sender,
    authority: Arc<str>,
}

/// A whole answer, body read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "unexpected answer {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn expect(self, status: StatusCode) -> anyhow::Result<Self> {
        if self.status != status {
            bail!(
                "expected {status}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self)
    }
}

impl Conn {
    /// Connects from `source` (any 127.0.0.0/8 address: each gives its own
    /// ~28,000 ephemeral ports).
    pub async fn open(server: SocketAddr, source: IpAddr, proto: Proto) -> anyhow::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket
            .connect(server)
            .await
            .with_context(|| format!("connecting to {server} from {source}"))?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        let sender = match proto {
            Proto::H1 => {
                let (sender, connection) = http1::handshake(io).await?;
                tokio::spawn(connection);
                Sender::H1(sender)
            }
            Proto::H2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Sender::H2(sender)
            }
        };
        Ok(Self {
            sender,
            authority: server.to_string().into(),
        })
    }

    /// Another handle on the same h2 connection (a new stream per request).
    pub fn share(&self) -> Option<Self> {
        match &self.sender {
            Sender::H1(_) => None,
            Sender::H2(sender) => Some(Self {
                sender: Sender::H2(sender.clone()),
                authority: self.authority.clone(),
            }),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        self.send_typed(method, path, headers, body.map(|b| ("application/json", b)))
            .await
    }

    /// [`Self::send`] with a body of any content type (a form, say).
    pub async fn send_typed(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Option<(&str, String)>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder().method(method);
        request = match self.sender {
            // origin-form plus Host, as browsers send HTTP/1.1
            Sender::H1(_) => request
                .uri(path)
                .header(header::HOST, self.authority.as_ref()),
            Sender::H2(_) => request.uri(format!("http://{}{path}", self.authority)),
        };
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => String::new(),
        };
        let request = request.body(Full::new(Bytes::from(body)))?;
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::H2(sender) => sender.send_request(request).await?,
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.send(Method::GET, path, &[], None).await
    }
}

/// A login attempt as its desktop knows it.
#[derive(Clone)]
pub struct Desktop {
    pub id: String,
    /// `name=value` of the bind cookie.
    pub cookie: String,
    pub version: u64,
}

/// The phone's account: a bearer token.
pub struct Phone {
    authorization: String,
}

pub async fn sign_in(conn: &mut Conn, username: &str, password: &str) -> anyhow::Result<Phone> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let answer = conn
        .send(Method::POST, paths::SESSION, &[], Some(body))
        .await?
        .expect(StatusCode::OK)?;
    let signed_in: SignedIn = answer.json()?;
    Ok(Phone {
        authorization: format!("Bearer {}", signed_in.token),
    })
}

pub async fn create(conn: &mut Conn) -> anyhow::Result<Desktop> {
    let answer = conn
        .send(Method::POST, paths::LOGINS, &[], None)
        .await?
        .expect(StatusCode::CREATED)?;
    let cookie = answer
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow!("create answered without a bind cookie"))?
        .to_owned();
    let created: LoginCreated = answer.json()?;
    Ok(Desktop {
        id: created.id,
        cookie,
        version: created.version,
    })
}

/// `GET` the attempt: at once (`wait` 0) or as a long poll.
impl Desktop {
    /// A call on this desktop's attempt at `template` (with `query`), with
    /// its bind cookie, answered with `OK`.
    async fn call(
        &self,
        conn: &mut Conn,
        method: Method,
        template: &str,
        query: &str,
    ) -> anyhow::Result<Answer> {
        let path = format!("{}{query}", paths::with_id(template, &self.id));
        conn.send(
            method,
            &path,
            &[(header::COOKIE, self.cookie.as_str())],
            None,
        )
        .await?
        .expect(StatusCode::OK)
    }
}

pub async fn poll(
    conn: &mut Conn,
    desktop: &Desktop,
    since: u64,
    wait: u32,
) -> anyhow::Result<LoginStatus> {
    let query = format!("?since={since}&wait={wait}");
    desktop
        .call(conn, Method::GET, paths::LOGIN, &query)
        .await?
        .json()
}

pub async fn redeem(conn: &mut Conn, desktop: &Desktop) -> anyhow::Result<()> {
    desktop
        .call(conn, Method::POST, paths::LOGIN_REDEEM, "")
        .await?;
    Ok(())
}

impl Phone {
    pub async fn scan(&self, conn: &mut Conn, id: &str) -> anyhow::Result<Scanned> {
        let path = paths::with_id(paths::LOGIN_SCAN, id);
        conn.send(Method::POST, &path, &self.auth(), None)
            .await?
            .expect(StatusCode::OK)?
            .json()
    }

    pub async fn approve(&self, conn: &mut Conn, id: &str, match_code: u8) -> anyhow::Result<()> {
        let path = paths::with_id(paths::LOGIN_APPROVE, id);
        let body = serde_json::json!({ "match_code": match_code }).to_string();
        conn.send(Method::POST, &path, &self.auth(), Some(body))
            .await?
            .expect(StatusCode::OK)?;
        Ok(())
    }

    fn auth(&self) -> [(header::HeaderName, &str); 1] {
        [(header::AUTHORIZATION, self.authorization.as_str())]
    }
}
