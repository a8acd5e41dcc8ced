//! Who gets in: origins at the upgrade, failed hellos limited per address
//! across connections (the address behind a trusted proxy), and the default
//! secret on a public address.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use support::{error_code, result, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use wslink_core::protocol::codes;
use wslink_core::{Generation, Message};
use wslink_server::{
    conformance, AllowedOrigins, AuthThrottle, Limits, Server, ServerError, TrustedProxies,
};

const SECRET: &str = "wslink-secret";
const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const NEIGHBOUR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn start(server: &Server) -> (String, std::net::SocketAddr) {
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(listener.run());
    (format!("ws://{addr}/ws"), addr)
}

/// Sends an upgrade request with these extra headers; returns the status
/// line and the headers of the answer.
async fn upgrade(addr: std::net::SocketAddr, extra: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn origins_outside_the_list_get_403_and_non_browsers_pass() {
    let origins = AllowedOrigins::same_origin()
        .with("https://app.example.org")
        .unwrap();
    let server = Server::builder().allowed_origins(origins).build();
    let (_, addr) = start(&server).await;

    let own = format!("Origin: http://{addr}\r\n");
    assert!(upgrade(addr, &own).await.starts_with("HTTP/1.1 101"));
    assert!(upgrade(addr, "Origin: https://app.example.org\r\n")
        .await
        .starts_with("HTTP/1.1 101"));
    // No Origin: a script, a native app, the CLI.
    assert!(upgrade(addr, "").await.starts_with("HTTP/1.1 101"));
    for foreign in [
        "Origin: https://evil.example\r\n",
        "Origin: http://app.example.org\r\n", // the scheme differs
        "Origin: null\r\n",                   // a file:// page
    ] {
        let answer = upgrade(addr, foreign).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{foreign}: {answer}");
    }
    assert_eq!(server.metrics().connections_total, 3);

    // The default lets every page in, as Kitware's server does.
    let open = Server::builder().build();
    let (_, addr) = start(&open).await;
    assert!(upgrade(addr, "Origin: https://evil.example\r\n")
        .await
        .starts_with("HTTP/1.1 101"));
}

/// Connects from `from` and says hello with `secret`; `Err` is the
/// upgrade's refusal.
async fn attempt(url: &str, from: IpAddr, secret: &str) -> Result<Message, tungstenite::Error> {
    let mut peer = Peer::connect_from(url, Generation::V2, from).await?;
    Ok(peer.hello(secret).await)
}

#[tokio::test]
async fn a_thousand_wrong_secrets_from_one_address_ban_it_and_only_it() {
    let limits = Limits {
        auth_throttle: AuthThrottle {
            max_failures: 20,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        },
        ..Limits::default()
    };
    let server = conformance::builder().limits(limits).build();
    let (url, _) = start(&server).await;

    let (mut refused_hellos, mut refused_upgrades, mut first_429) = (0, 0, None);
    for i in 0..1000 {
        match attempt(&url, HOME, "guess").await {
            Ok(reply) => {
                assert_eq!(
                    error_code(&reply),
                    codes::AUTHENTICATION_ERROR,
                    "attempt {i}"
                );
                refused_hellos += 1;
            }
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429, "attempt {i}");
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=300).contains(&retry), "Retry-After {retry}");
                first_429.get_or_insert(i);
                refused_upgrades += 1;
            }
            Err(e) => panic!("attempt {i}: {e}"),
        }
    }
    println!("{refused_hellos} hellos refused, then {refused_upgrades} upgrades refused");
    // Exactly the bound's worth of guesses, then no connection at all.
    assert_eq!(refused_hellos, 20);
    assert_eq!(first_429, Some(20));
    assert_eq!(refused_upgrades, 980);
    // Banned means banned: the right secret from there does not help now.
    assert!(matches!(
        attempt(&url, HOME, SECRET).await,
        Err(tungstenite::Error::Http(r)) if r.status() == 429
    ));

    // A client on another address is not affected.
    let mut healthy = Peer::connect_from(&url, Generation::V2, NEIGHBOUR)
        .await
        .unwrap();
    result(healthy.hello(SECRET).await);
    let sum = healthy
        .call("conformance.add", vec![2.into(), 3.into()])
        .await;
    assert_eq!(result(sum), 5.into());
}

