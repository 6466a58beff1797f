//! Authentication: who sent a request.
//!
//! As kube-apiserver does it: a client certificate signed by the client CA
//! names the user (CN) and its groups (O); otherwise a bearer token from
//! the static token file does, or a bearer token that is a JWT is a service
//! account token ([`crate::service_account_token`]); a request with neither
//! is anonymous, and an
//! anonymous request reaches only the health and version endpoints. A
//! request that shows a token the server does not know is refused, never
//! taken as anonymous. Connections on the plain port (no TLS configured,
//! or the loopback-only `--insecure-port`) are trusted as kube's insecure
//! port was: user `system:unsecured` in `system:masters`.

use crate::registry::Registry;
use crate::service_account_token::ServiceAccountTokens;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use rkube_api::ApiError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tracing::debug;

/// The authenticated user of a request, put in its extensions for the
/// handlers (and the authorizer) to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `kubernetes-admin`, `system:node:n1`, `system:anonymous`, ...
    pub name: String,
    /// The user's uid, when the authenticator knows one.
    pub uid: String,
    /// `system:masters`, `system:nodes`, `system:authenticated`, ...
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user of the plain (trusted) port.
    pub fn unsecured() -> UserInfo {
        UserInfo {
            name: "system:unsecured".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// The user of a request without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo { name: "system:anonymous".into(), uid: String::new(), groups: vec!["system:unauthenticated".into()] }
    }

    fn authenticated(name: String, uid: String, mut groups: Vec<String>) -> UserInfo {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo { name, uid, groups }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
}

/// What the connection tells about its client, set per connection by
/// [`crate::serve`].
#[derive(Debug, Clone)]
pub enum Peer {
    /// A plain-HTTP connection: trusted.
    Plain,
    /// A TLS connection, with the user its verified client certificate names.
    Tls(Option<Arc<UserInfo>>),
}

/// The user a verified client certificate names: CN is the user, each O a
/// group. None if the certificate cannot be read or has no CN.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (name, groups) = rkube_client::tls::certificate_subject(der)?;
    Some(UserInfo::authenticated(name, String::new(), groups))
}

/// The static token file (`--token-auth-file`): CSV lines
/// `token,user,uid,"group1,group2"` as kube-apiserver reads them.
#[derive(Default)]
pub struct Tokens {
    users: HashMap<String, Arc<UserInfo>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("count", &self.users.len()).finish()
    }
}

impl Tokens {
    /// Reads a token file; a bad line is an error naming it (never its token).
    pub fn from_file(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| anyhow::anyhow!("the token file {}: {e}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = csv_fields(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            if fields.len() < 3 {
                return Err(format!("line {}: want token,user,uid[,\"groups\"], found {} fields", i + 1, fields.len()));
            }
            let (token, name) = (fields[0].clone(), fields[1].clone());
            if token.is_empty() || name.is_empty() {
                return Err(format!("line {}: the token and the user name must not be empty", i + 1));
            }
            let groups = fields
                .get(3)
                .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            if users.insert(token, Arc::new(UserInfo::authenticated(name, fields[2].clone(), groups))).is_some() {
                return Err(format!("line {}: a token is listed twice", i + 1));
            }
        }
        Ok(Tokens { users })
    }
}

/// The fields of one CSV line (double quotes around a field, `""` inside).
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed"),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("text after a quoted field");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field.trim().to_string());
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(fields),
        }
    }
}

/// Paths an anonymous request may reach (kube's system:public-info-viewer).
fn public(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Decides who a request comes from.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Tokens,
    service_accounts: Option<(Arc<ServiceAccountTokens>, Arc<Registry>)>,
}

