//! Basic auth for leakwatch's own endpoints (the web config's user table of bcrypt
//! hashes, checked in constant work per attempt, one at a time, in a bounded queue
//! that turns the excess away at once) and the extra response headers.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;

/// The realm of the `WWW-Authenticate` challenge.
pub const REALM: &str = "leakwatch";

/// Remembered good (user, password) pairs, so a scrape every 15s does not pay a bcrypt
/// computation each time (exporter-toolkit keeps the same kind of cache). Cleared
/// when full rather than evicted one by one: a full cache means someone is cycling
/// credentials, and re-verifying the legitimate one costs a single bcrypt.
const AUTH_CACHE_MAX: usize = 256;

/// bcrypt checks of credentials not known good that may be running or waiting at
/// once. Beyond them a request is answered 429 at once (and its connection closed, so
/// the client queues again behind everyone else for a connection): before, 600 clients
/// with a wrong password waited on the bcrypt turn as requests in flight, held every
/// connection slot, and Prometheus, its good credentials cached, got 0 of 7 scrapes
/// through in 40 s. Waiting here lasts at most this many bcrypt computations.
pub const BCRYPT_QUEUE: usize = 8;

/// What a check of credentials found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Good,
    Bad,
    /// Not checked: [`BCRYPT_QUEUE`] checks are already running or waiting.
    Busy,
}

/// Checks `Authorization: Basic` against bcrypt hashes. Every failed attempt costs
/// one bcrypt computation whether or not the user exists (an unknown user is checked
/// against a dummy hash of the same cost), so timing does not reveal user names.
struct UserTable {
    users: Arc<BTreeMap<String, String>>,
    dummy_hash: String,
    /// (user, password) pairs verified before; see [`AUTH_CACHE_MAX`].
    good: Mutex<HashSet<(String, Vec<u8>)>>,
    /// One bcrypt at a time, as exporter-toolkit does: a flood of bad passwords costs
    /// one core, not all of them. Held by the computation itself, so a client that
    /// hangs up mid-check does not let a second one start.
    bcrypt_turn: Arc<tokio::sync::Mutex<()>>,
    /// Places in the line for the turn, the running check included ([`BCRYPT_QUEUE`]).
    bcrypt_queue: Arc<tokio::sync::Semaphore>,
}

impl UserTable {
    fn new(users: Arc<BTreeMap<String, String>>) -> UserTable {
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy_hash = bcrypt::hash_with_salt(b"leakwatch-no-such-user", cost, [7u8; 16])
            .map(|h| h.to_string())
            .unwrap_or_default();
        UserTable {
            users,
            dummy_hash,
            good: Mutex::new(HashSet::new()),
            bcrypt_turn: Arc::new(tokio::sync::Mutex::new(())),
            bcrypt_queue: Arc::new(tokio::sync::Semaphore::new(BCRYPT_QUEUE)),
        }
    }

    /// Good at once for cached credentials; else a bcrypt check in the queue, or
    /// [`Checked::Busy`] at once when the queue is full.
    async fn verify(&self, user: &str, password: &[u8]) -> Checked {
        let entry = (user.to_string(), password.to_vec());
        if self
            .good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&entry)
        {
            return Checked::Good;
        }
        let Ok(place) = self.bcrypt_queue.clone().try_acquire_owned() else {
            return Checked::Busy;
        };
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let turn = self.bcrypt_turn.clone().lock_owned().await;
        let pw = password.to_vec();
        let matches = tokio::task::spawn_blocking(move || {
            let _held = (place, turn);
            bcrypt::verify(pw, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = known && matches;
        if !ok {
            return Checked::Bad;
        }
        {
            let mut good = self.good.lock().unwrap_or_else(|e| e.into_inner());
            if good.len() >= AUTH_CACHE_MAX {
                good.clear();
            }
            good.insert(entry);
        }
        Checked::Good
    }
}

/// `Authorization: Basic base64(user:password)` -> (user, password). `None` for
/// anything else; never panics on hostile input.
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let s = value.to_str().ok()?;
    let (scheme, rest) = s.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    let user = String::from_utf8(user.to_vec()).ok()?;
    Some((user, password.get(1..)?.to_vec()))
}

/// Standard base64 (RFC 4648 §4), the alphabet of RFC 7617 credentials; padding
/// optional, as clients differ.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s).ok()
}

fn unauthorized() -> Response {
    let mut resp = Response::new(Body::from("Unauthorized\n"));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    let challenge = format!("Basic realm=\"{REALM}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The answer when [`BCRYPT_QUEUE`] checks are already running or waiting: 429 at
/// once, and the connection closed.
fn busy() -> Response {
    let mut resp = Response::new(Body::from(
        "Too many password checks in progress; try again later\n",
    ));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = resp.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn require_auth(State(auth): State<Arc<UserTable>>, req: Request, next: Next) -> Response {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(parse_basic);
    let checked = match creds {
        Some((user, password)) => auth.verify(&user, &password).await,
        None => Checked::Bad,
    };
    match checked {
        Checked::Good => next.run(req).await,
        // Neither the user name nor the password is logged: a password typed into
        // the user field would end up in the log.
        Checked::Bad => {
            tracing::debug!(path = %req.uri().path(), "basic auth failed");
            unauthorized()
        }
        Checked::Busy => {
            tracing::debug!(path = %req.uri().path(), "basic auth not checked: too many checks in progress");
            busy()
        }
    }
}

async fn add_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    for (k, v) in headers.iter() {
        if !resp.headers().contains_key(k) {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

/// `app` with basic auth for `users` (name -> bcrypt hash; none: no auth) and the extra
/// `headers` applied to every route.
pub fn protect(
    app: axum::Router,
    users: &Arc<BTreeMap<String, String>>,
    headers: &[(HeaderName, HeaderValue)],
) -> axum::Router {
    let mut app = app;
    if !users.is_empty() {
        let auth = Arc::new(UserTable::new(users.clone()));
        app = app.layer(middleware::from_fn_with_state(auth, require_auth));
    }
    if !headers.is_empty() {
        // Outermost, so the 401 carries the headers too (as in exporter-toolkit).
        app = app.layer(middleware::from_fn_with_state(
            Arc::new(headers.to_vec()),
            add_headers,
        ));
    }
    app
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        let cases: [(&str, Option<&[u8]>); 8] = [
            ("", Some(b"")),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YWJj", Some(b"abc")),
            ("YWxpY2U6c2VjcmV0", Some(b"alice:secret")),
            ("YQ", Some(b"a")),
            ("Y", None),
            ("YW*j", None),
        ];
        for (input, want) in cases {
            assert_eq!(base64_decode(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn parse_basic_table() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a [u8])>);
        let cases: [Case; 6] = [
            ("Basic YWxpY2U6c2VjcmV0", Some(("alice", b"secret"))),
            ("basic YWxpY2U6c2VjcmV0", Some(("alice", b"secret"))),
            // "alice:a:b" — the password may contain colons.
            ("Basic YWxpY2U6YTpi", Some(("alice", b"a:b"))),
            ("Basic YWxpY2U=", None), // no colon
            ("Bearer YWxpY2U6c2VjcmV0", None),
            ("Basic !!!", None),
        ];
        for (input, want) in cases {
            let got = parse_basic(&HeaderValue::from_str(input).unwrap());
            let got_ref = got.as_ref().map(|(u, p)| (u.as_str(), p.as_slice()));
            assert_eq!(got_ref, want, "{input:?}");
        }
    }
}
