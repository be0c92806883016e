//! Hostile and careless clients against the real binary: connections that
//! never finish a request head (plain and over TLS), idle keep-alives, more
//! connections than file descriptors, a flood of wrong passwords, and a
//! probe beside a slow target. Bounded loops, loopback only, deadlines
//! rather than sleeps.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;
use crate::web_config::{Client, Fixtures, TLS, fixtures, request, tls_connect};

const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

/// Starts the binary with `args` (under `ulimit -n`, if given) on a free
/// port; returns it and the port once it accepts connections.
async fn start(args: &[String], nofile: Option<u32>) -> (Running, u16) {
    let port = free_port();
    let mut all = vec![format!("--web.listen-address=127.0.0.1:{port}")];
    all.extend(args.iter().cloned());
    let child = match nofile {
        Some(n) => Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn(),
        None => Command::new(BIN)
            .args(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn(),
    }
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "the exporter to listen",
        || async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    (Running(child), port)
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Whether the server has closed `s`: a read ends (EOF or reset) within `wait`.
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let until = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until.into(), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an answer (the 408-less close comes next)
        }
    }
}

async fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Metrics::parse(&text).get(name, labels)
}

/// `GET path` (over TLS when `tls`): the status and body, or why none came
/// within a second.
async fn get_within_a_second(
    port: u16,
    path: &str,
    f: &Fixtures,
    tls: bool,
) -> Result<(u16, String), String> {
    let client = if tls { TLS } else { Client::Plain };
    tokio::time::timeout(Duration::from_secs(1), request(f, port, path, client))
        .await
        .map_err(|_| "no answer within a second".to_string())?
        .map(|a| (a.status, a.body))
}

/// 300 connections that send half a request head (or half a TLS
/// handshake) or nothing, to an exporter allowed 256 file descriptors:
/// health and metrics answer within a second meanwhile, the open connections
/// stay under the limit fitted to the descriptors, and every one of the 300
/// is closed by the read-header timeout or to make room.
async fn beside_hundreds(tls: bool) {
    let f = fixtures(if tls {
        "hundreds-tls"
    } else {
        "hundreds-plain"
    });
    let web = f.dir.join("hundreds-web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let mut args = flags(&[
        "--demo",
        "--web.read-header-timeout=3s",
        "--log.level=error",
    ]);
    if tls {
        args.push(format!("--web.config.file={}", web.display()));
    }
    let (_running, port) = start(&args, Some(256)).await;
    let mut held = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if i % 2 == 0 {
            let half: &[u8] = if tls {
                &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]
            } else {
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
            };
            s.write_all(half).await.unwrap();
        }
        held.push(s);
    }
    for path in ["/-/healthy", "/metrics"] {
        let got = get_within_a_second(port, path, &f, tls).await;
        assert!(
            matches!(got, Ok((200, _))),
            "{path} beside 300 unfinished connections: {got:?}"
        );
    }
    let series =
        |text: &str, name: &str, labels: &[(&str, &str)]| Metrics::parse(text).get(name, labels);
    let (_, text) = get_within_a_second(port, "/metrics", &f, tls)
        .await
        .unwrap();
    let open = series(&text, "whatsapp_http_connections", &[]).unwrap();
    assert!(
        open <= 192.0 + 1.0,
        "{open} open: the limit fitted to 256 descriptors is 192"
    );
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(20)).await,
            "connection {i} is still open"
        );
    }
    let (_, text) = get_within_a_second(port, "/metrics", &f, tls)
        .await
        .unwrap();
    let cut = |reason| {
        series(
            &text,
            "whatsapp_http_connections_closed_total",
            &[("reason", reason)],
        )
        .unwrap()
    };
    let (timed_out, evicted) = (cut("header_timeout"), cut("evicted"));
    assert!(timed_out >= 1.0 && evicted >= 1.0, "{timed_out} {evicted}");
    assert!(timed_out + evicted >= 300.0, "{timed_out} + {evicted}");
    assert_eq!(cut("refused"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_connections_are_closed_and_health_answers_beside_hundreds() {
    beside_hundreds(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_handshakes_are_closed_and_health_answers_beside_hundreds_over_tls() {
    beside_hundreds(true).await;
}

/// A keep-alive connection idle past the idle timeout is closed; one that
/// keeps asking is not, though it lives longer than both timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alives_are_closed_and_busy_ones_kept() {
    let (_running, port) = start(
        &flags(&[
            "--demo",
            "--web.read-header-timeout=1s",
            "--web.idle-timeout=2s",
            "--log.level=error",
        ]),
        None,
    )
    .await;
    let request = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(request).await.unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let mut busy = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    let mut answers = 0;
    // Ask every half second for four seconds: past the 1 s and 2 s limits.
    while started.elapsed() < Duration::from_secs(4) {
        busy.write_all(request).await.unwrap();
        let n = busy.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "answer {answers}");
        answers += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(answers >= 6);
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "the idle connection is still open"
    );
    let idle_closed = metric(
        port,
        "whatsapp_http_connections_closed_total",
        &[("reason", "idle_timeout")],
    )
    .await
    .unwrap();
    assert!(idle_closed >= 1.0);
}

/// Over TLS, a client that completes the handshake and then sends half a
/// request head is closed at the read-header timeout too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_half_sent_request_head_is_closed() {
    let f = fixtures("tls-half-head");
    let web = f.dir.join("hostile-web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let (_running, port) = start(
        &flags(&[
            "--demo",
            "--web.read-header-timeout=2s",
            &format!("--web.config.file={}", web.display()),
            "--log.level=error",
        ]),
        None,
    )
    .await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = tls_connect(&f, tcp, None, &[], &[], false).await.unwrap();
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut tls, Duration::from_secs(20)).await,
        "the TLS connection with half a request head is still open"
    );
}