/// Whether a bearer token has a JWT's shape (three dot-separated parts).
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl Authenticator {
    /// With the static tokens.
    pub fn new(tokens: Tokens) -> Authenticator {
        Authenticator { tokens, service_accounts: None }
    }

    /// Also with service account tokens, checked against `registry`.
    pub fn with_service_account_tokens(mut self, tokens: Option<(Arc<ServiceAccountTokens>, Arc<Registry>)>) -> Self {
        self.service_accounts = tokens;
        self
    }

    /// The request's user, or 401. `authorization` is the header's value.
    pub async fn authenticate(
        &self,
        peer: &Peer,
        authorization: Option<&[u8]>,
        path: &str,
    ) -> Result<UserInfo, ApiError> {
        let cert_user = match peer {
            Peer::Plain => return Ok(UserInfo::unsecured()),
            Peer::Tls(user) => user,
        };
        if let Some(user) = cert_user {
            return Ok(UserInfo::clone(user));
        }
        if let Some(value) = authorization {
            // A malformed header or an unknown token is a failed login, not anonymity.
            let token = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(ApiError::unauthorized)?;
            if let Some(user) = self.tokens.users.get(token) {
                return Ok(UserInfo::clone(user));
            }
            return match &self.service_accounts {
                Some((tokens, registry)) if looks_like_jwt(token) => {
                    tokens.authenticate(registry, token).await.map_err(|e| {
                        // Why, for the operator; never the token.
                        debug!(reason = %e, "service account token refused");
                        ApiError::unauthorized()
                    })
                }
                _ => Err(ApiError::unauthorized()),
            };
        }
        if public(path) { Ok(UserInfo::anonymous()) } else { Err(ApiError::unauthorized()) }
    }
}

/// Middleware: authenticates each request and puts its [`UserInfo`] in the
/// request's extensions; refuses with 401 (gRPC: Unauthenticated).
pub async fn authenticate(State(authn): State<Arc<Authenticator>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().cloned().unwrap_or(Peer::Tls(None));
    let authorization = req.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    match authn.authenticate(&peer, authorization, req.uri().path()).await {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(e) => {
            let grpc = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            if grpc {
                tonic::Status::from(e).into_http::<axum::body::Body>().into_response()
            } else {
                crate::rest::error_response(&e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_user(name: &str, groups: &[&str]) -> Peer {
        Peer::Tls(Some(Arc::new(UserInfo::authenticated(
            name.into(),
            String::new(),
            groups.iter().map(|g| g.to_string()).collect(),
        ))))
    }

    #[tokio::test]
    async fn token_file_lines_give_users_and_bad_lines_are_named() {
        let tokens = Tokens::parse("# comment\nabc,alice,1001,\"dev,ops\"\n\ndef, bob ,1002\n").expect("a valid file");
        let authn = Authenticator::new(tokens);
        let alice = authn.authenticate(&Peer::Tls(None), Some(b"Bearer abc"), "/api").await.expect("alice");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        let bob = authn.authenticate(&Peer::Tls(None), Some(b"Bearer def"), "/api").await.expect("bob");
        assert_eq!((bob.name.as_str(), bob.groups.len()), ("bob", 1));

        let e = Tokens::parse("abc,alice\n").expect_err("too few fields");
        assert!(e.contains("line 1") && e.contains("2 fields"), "{e}");
        let e = Tokens::parse("a,b,c\n\"x,y,z\n").expect_err("unclosed quote");
        assert!(e.starts_with("line 2"), "{e}");
        let e = Tokens::parse("a,b,c\na,d,e\n").expect_err("duplicate");
        assert!(e.contains("twice") && !e.contains("a,"), "no token in the message: {e}");
    }

    #[tokio::test]
    async fn anonymous_reaches_only_public_paths_and_a_wrong_token_is_never_anonymous() {
        let authn = Authenticator::new(Tokens::parse("good,u,1\n").expect("valid"));
        let anon = authn.authenticate(&Peer::Tls(None), None, "/healthz").await.expect("public");
        assert!(anon.is_anonymous());
        authn.authenticate(&Peer::Tls(None), None, "/version").await.expect("public");
        let e = authn.authenticate(&Peer::Tls(None), None, "/api/v1/secrets").await.expect_err("not public");
        assert_eq!((e.code(), e.message.as_str()), (401, "Unauthorized"));
        for header in [&b"Bearer bad"[..], b"Basic dTpw", b"Bearer ", b"\xff\xfe"] {
            let e = authn.authenticate(&Peer::Tls(None), Some(header), "/healthz").await.expect_err("bad credentials");
            assert_eq!(e.code(), 401);
        }
        assert_eq!(authn.authenticate(&Peer::Plain, None, "/api").await.expect("trusted"), UserInfo::unsecured());
        let node =
            authn.authenticate(&tls_user("system:node:n1", &["system:nodes"]), Some(b"Bearer bad"), "/api").await;
        assert_eq!(node.expect("the certificate decides").name, "system:node:n1");
    }

    #[test]
    fn csv_quotes_and_escapes() {
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\",").expect("valid"), ["a", "b,c", "d\"e", ""]);
        assert!(csv_fields("\"a\"b").is_err());
    }
}