#[tokio::test]
async fn the_ban_reaches_open_connections_ends_and_success_forgives() {
    let limits = Limits {
        auth_throttle: AuthThrottle {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_millis(400),
        },
        // Per connection, more guesses than the address has.
        max_auth_failures: 10,
        ..Limits::default()
    };
    let server = Server::builder().limits(limits).build();
    let (url, _) = start(&server).await;

    // Two mistakes, then the right secret: failures are forgiven.
    for _ in 0..2 {
        assert_eq!(
            error_code(&attempt(&url, HOME, "typo").await.unwrap()),
            codes::AUTHENTICATION_ERROR
        );
    }
    result(attempt(&url, HOME, SECRET).await.unwrap());
    for _ in 0..2 {
        attempt(&url, HOME, "typo").await.unwrap();
    }
    result(attempt(&url, HOME, SECRET).await.unwrap());

    // A connection opened before the ban gets no more guesses after it.
    let mut early = Peer::connect_from(&url, Generation::V2, HOME)
        .await
        .unwrap();
    for _ in 0..3 {
        attempt(&url, HOME, "guess").await.unwrap();
    }
    let refused = early.hello(SECRET).await;
    assert_eq!(error_code(&refused), codes::AUTHENTICATION_ERROR);
    let closed = early.recv().await.unwrap_err();
    assert!(closed.starts_with("1008"), "{closed}");

    // The ban ends on time.
    let banned_at = Instant::now();
    while attempt(&url, HOME, SECRET).await.is_err() {
        assert!(
            banned_at.elapsed() < Duration::from_secs(3),
            "the ban never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(banned_at.elapsed() >= Duration::from_millis(200));
}

/// Connects from `from` with `X-Forwarded-For: forwarded` and says hello.
async fn attempt_via(
    url: &str,
    from: IpAddr,
    forwarded: &str,
    secret: &str,
) -> Result<Message, tungstenite::Error> {
    let mut peer =
        Peer::connect_from_with(url, Generation::V2, from, &[("x-forwarded-for", forwarded)])
            .await?;
    Ok(peer.hello(secret).await)
}

fn is_429(outcome: &Result<Message, tungstenite::Error>) -> bool {
    matches!(outcome, Err(tungstenite::Error::Http(r)) if r.status() == 429)
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_is_throttled_alone() {
    let limits = Limits {
        auth_throttle: AuthThrottle {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        },
        ..Limits::default()
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    // HOME plays the proxy; NEIGHBOUR is a client reaching the server
    // directly.
    let server = Server::builder()
        .limits(limits)
        .trusted_proxies(HOME.to_string().parse::<TrustedProxies>().unwrap())
        .on_connect(move |conn| log.lock().unwrap().push(conn.client_ip()))
        .build();
    let (url, _) = start(&server).await;
    let (guesser, user) = ("203.0.113.1", "203.0.113.2");

    for _ in 0..3 {
        let reply = attempt_via(&url, HOME, guesser, "guess").await.unwrap();
        assert_eq!(error_code(&reply), codes::AUTHENTICATION_ERROR);
    }
    assert!(is_429(&attempt_via(&url, HOME, guesser, SECRET).await));
    // The same proxy carries another user, who is not banned.
    result(attempt_via(&url, HOME, user, SECRET).await.unwrap());
    // The guesser cannot pose as the user: the proxy appends what it saw,
    // and only the right-most untrusted entry counts.
    let forged = format!("{user}, {guesser}");
    assert!(is_429(&attempt_via(&url, HOME, &forged, SECRET).await));
    // Through the proxy without the header: the proxy's own address, which
    // is not banned either.
    result(attempt(&url, HOME, SECRET).await.unwrap());
    {
        let seen = seen.lock().unwrap();
        let user_ip: IpAddr = user.parse().unwrap();
        let guesser_ip: IpAddr = guesser.parse().unwrap();
        assert_eq!(
            seen.as_slice(),
            [
                Some(guesser_ip),
                Some(guesser_ip),
                Some(guesser_ip),
                Some(user_ip),
                Some(HOME)
            ],
            "ConnectionInfo::client_ip"
        );
    }

    // From a peer that is not trusted the header means nothing: naming the
    // banned address does not get NEIGHBOUR refused...
    result(attempt_via(&url, NEIGHBOUR, guesser, SECRET).await.unwrap());
    // ...and naming a fresh address on every try does not get it more
    // guesses than the limit.
    for (i, fake) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .into_iter()
        .enumerate()
    {
        let reply = attempt_via(&url, NEIGHBOUR, fake, "guess").await.unwrap();
        assert_eq!(error_code(&reply), codes::AUTHENTICATION_ERROR, "try {i}");
    }
    assert!(is_429(
        &attempt_via(&url, NEIGHBOUR, "198.51.100.4", SECRET).await
    ));
    assert!(is_429(&attempt_via(&url, NEIGHBOUR, user, SECRET).await));
    // The proxy's users are unaffected by NEIGHBOUR's ban.
    result(attempt_via(&url, HOME, user, SECRET).await.unwrap());
}

#[tokio::test]
async fn without_trusted_proxies_the_header_is_ignored() {
    let limits = Limits {
        auth_throttle: AuthThrottle {
            max_failures: 2,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        },
        ..Limits::default()
    };
    // The default: nobody is trusted, loopback included.
    let server = Server::builder().limits(limits).build();
    assert!(server.config().trusted_proxies.is_empty());
    let (url, _) = start(&server).await;
    attempt_via(&url, HOME, "203.0.113.1", "guess")
        .await
        .unwrap();
    attempt_via(&url, HOME, "203.0.113.2", "guess")
        .await
        .unwrap();
    assert!(is_429(
        &attempt_via(&url, HOME, "203.0.113.3", SECRET).await
    ));
}

#[tokio::test]
async fn the_default_secret_on_a_public_address_warns_or_is_refused() {
    let lenient = Server::builder().build();
    assert!(
        lenient.bind("0.0.0.0:0").await.is_ok(),
        "the default only warns"
    );

    let strict = Server::builder().refuse_public_default_secret(true).build();
    let err = strict.bind("0.0.0.0:0").await.err().expect("refused");
    assert!(matches!(
        err,
        ServerError::DefaultSecretOnPublicAddress { .. }
    ));
    assert!(err.to_string().contains("--authKey-file"), "{err}");
    // Loopback, or a secret of one's own, is fine even when strict.
    assert!(strict.bind("127.0.0.1:0").await.is_ok());
    let own = Server::builder()
        .refuse_public_default_secret(true)
        .secret("s3cret-of-our-own")
        .build();
    assert!(own.bind("0.0.0.0:0").await.is_ok());
}
