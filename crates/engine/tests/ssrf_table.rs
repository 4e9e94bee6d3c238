//! The SSRF guard against a table of hostile destinations, through the real delivery client:
//! every reserved range, IPv4-mapped and -compatible IPv6, decimal, octal, hex and short IPv4
//! literals, `localhost`, names that resolve to internal addresses through a resolver the test
//! controls, a redirect to an internal address, and proxy variables in the environment. Each
//! must be refused without a connection to it; the stand-in "internal" services here listen on
//! 127.0.0.2 and count every connection they get.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use herald_engine::delivery::http::{Egress, ErrorClass, Outgoing, Sender};
use herald_engine::delivery::ssrf::{AllowList, NameLookup};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A TCP server that records each request's first line and answers with `answer`.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start(ip: &str, answer: String) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("binding");
        let r = Self {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            lines: Arc::default(),
        };
        let rec = r.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                rec.connections.fetch_add(1, Ordering::SeqCst);
                let rec = rec.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf);
                    let first = text.lines().next().unwrap_or("").to_string();
                    rec.lines.lock().unwrap().push(first);
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        r
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn ok_answer() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_string()
}

/// Names resolved from a table, as a DNS server the test controls would.
struct Table(HashMap<&'static str, Vec<IpAddr>>);

impl NameLookup for Table {
    fn lookup(
        &self,
        host: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
    {
        let found = self.0.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

fn table(entries: &[(&'static str, &[&str])]) -> Arc<Table> {
    Arc::new(Table(
        entries
            .iter()
            .map(|(name, ips)| (*name, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
            .collect(),
    ))
}

/// Every test runs with the proxy variables pointing at one recorder, which must never be
/// used: herald takes a proxy only from its own configuration. The recorder runs on a thread
/// of its own, since each test has its own runtime.
async fn environment_proxy() -> Recorder {
    static PROXY: OnceLock<Recorder> = OnceLock::new();
    PROXY
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    tx.send(Recorder::start("127.0.0.1", ok_answer()).await)
                        .unwrap();
                    std::future::pending::<()>().await
                })
            });
            let proxy = rx.recv().unwrap();
            for var in [
                "HTTP_PROXY",
                "http_proxy",
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
                "all_proxy",
            ] {
                std::env::set_var(var, format!("http://{}", proxy.addr));
            }
            std::env::remove_var("NO_PROXY");
            std::env::remove_var("no_proxy");
            proxy
        })
        .clone()
}

fn post(url: &str) -> Outgoing {
    Outgoing {
        url: url.to_string(),
        headers: vec![(
            reqwest::header::CONTENT_TYPE,
            "application/json".to_string(),
        )],
        body: b"{}".to_vec(),
    }
}

fn egress(allow: &str, lookup: Arc<Table>) -> Egress {
    Egress {
        allow: AllowList::parse(allow).unwrap(),
        proxy: None,
        lookup,
    }
}

#[tokio::test]
async fn internal_destinations_in_every_spelling_are_refused_without_a_connection() {
    let env_proxy = environment_proxy().await;
    let internal = Recorder::start("127.0.0.2", ok_answer()).await;
    let p = internal.addr.port();
    let names = table(&[
        ("internal.example", &["127.0.0.2"]),
        ("metadata.example", &["169.254.169.254"]),
        ("private.example", &["10.0.0.5", "192.168.1.5"]),
        ("mapped.example", &["::ffff:127.0.0.2"]),
        ("v6-local.example", &["fd00::1", "::1"]),
        ("localhost", &["127.0.0.1", "::1"]),
        ("localhost.", &["127.0.0.1"]),
    ]);
    let sender = Sender::new(&egress("", names), Duration::from_secs(5));
    let hostile = [
        // Loopback, in every spelling a URL parser turns into 127.0.0.2.
        format!("http://127.0.0.2:{p}/"),
        format!("http://2130706434:{p}/"),
        format!("http://0x7f000002:{p}/"),
        format!("http://0177.0.0.2:{p}/"),
        format!("http://0177.0.0.02:{p}/"),
        format!("http://127.2:{p}/"),
        format!("http://127.0.2:{p}/"),
        format!("http://017700000002:{p}/"),
        format!("http://[::ffff:127.0.0.2]:{p}/"),
        format!("http://[::ffff:7f00:2]:{p}/"),
        format!("http://[::127.0.0.2]:{p}/"),
        format!("http://[::1]:{p}/"),
        "http://0/".to_string(),
        "http://0.0.0.0/".to_string(),
        "http://[::]/".to_string(),
        // Every other reserved range.
        "http://10.0.0.1/".to_string(),
        "http://10.1/".to_string(),
        "http://172.16.0.1/".to_string(),
        "http://172.31.255.255/".to_string(),
        "http://192.168.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://100.64.0.1/".to_string(),
        "http://192.0.0.8/".to_string(),
        "http://192.0.2.1/".to_string(),
        "http://198.18.0.1/".to_string(),
        "http://198.51.100.1/".to_string(),
        "http://203.0.113.1/".to_string(),
        "http://224.0.0.1/".to_string(),
        "http://240.0.0.1/".to_string(),
        "http://255.255.255.255/".to_string(),
        "http://[fe80::1]/".to_string(),
        "http://[fc00::1]/".to_string(),
        "http://[fd12:3456::1]/".to_string(),
        "http://[ff02::1]/".to_string(),
        "http://[2001:db8::1]/".to_string(),
        "http://[64:ff9b::a00:1]/".to_string(),
        "http://[2002:a00:1::]/".to_string(),
        "http://[::ffff:10.0.0.1]/".to_string(),
        "http://[::ffff:169.254.169.254]/".to_string(),
        // Names: localhost, and names whose answers are internal.
        format!("http://localhost:{p}/"),
        format!("http://LOCALHOST:{p}/"),
        format!("http://localhost.:{p}/"),
        format!("http://internal.example:{p}/"),
        format!("https://internal.example:{p}/"),
        "http://metadata.example/latest/meta-data/".to_string(),
        "http://private.example/".to_string(),
        format!("http://mapped.example:{p}/"),
        format!("http://v6-local.example:{p}/"),
    ];
    for url in &hostile {
        let seen = sender.send(post(url)).await;
        assert_eq!(
            seen.error_class,
            Some(ErrorClass::Blocked),
            "{url}: {:?}",
            seen.error
        );
        assert_eq!(seen.status, None, "{url}");
        let why = seen.error.unwrap_or_default();
        assert!(why.contains("not allowed"), "{url}: {why}");
        assert!(why.contains("HERALD_ALLOWED_DESTINATIONS"), "{url}: {why}");
        // A refused name is named as given, never with what it resolved to.
        if url.contains("example") || url.to_lowercase().contains("localhost") {
            for resolved in ["127.0.0", "169.254.169.254", "10.0.0.5", "fd00::1", "::1"] {
                assert!(!why.contains(resolved), "{url}: {why} reveals {resolved}");
            }
        }
    }
    assert_eq!(internal.connections(), 0, "an internal service was reached");
    assert_eq!(
        env_proxy.connections(),
        0,
        "the environment's proxy was used"
    );
}

#[tokio::test]
async fn a_name_with_allowed_and_refused_addresses_reaches_only_the_allowed_ones() {
    let env_proxy = environment_proxy().await;
    let public = Recorder::start("127.0.0.1", ok_answer()).await;
    let names = table(&[("mixed.example", &["127.0.0.2", "127.0.0.1"])]);
    // 127.0.0.1 stands for a public address: allowed; 127.0.0.2 stays internal.
    let sender = Sender::new(&egress("127.0.0.1/32", names), Duration::from_secs(5));
    let seen = sender
        .send(post(&format!(
            "http://mixed.example:{}/hook",
            public.addr.port()
        )))
        .await;
    assert_eq!(seen.status, Some(200), "{:?}", seen.error);
    assert_eq!(public.connections(), 1);
    assert_eq!(env_proxy.connections(), 0);
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let env_proxy = environment_proxy().await;
    let internal = Recorder::start("127.0.0.2", ok_answer()).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{}/admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        internal.addr.port()
    );
    let public = Recorder::start("127.0.0.1", redirect).await;
    let sender = Sender::new(&egress("127.0.0.1/32", table(&[])), Duration::from_secs(5));
    let seen = sender
        .send(post(&format!(
            "http://127.0.0.1:{}/hook",
            public.addr.port()
        )))
        .await;
    assert_eq!(seen.status, Some(302));
    assert_eq!(seen.error_class, Some(ErrorClass::Redirect));
    assert_eq!(public.connections(), 1);
    assert_eq!(internal.connections(), 0, "the redirect was followed");
    assert_eq!(env_proxy.connections(), 0);
}

#[tokio::test]
async fn a_configured_proxy_gets_only_destinations_the_guard_allows() {
    let env_proxy = environment_proxy().await;
    let proxy = Recorder::start("127.0.0.1", ok_answer()).await;
    let names = table(&[
        ("internal.example", &["10.0.0.5"]),
        ("half.example", &["93.184.216.34", "10.0.0.5"]),
        ("public.example", &["93.184.216.34"]),
    ]);
    let sender = Sender::new(
        &Egress {
            allow: AllowList::default(),
            proxy: Some(format!("http://{}", proxy.addr).parse().unwrap()),
            lookup: names,
        },
        Duration::from_secs(5),
    );
    for url in [
        "http://internal.example/hook",
        // The proxy may pick any address of a name, so all must be allowed.
        "http://half.example/hook",
        "http://localhost/viaproxy",
        "http://127.0.0.1/viaproxy",
        "http://[::1]/viaproxy",
        "http://unknown.example/hook",
    ] {
        let seen = sender.send(post(url)).await;
        assert_eq!(
            seen.error_class,
            Some(ErrorClass::Blocked),
            "{url}: {:?}",
            seen.error
        );
    }
    assert_eq!(
        proxy.connections(),
        0,
        "a refused destination reached the proxy"
    );
    // An allowed destination goes through the proxy (which answers for it here: nothing
    // leaves the machine).
    let seen = sender.send(post("http://public.example/hook")).await;
    assert_eq!(seen.status, Some(200), "{:?}", seen.error);
    assert_eq!(
        proxy.lines.lock().unwrap().as_slice(),
        ["POST http://public.example/hook HTTP/1.1"]
    );
    assert_eq!(env_proxy.connections(), 0);
}