/// Utime plus stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the name (field 2).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// 64 clients of one host sending wrong passwords at once: the process uses
/// about one core, most get 429 at once, a scraper of another host is served
/// within a second (logged in before, or logging in for the first time), and
/// an unknown user costs what a known one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_flood_is_bounded_and_the_scraper_still_served() {
    let dir = temp_dir("password-flood");
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  prometheus: {}\n  admin: {}\n  fresh0: {h}\n  fresh1: {h}\n  fresh2: {h}\n",
            bcrypt::hash("s3cret", 4).unwrap(),
            bcrypt::hash("admin-password", 10).unwrap(),
            h = bcrypt::hash("first", 4).unwrap(),
        ),
    )
    .unwrap();
    let (running, port) = start(
        &flags(&[
            "--demo",
            &format!("--web.config.file={}", web.display()),
            "--log.level=error",
        ]),
        None,
    )
    .await;
    let pid = running.0.id();
    let url = format!("http://127.0.0.1:{port}/-/healthy");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let timed = |user: &'static str, pass: String| {
        let req = client.get(&url).basic_auth(user, Some(pass));
        async move {
            let t = Instant::now();
            let status = req.send().await.unwrap().status().as_u16();
            (status, t.elapsed())
        }
    };
    // Unknown users cost what the costliest known one does (distinct
    // passwords: a repeated one is remembered).
    let mut known = Duration::ZERO;
    let mut unknown = Duration::ZERO;
    for i in 0..3 {
        let (s, t) = timed("admin", format!("wrong-{i}")).await;
        assert_eq!(s, 401);
        known += t;
        let (s, t) = timed("nobody", format!("wrong-{i}")).await;
        assert_eq!(s, 401);
        unknown += t;
    }
    assert!(
        unknown * 2 >= known,
        "an unknown user took {unknown:?} against {known:?} for a known one"
    );
    assert_eq!(timed("prometheus", "s3cret".into()).await.0, 200);

    let cpu_before = cpu_seconds(pid);
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    // The flood comes from another host (127.0.0.2 is loopback too).
    let flooder = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for c in 0..64 {
        let client = flooder.clone();
        let url = url.clone();
        flood.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..6 {
                let r = client
                    .get(&url)
                    .basic_auth("admin", Some(format!("guess-{c}-{i}")))
                    .send()
                    .await;
                statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let best = futures_util::future::join_all((0..3).map(|_| timed("prometheus", "s3cret".into())))
        .await
        .into_iter()
        .inspect(|(s, _)| assert_eq!(*s, 200))
        .map(|(_, t)| t)
        .min()
        .unwrap();
    assert!(
        best < Duration::from_secs(1),
        "the scraper waited {best:?} during the flood"
    );
    // A first login during the flood waits for at most the flood's one place
    // and the check running.
    let mut first = Vec::new();
    for user in ["fresh0", "fresh1", "fresh2"] {
        let (s, t) = timed(user, "first".into()).await;
        assert_eq!(s, 200, "{user}'s first login during the flood");
        first.push(t);
    }
    let best_first = first.into_iter().min().unwrap();
    assert!(
        best_first < Duration::from_secs(1),
        "a first login waited {best_first:?} during the flood"
    );
    let mut statuses = Vec::new();
    for f in flood {
        statuses.extend(f.await.unwrap());
    }
    let cores = (cpu_seconds(pid) - cpu_before) / flood_started.elapsed().as_secs_f64();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "no check was refused for being too many"
    );
    assert!(cores < 1.5, "the flood used {cores:.2} cores");
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = Metrics::parse(&text).val(
        "whatsapp_http_requests_refused_total",
        &[("reason", "auth_busy")],
    );
    let answered_429 = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused, answered_429 as f64);
}

/// `/probe` of a fast target answers while a scrape of a slow neighbour is
/// still collecting (with a state store, which every collection writes):
/// a probe waits only for its own target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_waits_only_for_its_own_target() {
    let dir = temp_dir("probe-neighbour");
    let (sim, url) = simulator().await;
    let cfg = config_file_with_token_file(&url, &dir);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("state_file: {}\n", dir.join("state.db").display()));
    std::fs::write(&cfg, text).unwrap();
    let (_running, port) = start(
        &flags(&[
            &format!("--config.file={}", cfg.display()),
            "--log.level=error",
        ]),
        None,
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let before = sim.requests("message_history", PHONE2);
    sim.set_fault(
        PHONE2,
        Some(whatsapp_exporter::sim::Fault::Delay(Duration::from_secs(6))),
    );
    let slow = tokio::spawn({
        let req = client.get(format!("{base}/metrics"));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    // The slow scrape is under way once PHONE2's request is held.
    eventually(
        Duration::from_secs(10),
        "the slow collection to start",
        || {
            let sim = sim.clone();
            async move { (sim.requests("message_history", PHONE2) > before).then_some(()) }
        },
    )
    .await;
    let probe = client
        .get(format!(
            "{base}/probe?target={PHONE}&collector=message_history"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    assert!(probe.text().await.unwrap().contains(PHONE));
    assert!(
        !slow.is_finished(),
        "the probe answered only after its slow neighbour's scrape"
    );
    sim.set_fault(PHONE2, None);
    assert_eq!(slow.await.unwrap().unwrap(), 200);
}
