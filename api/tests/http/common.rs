//! The HTTP test harness: a real server on a random loopback port over a
//! temporary sled store with a small organisation, one API key per actor
//! the tests use, and a manual clock (starting at the wall clock's time, so
//! that Open311's "last 90 days" default sees the cases) that tests move
//! forward for deadlines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gridcase_api::{KeyStore, Server, ServerOptions};
use gridcase_engine::log::{Durability, SledLog, SledOptions};
use gridcase_engine::org::OrgFile;
use gridcase_engine::time::{Clock, ManualClock, SystemClock};
use gridcase_engine::{Engine, EngineOptions};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// The organisation file.
pub const ORG: &str = include_str!("../fixtures/org.toml");
/// Its micro-grids' boundaries: a row of 0.001° squares eastwards from
/// 33.39°N 120.16°E, one per micro-grid in code order (the first is
/// 32090200100100101 of [`G111`]).
pub const ORG_GEOJSON: &str = include_str!("../fixtures/org.geojson");

/// 新村社区第一网格 (community 320902001001, street 320902001).
pub const G111: &str = "320902001001001";
/// A grid of 五星社区 (community 320902002001, street 320902002).
pub const G211: &str = "320902002001001";
/// The resident who submits in most tests.
pub const RESIDENT: &str = "resident:li-13800000001";
/// Another resident.
pub const OTHER_RESIDENT: &str = "resident:wang-13900000002";

/// Actors with a key.
pub const ACTORS: &[&str] = &[
    "cs11",
    "cs12",
    "cs21",
    "gw111",
    "gw112",
    "ss1",
    "ss2",
    "d01a",
    "d02a",
    "d05a",
    "sup",
    "aud",
    RESIDENT,
    OTHER_RESIDENT,
];

/// A server under test.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The client.
    pub client: reqwest::Client,
    /// The server (taken by `stop`).
    pub server: Option<Server>,
    /// The engine's clock.
    pub clock: ManualClock,
    /// API keys by actor.
    pub keys: HashMap<String, String>,
    _dir: tempfile::TempDir,
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// The native error code.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

impl TestServer {
    /// Starts a server with the default options (no automatic ticks).
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tune` adjusts its options.
    pub async fn start_with(tune: impl FnOnce(&mut ServerOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(SystemClock.now());
        let options = SledOptions {
            durability: Durability::Buffered,
            cache_capacity: 8 * 1024 * 1024,
            ..SledOptions::default()
        };
        let log = SledLog::open(dir.path().join("log"), options, Arc::new(clock.clone())).unwrap();
        let engine = Engine::new(Arc::new(log), Arc::new(clock.clone()), EngineOptions::default())
            .await
            .unwrap();
        engine
            .init_org(&gridcase_engine::domain::ActorId::System, &{
                let mut org = OrgFile::parse(ORG).unwrap();
                org.attach_geojson(ORG_GEOJSON).unwrap();
                org
            })
            .await
            .unwrap();
        let store = KeyStore::load(dir.path().join("api_keys.toml")).unwrap();
        let mut keys = HashMap::new();
        for a in ACTORS {
            let (key, _) = store.create(a, "test", "2026-03-02T08:00:00Z").unwrap();
            keys.insert(a.to_string(), key);
        }
        let mut opts = ServerOptions {
            tick_interval: None,
            sse_keep_alive: Duration::from_millis(500),
            request_timeout: Duration::from_secs(10),
            ..ServerOptions::default()
        };
        tune(&mut opts);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server =
            Server::start(Arc::new(engine), Arc::new(store), opts, listener).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        TestServer { base, client, server: Some(server), clock, keys, _dir: dir }
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// The key of an actor.
    pub fn key(&self, actor: &str) -> &str {
        self.keys.get(actor).unwrap_or_else(|| panic!("no key for {actor}"))
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Reply { status, headers, text }
    }

    /// GET as `actor` (None: no key).
    pub async fn get(&self, actor: Option<&str>, path: &str) -> Reply {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(a) = actor {
            req = req.bearer_auth(self.key(a));
        }
        self.send(req).await
    }

    /// POST a JSON body as `actor` with extra headers.
    pub async fn post(
        &self,
        actor: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key(actor))
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// POST a command on a case.
    pub async fn command(&self, actor: &str, case: &str, command: &str, body: Value) -> Reply {
        self.post(actor, &format!("/api/v1/cases/{case}/{command}"), body, &[]).await
    }

    /// POST a command that must succeed; returns the response body.
    pub async fn ok(&self, actor: &str, case: &str, command: &str, body: Value) -> Value {
        let r = self.command(actor, case, command, body).await;
        assert_eq!(r.status, 200, "{actor} {command} on {case}: {}", r.text);
        r.json()
    }

    /// Submits a street-light case in grid G111 as the resident, with contact details.
    pub async fn submit(&self, actor: &str, location: &str) -> String {
        let r = self
            .post(
                actor,
                "/api/v1/cases",
                json!({"kind": "complaint", "category": "street_light", "description": "路灯不亮", "location": location,
                       "contact": {"name": "李四", "phone": "13800000001"}}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "submit: {}", r.text);
        r.json()["case"]["id"].as_str().unwrap().to_string()
    }

    /// (head position, head hash) of the log.
    pub async fn head(&self) -> (u64, String) {
        let s = self.get(Some("sup"), "/api/v1/stats").await;
        assert_eq!(s.status, 200, "{}", s.text);
        let v = s.json();
        (v["head_position"].as_u64().unwrap(), v["head_hash"].as_str().unwrap().to_string())
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }
}
